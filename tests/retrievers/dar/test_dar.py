"""DAR over tiny real models: the fusion invariants, shared caches across base encoders, released artefacts."""

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from harness.cli import main
from harness.config import RunSpec
from harness.errors import ConfigError, DataError
from harness.fixtures.synthetic_benchmark import write_synthetic_benchmark
from harness.fixtures.tiny_bot_models import write_tiny_flan_t5
from harness.fixtures.tiny_diffusion import write_tiny_sd21
from harness.fixtures.tiny_encoders import write_tiny_blip
from harness.protocols import RunContext
from harness.runner import run_evaluation
from harness.types import DialogueState
from retrievers.dar.diffusion import DiffusionSettings
from retrievers.dar.retriever import USAGE_FIELD, GeneratedImages, build_dar

TINY_IMAGES = {"size": 32, "steps": 2, "diffusion_batch_size": 8}


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


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory) -> dict:
    """DAR's LLM arguments for a tiny Flan-T5 (hf-seq2seq), with short answers to keep generation fast."""
    return {"llm": "hf-seq2seq",
            "llm_args": {"model": str(write_tiny_flan_t5(tmp_path_factory.mktemp("flan") / "model")), "max_new_tokens": 8}}


@pytest.fixture
def flat_images(tmp_path) -> Path:
    """One pre-generated image per (dialogue, round), named ``{index}_{round}.jpg``."""
    images = tmp_path / "images"
    images.mkdir()
    for index in range(4):
        for round_ in range(3):
            Image.new("RGB", (32, 32), (index * 60, round_ * 80, 0)).save(images / f"{index}_{round_}.jpg")
    return images


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


def test_query_file_with_image_weight_zero_equals_the_base_retriever_replay(synthetic, blips, flat_images, tmp_path):
    images = flat_images
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


def test_exported_captions_as_dar_queries_reproduce_the_fused_ranks_without_an_llm(synthetic, blips, flat_images,
                                                                                    tiny_llm, tmp_path):
    common = ["--retriever", "dar", "--dar-base", "cocoft", "--dar-variant", "released", "--dar-images",
              str(flat_images), "--retriever-model", str(blips[0]), "--benchmark", str(synthetic.dialogue_file),
              "--search-space", str(synthetic.search_space_file), "--image-root", str(synthetic.image_root),
              "--rounds", "2", "--device", "cpu", "--quiet"]
    runner = CliRunner()
    through_llm = runner.invoke(main, ["run", *common, "--out", str(tmp_path / "llm"), "--cache-dir",
                                       str(tmp_path / "cache-llm"), "--retriever-arg", f"llm={tiny_llm['llm']}",
                                       "--retriever-arg", f"llm_args={json.dumps(tiny_llm['llm_args'])}"],
                                catch_exceptions=False)
    assert through_llm.exit_code == 0, through_llm.output
    queries = tmp_path / "queries.json"
    exported = runner.invoke(main, ["dialogues", "export", str(tmp_path / "llm"), "--reformulated", "--out",
                                    str(queries)], catch_exceptions=False)
    assert exported.exit_code == 0, exported.output
    traces = [json.loads(line) for line in (tmp_path / "llm" / "trace.jsonl").read_text().splitlines()]
    captions = {int(line["dialogue_id"]): [entry["retriever"]["caption"] for entry in line["rounds"]] for line in traces}
    written = json.loads(queries.read_text())
    assert [record["dialog"] for record in written] == [captions[index] for index in range(4)]
    assert [record["img"] for record in written] == [record["img"] for record in
                                                     json.loads(synthetic.dialogue_file.read_text())]
    # A fresh cache: no stored reformulation can stand in, and with captions from the file no LLM is even built.
    from_file = runner.invoke(main, ["run", *common, "--out", str(tmp_path / "file"), "--cache-dir",
                                     str(tmp_path / "cache-file"), "--dar-queries", str(queries)],
                              catch_exceptions=False)
    assert from_file.exit_code == 0, from_file.output
    manifest = json.loads((tmp_path / "file" / "manifest.json").read_text())
    assert manifest["components"]["identities"]["retriever"]["reformulator"] is None

    def ranks(run):
        lines = [json.loads(line) for line in (tmp_path / run / "ranks.jsonl").read_text().splitlines()]
        return {line["dialogue_id"]: (line["ranks"], line["side_ranks"]) for line in lines}

    assert ranks("file") == ranks("llm")


def test_reformulated_export_refuses_a_run_without_captions_or_with_failed_dialogues(synthetic, blips, tmp_path):
    runner = CliRunner()
    run = runner.invoke(main, ["run", "--retriever", "cocoft", "--retriever-model", str(blips[0]), "--benchmark",
                               str(synthetic.dialogue_file), "--search-space", str(synthetic.search_space_file),
                               "--image-root", str(synthetic.image_root), "--rounds", "1", "--device", "cpu",
                               "--quiet", "--out", str(tmp_path / "base")], catch_exceptions=False)
    assert run.exit_code == 0, run.output
    refused = runner.invoke(main, ["dialogues", "export", str(tmp_path / "base"), "--reformulated", "--out",
                                   str(tmp_path / "q.json")])
    assert refused.exit_code == 1 and "round 0 has no reformulated caption" in refused.output
    assert not (tmp_path / "q.json").exists()
    both = runner.invoke(main, ["dialogues", "export", str(tmp_path / "base"), "--reformulated", "--skip-failed",
                                "--out", str(tmp_path / "q.json")])
    assert both.exit_code == 2 and "--skip-failed" in both.output


