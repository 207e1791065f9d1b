"""`harness bench stages`: the projection's arithmetic, the generation lower bound, and the command on tiny models
(reached as plain `harness bench --retriever ...`)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from harness.bench.stages import StageFigure, Workload, generation_lower_bound, project
from harness.cli import main


def _workload(**changes) -> Workload:
    values = {"dialogues": 100, "rounds": 10, "search_space": 5_000, "images_per_round": 3, "distinct_fraction": 0.5,
              "live": True, "dar": True, "llm_image_prompts": True}
    values.update(changes)
    return Workload(**values)


def _figures() -> dict[str, StageFigure]:
    rates = {"questioner": 10, "answerer": 20, "encoder images": 100, "encoder texts": 1_000,
             "reformulation R1": 5, "reformulation R2": 4, "generation": 2, "ranking": 2_200}
    return {stage: StageFigure(stage, "items", rate, 1.0) for stage, rate in rates.items()}


def test_projection_counts_each_stage_in_the_three_cache_situations():
    rows = {stage: (cold, first, warm) for stage, cold, first, warm in project(_figures(), _workload()).rows}
    # 100 dialogues x 11 rounds = 1,100 dialogue-rounds, 550 distinct, 3 images each.
    assert rows["questioner"] == (100.0, 100.0, 0.0)  # 1,000 questions at 10/s
    assert rows["answerer"] == (50.0, 50.0, 0.0)
    assert rows["encoder images"] == (50.0, 50.0, 0.0)  # the search-space index, once per encoder
    assert rows["encoder texts"] == (1.1, 1.1, 1.1)
    assert rows["reformulation R1"] == (220.0, 110.0, 0.0)
    assert rows["reformulation R2"] == (275.0, 137.5, 0.0)
    assert rows["generation"] == (1650.0, 825.0, 0.0)
    assert rows["encoder generated"] == (33.0, 16.5, 0.0)
    assert rows["ranking"] == (1.0, 1.0, 1.0)  # fused and text-only ranks: 2,200 queries
    replay = {stage for stage, *_ in project(_figures(), _workload(live=False, dar=False)).rows}
    assert replay == {"encoder images", "encoder texts", "ranking"}


def test_workers_share_every_stage_but_the_drivers_search_space_index():
    projection = project(_figures(), _workload())
    spread = {stage: times for stage, *times in projection.over_workers(4).rows}
    assert spread["encoder images"] == [50.0, 50.0, 0.0]
    assert spread["generation"] == [1650.0 / 4, 825.0 / 4, 0.0]
    assert projection.over_workers(4).totals()[0] == pytest.approx(50.0 + (projection.totals()[0] - 50.0) / 4)


def test_generation_lower_bound_is_images_times_flop_over_peak():
    # PROTOCOL.md section 8: ~254k images at ~500 TFLOP; 8 workers at 1,000 TFLOP/s.
    assert generation_lower_bound(254_000, 500.0, 1_000.0, 8) == pytest.approx(15_875.0)


def test_bench_with_options_runs_the_stage_bench_on_tiny_models(tmp_path):
    result = CliRunner().invoke(main, [
        "bench", "--retriever", "cocoft", "--questioner", "scripted", "--answerer", "scripted", "--tiny",
        "--device", "cpu", "--samples", "4", "--dialogues", "10", "--search-space", "1000", "--workers", "2",
        "--work-dir", str(tmp_path),
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "TINY RANDOM MODELS" in result.output
    for stage in ("questioner", "answerer", "retriever cold", "retriever warm", "encoder texts", "ranking"):
        assert stage in result.output
    assert "40 dialogues x 11 rounds = 440 dialogue-rounds" in result.output and "2 worker(s)" in result.output
    assert "generation" not in result.output  # no DAR stage for a dual encoder


@pytest.mark.slow  # tiny Flan-T5, BLIP and SD 2.1: ~10 s
def test_dar_stage_bench_times_reformulation_and_generation_and_prints_the_bound(tmp_path):
    result = CliRunner().invoke(main, [
        "bench", "stages", "--retriever", "dar", "--tiny", "--device", "cpu", "--samples", "4",
        "--peak-tflops", "989", "--work-dir", str(tmp_path),
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for stage in ("reformulation R1", "generation", "encoder generated"):
        assert stage in result.output
    assert "lower bound:" in result.output and "TFLOP" in result.output


def test_random_full_size_points_every_component_at_the_published_architectures(tmp_path, monkeypatch):
    from harness.bench.stages import full_size_components
    from harness.registry import REGISTRY

    written = []

    def fake_writer(name):
        def write(directory, device):  # the real writers take minutes and gigabytes: record the call instead
            written.append((name, device))
            directory.mkdir(parents=True)
            (directory / "config.json").write_text("{}")
        return write

    for name in ("random-blip-base", "random-flan-t5-xl", "random-blip2-flan-t5-xl", "random-sd3-medium"):
        monkeypatch.setitem(REGISTRY._kind("fixture"), name, fake_writer(name))
    arguments = full_size_components(tmp_path, "dar", "flan", "blip2", "cuda")
    models = tmp_path / "models"
    assert arguments["retriever"] == {
        "model": str(models / "random-blip-base"), "llm": "hf-seq2seq",
        "llm_args": {"model": str(models / "random-flan-t5-xl")}, "diffusion_model": str(models / "random-sd3-medium"),
    }
    assert arguments["questioner"] == {"model": str(models / "random-flan-t5-xl")}
    assert arguments["answerer"] == {"model": str(models / "random-blip2-flan-t5-xl")}
    assert sorted(written) == sorted((name, "cuda") for name in (
        "random-blip-base", "random-flan-t5-xl", "random-sd3-medium", "random-blip2-flan-t5-xl"))
    full_size_components(tmp_path, "dar", "flan", "blip2", "cuda")
    assert len(written) == 4  # written once, reused by later benches
    with pytest.raises(click.UsageError, match="no full-size model for --retriever clip"):
        full_size_components(tmp_path, "clip", None, None, "cuda")
