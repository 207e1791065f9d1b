"""DAR generation as a job: the distinct requests are drawn once, a later DAR run finds every image cached, and the
job spread over Ray actors writes the same images as in process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.config import RunSpec
from harness.errors import ConfigError, HarnessError
from harness.registry import REGISTRY
from harness.runner import run_evaluation
from tests.harness.test_ray_executor import ray_cluster  # noqa: F401 - the session's local Ray cluster

pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("dar-generate")
    synthetic = REGISTRY.resolve("fixture", "synthetic-benchmark")(root / "benchmark", dialogues=6, distractors=4)
    dar = {
        "base": "cocoft", "model": str(REGISTRY.resolve("fixture", "tiny-blip")(root / "tiny-blip")),
        "variant": "paper", "llm": "scripted", "size": 32, "steps": 2, "diffusion_batch_size": 2,
        "diffusion_model": str(REGISTRY.resolve("fixture", "tiny-sd21")(root / "tiny-sd21")),
    }
    return {"synthetic": synthetic, "dar": dar, "dialogues": synthetic.load().dialogues}


def _images(cache: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in (cache / "images").rglob("*.png")}


def test_generation_draws_distinct_requests_once_and_a_run_then_draws_nothing(setting, tmp_path):
    from retrievers.dar.generate import generate_dar_images

    cache = tmp_path / "cache"
    counts = generate_dar_images(setting["dar"], setting["dialogues"], rounds=2, cache_dir=cache, device="cpu")
    assert counts.image_requests == 6 * 3 * 3  # dialogues x rounds 0..2 x K
    assert counts.cached == 0 and counts.generated == counts.distinct_requests == len(_images(cache))
    again = generate_dar_images(setting["dar"], setting["dialogues"], rounds=2, cache_dir=cache, device="cpu")
    assert (again.cached, again.generated) == (counts.distinct_requests, 0)

    before = _images(cache)
    synthetic = setting["synthetic"]
    run_evaluation(RunSpec(retriever="dar", retriever_args=setting["dar"], benchmark=str(synthetic.dialogue_file),
                           search_space=synthetic.search_space_file, image_root=synthetic.image_root,
                           out=tmp_path / "run", device="cpu", rounds=2, cache_dir=cache, progress=False))
    assert _images(cache) == before  # every image the run asked for was already drawn


def test_generate_command_counts_requests_and_a_dry_run_draws_nothing(setting, tmp_path):
    from click.testing import CliRunner

    from harness.cli import main

    synthetic, dar = setting["synthetic"], setting["dar"]
    arguments = [f"{key}={value}" for key, value in dar.items() if key != "variant"]
    command = ["dar", "generate", "--benchmark", str(synthetic.dialogue_file),  # no search space: nothing is ranked
               "--dar-variant", "paper", "--rounds", "1", "--limit", "2",
               "--device", "cpu", "--cache-dir", str(tmp_path / "cache")]
    for argument in arguments:
        command += ["--retriever-arg", argument]
    dry = CliRunner().invoke(main, [*command, "--dry-run"], catch_exceptions=False)
    assert dry.exit_code == 0, dry.output
    assert "2 dialogues, 12 image requests" in dry.output and "generated now" in dry.output
    assert _images(tmp_path / "cache") == {}
    drawn = CliRunner().invoke(main, command, catch_exceptions=False)
    assert drawn.exit_code == 0, drawn.output
    assert len(_images(tmp_path / "cache")) > 0


def test_generation_on_ray_writes_the_same_images(ray_cluster, setting, tmp_path):  # noqa: F811
    import torch

    from harness.ray_executor import RayExecutor
    from retrievers.dar.generate import generate_dar_images

    # A Ray worker with one CPU runs torch on one thread; CPU kernels may round differently on more threads.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = generate_dar_images(setting["dar"], setting["dialogues"], rounds=1, cache_dir=tmp_path / "local",
                                    device="cpu")
    finally:
        torch.set_num_threads(threads)
    spread = generate_dar_images(setting["dar"], setting["dialogues"], rounds=1, cache_dir=tmp_path / "ray",
                                 device="cpu", executor=RayExecutor(workers=2), dialogues_per_chunk=3,
                                 images_per_chunk=8)
    assert spread == local
    assert _images(tmp_path / "ray") == _images(tmp_path / "local")


def test_an_image_worker_with_other_keys_stops_the_job(setting, tmp_path):
    from retrievers.dar.generate import ImageWorkerFactory, PromptWorkerFactory

    cache = tmp_path / "cache"
    requests = PromptWorkerFactory(setting["dar"], 1, cache, "cpu")()(setting["dialogues"][:1])
    other_dtype = {**setting["dar"], "diffusion_dtype": "bfloat16"}
    with pytest.raises(HarnessError, match="other image keys than the prompt workers"):
        ImageWorkerFactory(other_dtype, cache, "cpu")()(requests)
    assert _images(cache) == {}


def test_exported_images_are_the_cached_pngs_in_the_layout_a_dar_run_reads(setting, tmp_path):
    from click.testing import CliRunner

    from harness.cli import main
    from retrievers.dar.generate import generate_dar_images

    released = {**setting["dar"], "variant": "released"}
    cache, folder = tmp_path / "cache", tmp_path / "train_images"
    with pytest.raises(ConfigError, match="one image per"):  # the paper variant draws 3 per round
        generate_dar_images(setting["dar"], setting["dialogues"], rounds=1, cache_dir=cache, device="cpu",
                            export_images=folder)
    messages: list[str] = []
    generate_dar_images(released, setting["dialogues"], rounds=1, cache_dir=cache, device="cpu",
                        export_images=folder, echo=messages.append)
    names = sorted(path.name for path in folder.glob("*.png"))
    assert names == sorted(f"{index}_{round_}.png" for index in range(6) for round_ in range(2))
    assert any("12 images linked and 0 copied" in message for message in messages)
    cached = {path.read_bytes() for path in (cache / "images").rglob("*.png")}
    assert {path.read_bytes() for path in folder.glob("*.png")} <= cached
    assert all(path.stat().st_nlink >= 2 for path in folder.glob("*.png"))  # hard links: no second copy
    stale = folder / "0_1.jpg"
    stale.write_bytes(b"an older image that a reader would find first")
    again: list[str] = []
    generate_dar_images(released, setting["dialogues"], rounds=1, cache_dir=cache, device="cpu",
                        export_images=folder, echo=again.append)
    assert any("(12 already there)" in message for message in again) and not stale.exists()
    with pytest.raises(ConfigError, match="dialogues from the first on"):
        generate_dar_images(released, setting["dialogues"][1:], rounds=1, cache_dir=cache, device="cpu",
                            export_images=folder)

    # A DAR run reading the exported folder ranks as the run drawing through the cache.
    synthetic = setting["synthetic"]
    common = {"benchmark": str(synthetic.dialogue_file), "search_space": synthetic.search_space_file,
              "image_root": synthetic.image_root, "device": "cpu", "rounds": 1, "progress": False}
    drawn = run_evaluation(RunSpec(retriever="dar", retriever_args=released, out=tmp_path / "drawn",
                                   cache_dir=cache, **common))
    read = run_evaluation(RunSpec(retriever="dar", retriever_args={**released, "images": str(folder)},
                                  out=tmp_path / "read", cache_dir=tmp_path / "other-cache", **common))
    def ranks(run: str) -> list[tuple]:
        records = [json.loads(line) for line in (tmp_path / run / "ranks.jsonl").read_text().splitlines()]
        return [(record["dialogue_id"], record["ranks"], record["side_ranks"]) for record in records]

    assert ranks("read") == ranks("drawn") and drawn.metrics["Hits@10"] == read.metrics["Hits@10"]
    assert CliRunner().invoke(main, ["dar", "generate", "--help"]).output.count("--export-images") == 1