def test_a_second_base_encoder_reuses_every_image_and_reformulation(synthetic, tiny_sd21, blips, tiny_llm, tmp_path):
    context = RunContext(device="cpu", cache_dir=tmp_path / "cache", progress=False)
    first = prepared(build_dar(base="cocoft", model=str(blips[0]), images_per_round=2, diffusion_model=str(tiny_sd21),
                               **tiny_llm, **TINY_IMAGES), synthetic, context)
    first.rank(states(synthetic))
    assert first.image_source.generator.generated > 0 and first.reformulator.calls > 0
    assert first.reformulator.generator.loaded
    second = prepared(build_dar(base="cocoft", model=str(blips[1]), images_per_round=2, diffusion_model=str(tiny_sd21),
                                **tiny_llm, **TINY_IMAGES), synthetic, replace(context, seed=3))
    second.rank(states(synthetic))
    assert second.image_source.generator.generated == 0 and second.image_source.generator.pipeline is None
    assert second.reformulator.calls == 0
    assert not second.reformulator.generator.loaded  # its identity came from the files, its weights never loaded
    assert second.reformulator.identity() == first.reformulator.identity()


def test_paper_variant_through_the_llm_twice_gives_the_same_ranks_from_the_caches(synthetic, tiny_sd21, blips,
                                                                                  tiny_llm, tmp_path, caplog):
    arguments = {"base": "cocoft", "model": str(blips[0]), "variant": "paper", "diffusion_model": str(tiny_sd21),
                 **tiny_llm, **TINY_IMAGES}
    spec = RunSpec(retriever="dar", retriever_args=arguments, benchmark=str(synthetic.dialogue_file),
                   search_space=synthetic.search_space_file, image_root=synthetic.image_root, out=tmp_path / "first",
                   rounds=2, device="cpu", cache_dir=tmp_path / "cache", progress=False)
    usage = {}
    for name in ("first", "second"):
        with caplog.at_level(logging.DEBUG, logger="harness.dar"):
            run_evaluation(replace(spec, out=tmp_path / name))
        usage[name] = [getattr(record, USAGE_FIELD) for record in caplog.records if hasattr(record, USAGE_FIELD)][-1]
        caplog.clear()

    def lines(run):
        return [json.loads(line) for line in (tmp_path / run / "ranks.jsonl").read_text().splitlines()]

    assert [line["ranks"] for line in lines("first")] == [line["ranks"] for line in lines("second")]
    assert all(len(line["ranks"]) == 3 for line in lines("first"))  # rounds 0..2 of 4 dialogues
    requests = 4 * 3 * 3  # dialogue-rounds x K = 3 images each
    assert usage["first"]["llm_calls"] > 0 and 0 < usage["first"]["images_generated"] <= requests
    assert {name: usage["second"].get(name, 0) for name in ("images_generated", "image_cache_hits", "llm_calls",
                                                       "model_calls")} == {
        "images_generated": 0, "image_cache_hits": requests, "llm_calls": 0, "model_calls": 0}
    assert usage["first"]["model_calls"] == usage["first"]["llm_calls"] and usage["first"]["prompt_tokens"] > 0
    recorded = json.loads((tmp_path / "second" / "manifest.json").read_text())["components"]["identities"]["retriever"]
    assert recorded["fusion"]["images_per_round"] == 3 and recorded["images"]["settings"]["batch_size"] == 8


def test_query_file_records_must_match_the_benchmark(synthetic, blips, flat_images, tmp_path):
    records = json.loads(synthetic.dialogue_file.read_text())
    context = RunContext(device="cpu", cache_dir=tmp_path / "cache", progress=False)

    def ranked(queries: list) -> None:
        path = tmp_path / "queries.json"
        path.write_text(json.dumps(queries))
        prepared(build_dar(base="cocoft", model=str(blips[0]), variant="released", queries=str(path),
                           images=str(flat_images)), synthetic, context).rank(states(synthetic))

    swapped = [records[0], records[2], records[1], records[3]]
    with pytest.raises(DataError, match=r"queries.json, record 1, field 'img': is '.+' but dialogue 1 .* targets"):
        ranked(swapped)
    with pytest.raises(DataError, match=r"queries.json, record 3: holds 3 records .* the record counts differ"):
        ranked(records[:3])


