"""DAR over tiny real models: the fusion invariants, shared caches across base encoders, released artefacts."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from benchmarks.synthetic import write_synthetic_benchmark
from harness.cli import main
from harness.errors import DataError
from harness.protocols import RunContext
from harness.types import DialogueState
from retrievers.dar import build_dar
from retrievers.tiny import write_tiny_blip
from retrievers.tiny_diffusion import write_tiny_sd21


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return write_synthetic_benchmark(tmp_path_factory.mktemp("bench"), dialogues=4, distractors=4, rounds=2)


@pytest.fixture(scope="module")
def tiny_sd21(tmp_path_factory) -> Path:
    return write_tiny_sd21(tmp_path_factory.mktemp("sd21") / "pipeline")


@pytest.fixture(scope="module")
def blips(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("blips")
    return write_tiny_blip(root / "a", seed=0), write_tiny_blip(root / "b", seed=1)


def states(synthetic) -> list[DialogueState]:
    benchmark = synthetic.load()
    positions = {path: index for index, path in enumerate(benchmark.search_space.paths)}
    return [DialogueState.at_round(dialogue, round_, positions[dialogue.target])
            for dialogue in benchmark.dialogues for round_ in range(2)]


def prepared(retriever, synthetic, context):
    retriever.prepare(synthetic.load().search_space, context)
    return retriever


def test_image_weight_zero_gives_exactly_the_text_only_ranks(synthetic, tiny_sd21, blips, tmp_path):
    context = RunContext(device="cpu", cache_dir=tmp_path / "cache", progress=False)
    dar = build_dar(base="cocoft", model=str(blips[0]), llm="scripted", images_per_round=2,
                    early_weights=[1, 0], late_weights=[1, 0], diffusion_model=str(tiny_sd21), size=32, steps=2, diffusion_batch_size=8)
    batch = prepared(dar, synthetic, context).rank(states(synthetic))
    assert batch.ranks == batch.side_ranks["text_only"]
    weighted = prepared(build_dar(base="cocoft", model=str(blips[0]), llm="scripted", images_per_round=2,
                                  diffusion_model=str(tiny_sd21), size=32, steps=2, diffusion_batch_size=8), synthetic, context).rank(states(synthetic))
    assert weighted.side_ranks["text_only"] == batch.ranks
    assert weighted.ranks != batch.ranks  # the images do move ranks when they carry weight


def test_query_file_with_image_weight_zero_equals_the_base_retriever_replay(synthetic, blips, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for index in range(4):
        for round_ in range(3):
            Image.new("RGB", (32, 32), (index * 60, round_ * 80, 0)).save(images / f"{index}_{round_}.jpg")
    common = ["--retriever-model", str(blips[0]), "--benchmark", str(synthetic.dialogue_file), "--search-space",
              str(synthetic.search_space_file), "--image-root", str(synthetic.image_root), "--rounds", "2",
              "--device", "cpu", "--quiet"]
    runner = CliRunner()
    base = runner.invoke(main, ["run", "--retriever", "cocoft", *common, "--out", str(tmp_path / "base"),
                                "--retriever-arg", "max_text_tokens=256"], catch_exceptions=False)
    assert base.exit_code == 0, base.output
    dar_args = ["run", "--retriever", "dar", "--dar-base", "cocoft", "--dar-variant", "released", "--dar-queries",
                str(synthetic.dialogue_file), "--dar-images", str(images), *common]
    zero = runner.invoke(main, [*dar_args, "--out", str(tmp_path / "zero"), "--retriever-arg", "early_weights=[1,0]",
                                "--retriever-arg", "late_weights=[1,0]"], catch_exceptions=False)
    assert zero.exit_code == 0, zero.output

    def lines(run):
        return [json.loads(line) for line in (tmp_path / run / "ranks.jsonl").read_text().splitlines()]

    assert [line["ranks"] for line in lines("zero")] == [line["ranks"] for line in lines("base")]
    released = runner.invoke(main, [*dar_args, "--out", str(tmp_path / "released")], catch_exceptions=False)
    assert released.exit_code == 0, released.output
    assert all(line["side_ranks"]["text_only"] == base_line["ranks"]
               for line, base_line in zip(lines("released"), lines("base")))
    metrics = json.loads((tmp_path / "released" / "metrics.json").read_text())
    assert len(metrics["Degradation"]) == 3 and len(metrics["RankDrop"]) == 3
    assert "Degradation" not in json.loads((tmp_path / "base" / "metrics.json").read_text())
    (images / "2_1.jpg").unlink()
    with pytest.raises(DataError, match="2_1.jpg"):
        prepared(build_dar(base="cocoft", model=str(blips[0]), variant="released", queries=str(synthetic.dialogue_file),
                           images=str(images)), synthetic,
                 RunContext(device="cpu", cache_dir=tmp_path / "cache", progress=False)).rank(states(synthetic))


def test_a_second_base_encoder_reuses_every_image_and_reformulation(synthetic, tiny_sd21, blips, tmp_path):
    context = RunContext(device="cpu", cache_dir=tmp_path / "cache", progress=False)
    first = prepared(build_dar(base="cocoft", model=str(blips[0]), llm="scripted", images_per_round=2,
                               diffusion_model=str(tiny_sd21), size=32, steps=2, diffusion_batch_size=8), synthetic, context)
    first.rank(states(synthetic))
    assert first.image_source.generator.generated > 0 and first.reformulator.calls > 0
    second = prepared(build_dar(base="cocoft", model=str(blips[1]), llm="scripted", images_per_round=2,
                                diffusion_model=str(tiny_sd21), size=32, steps=2, diffusion_batch_size=8), synthetic, replace(context, seed=3))
    second.rank(states(synthetic))
    assert second.image_source.generator.generated == 0 and second.image_source.generator.pipeline is None
    assert second.reformulator.calls == 0