def test_pregenerated_images_in_either_layout_and_only_one_per_round(synthetic, blips, flat_images, tmp_path):
    by_round = tmp_path / "by-round"
    for path in flat_images.iterdir():
        index, round_ = path.stem.split("_")
        (by_round / f"round{round_}").mkdir(parents=True, exist_ok=True)
        shutil.copy(path, by_round / f"round{round_}" / f"{index}.jpg")
    context = RunContext(device="cpu", cache_dir=tmp_path / "cache", progress=False)
    dar = {folder: prepared(build_dar(base="cocoft", model=str(blips[0]), variant="released", images=str(folder),
                                      queries=str(synthetic.dialogue_file)), synthetic, context)
           for folder in (flat_images, by_round)}
    assert dar[by_round].image_source.layout == "round" and dar[flat_images].image_source.layout == "flat"
    in_rounds, flat = dar[by_round].rank(states(synthetic)), dar[flat_images].rank(states(synthetic))
    assert replace(in_rounds, traces=()) == replace(flat, traces=())  # the same images, named by their own files
    assert in_rounds.traces[1]["image_keys"] == ["round1/0.jpg"] and flat.traces[1]["image_keys"] == ["0_1.jpg"]
    assert dar[by_round].image_source.identity()["files"] == 12
    (by_round / "round1" / "2.jpg").unlink()
    with pytest.raises(DataError, match="round1/2.jpg"):
        dar[by_round].rank(states(synthetic))
    # K = 3 (the paper variant) cannot read a one-image-per-round folder: refused when built, before any model loads.
    with pytest.raises(ConfigError, match="images_per_round"):
        build_dar(base="cocoft", model=str(blips[0]), variant="paper", llm="scripted", images=str(flat_images))


def test_manifest_records_the_diffusion_batch_size_but_image_keys_ignore_it(tiny_sd21, tmp_path):
    context = RunContext(device="cpu", cache_dir=tmp_path / "cache", progress=False)
    sources = []
    for batch_size in (2, 8):
        source = GeneratedImages(DiffusionSettings(model=str(tiny_sd21), height=32, width=32, batch_size=batch_size))
        source.load(context)
        sources.append(source)
    identities = [source.identity() for source in sources]
    assert [identity["settings"]["batch_size"] for identity in identities] == [2, 8]
    assert identities[0]["settings"]["steps"] == identities[0]["diffusion"]["steps"]  # resolved, not None
    keys = [[request.key for request in source.generator.requests(["a red bus"] * 2, [0, 1])] for source in sources]
    assert keys[0] == keys[1] and sources[0].generator.pipeline is None


def test_the_papers_image_sum_is_the_default_and_the_mean_is_a_named_option():
    from retrievers.dar.fusion import FusionSchedule, fuse
    from retrievers.dar.retriever import StaticFuser, build_dar

    generator = torch.Generator().manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(2, 4, generator=generator), dim=-1)
    images = torch.nn.functional.normalize(torch.randn(2, 3, 4, generator=generator), dim=-1)
    weights = [(0.7, 0.3), (0.5, 0.5)]
    column = torch.tensor(weights)
    assert torch.allclose(fuse(text, images, weights, "embedding"),
                          column[:, :1] * text + column[:, 1:] * images.sum(dim=1))
    assert torch.allclose(fuse(text, images, weights, "embedding", "mean"),
                          column[:, :1] * text + column[:, 1:] * images.mean(dim=1))
    assert FusionSchedule.paper().image_aggregate == "sum"
    assert StaticFuser(FusionSchedule.paper()).identity()["image_aggregate"] == "sum"  # part of the run identity
    dar = build_dar(base="zs", model="unused", variant="paper", image_aggregate="mean", llm="scripted")
    assert dar.fuser.identity()["image_aggregate"] == "mean"


def test_image_prompts_cut_by_the_diffusion_encoder_are_counted_once_per_run(synthetic, blips, tiny_sd21, tmp_path,
                                                                             caplog):
    records = json.loads(synthetic.dialogue_file.read_text())
    for record in records[:3]:  # round 1 of three dialogues: a caption far past CLIP's 77 tokens
        record["dialog"][1] = " ".join(["a small red square on the left"] * 20)
    queries = tmp_path / "long_queries.json"
    queries.write_text(json.dumps(records))
    arguments = ["run", "--retriever", "dar", "--dar-base", "cocoft", "--retriever-model", str(blips[0]),
                 "--dar-variant", "released", "--dar-queries", str(queries), "--retriever-arg", f"diffusion_model={tiny_sd21}",
                 "--retriever-arg", "size=32", "--retriever-arg", "steps=2", "--benchmark", str(synthetic.dialogue_file),
                 "--search-space", str(synthetic.search_space_file), "--image-root", str(synthetic.image_root),
                 "--rounds", "2", "--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "run")]
    with caplog.at_level("WARNING"):
        result = CliRunner().invoke(main, arguments, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    diagnostics = json.loads((tmp_path / "run" / "manifest.json").read_text())["diagnostics"]
    assert diagnostics["image_prompts_truncated"] == 3  # K = 1 prompt per round, the caption itself
    summaries = [record.message for record in caplog.records if "image prompts were cut" in record.message]
    assert len(summaries) == 1 and summaries[0].startswith("3 image prompts were cut")
