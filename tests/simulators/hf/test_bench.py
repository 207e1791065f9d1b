"""``harness bench live`` on the tiny models: it runs, reports dialogues/s and rounds/s for both runs, and both runs
make every model call; the ``random:`` full-size sources have the published sizes (counted on the meta device) and
are written, loaded and reused through the same path (checked at a shrunken width)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from harness.cli import main
from harness.fixtures import full_size
from simulators.hf.bench import NoReuseCache, bench_benchmark, run_loop
from simulators.hf.bots import build_blip2_answerer, build_flan_questioner


def test_bench_live_command() -> None:
    threads = torch.get_num_threads()
    result = CliRunner().invoke(main, ["bench", "live", "--dialogues", "4", "--rounds", "2", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == threads  # the command's one-thread setting does not leak
    assert "torch threads 1:" in result.output
    rates = [float(rate) for rate in re.findall(r"([\d.]+) dialogues/s", result.output)]
    round_rates = [float(rate) for rate in re.findall(r"([\d.]+) rounds/s", result.output)]
    assert len(rates) == len(round_rates) == 2 and all(rate > 0 for rate in rates)
    assert round_rates == pytest.approx([2 * rate for rate in rates], rel=0.01, abs=0.01)  # 2 rounds a dialogue
    assert result.output.count("8 questions + 8 answers generated, 0 cache hits") == 2
    assert re.search(r"speed-up from batching: [\d.]+x", result.output)
    assert "identical dialogues batched vs one at a time: 4/4" in result.output  # greedy: batching changes nothing


def test_bench_live_rejects_empty_runs() -> None:
    result = CliRunner().invoke(main, ["bench", "live", "--dialogues", "0"])
    assert result.exit_code != 0 and "at least 1" in result.output


def test_bench_benchmark_has_unique_captions_and_cycles_images(tmp_path: Path) -> None:
    benchmark = bench_benchmark(tmp_path, 250)  # more dialogues than the synthetic fixture has images
    assert len(benchmark) == 250 and len({dialogue.caption for dialogue in benchmark.dialogues}) == 250
    assert all(benchmark.search_space.contains(dialogue.target) for dialogue in benchmark.dialogues)
    assert all(benchmark.search_space.resolve(dialogue.target).is_file() for dialogue in benchmark.dialogues[:3])


def test_run_loop_grows_every_dialogue(tmp_path: Path, tiny_flan_t5: Path, tiny_blip2: Path, bot_context) -> None:
    benchmark = bench_benchmark(tmp_path / "benchmark", 3)
    questioner = build_flan_questioner(str(tiny_flan_t5), max_new_tokens=4, on_invalid="keep")
    answerer = build_blip2_answerer(str(tiny_blip2), max_new_tokens=3, on_invalid="keep")
    questioner.prepare(benchmark, bot_context)
    answerer.prepare(benchmark, bot_context)
    timing = run_loop(questioner, answerer, benchmark, rounds=2, group_size=3)
    assert [len(turns) for turns in timing.dialogues] == [3, 3, 3]
    assert timing.questioner_calls == 6 and timing.answerer_calls + timing.cache_hits == 6
    assert timing.seconds > 0 and timing.dialogues_per_second > 0


def test_no_reuse_cache_generates_every_time(tmp_path: Path) -> None:
    cache = NoReuseCache(tmp_path)
    calls: list[list[int]] = []

    def compute(missing: list[int]) -> list[str]:
        calls.append(missing)
        return [f"out {index}" for index in missing]

    assert cache.get_or_compute(["a", "b", "a"], compute) == ["out 0", "out 1", "out 0"]
    assert cache.get_or_compute(["a"], compute) == ["out 0"]
    assert calls == [[0, 1], [0]] and cache.hits == 0 and cache.misses == 3
    assert not any(tmp_path.rglob("*.json"))


def test_bench_live_writes_loads_and_reuses_random_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The published layout at a tiny width, so that the write -> from_pretrained -> generate path runs in seconds.
    small = {"d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_decoder_layers": 2, "num_heads": 4}
    monkeypatch.setattr(full_size, "FLAN_T5_XL", {**full_size.FLAN_T5_XL, **small})
    monkeypatch.setattr(full_size, "BLIP2_VISION", {**full_size.BLIP2_VISION, "hidden_size": 32,
                                                    "intermediate_size": 64, "num_hidden_layers": 2,
                                                    "num_attention_heads": 4})
    monkeypatch.setattr(full_size, "BLIP2_QFORMER", {**full_size.BLIP2_QFORMER, "hidden_size": 32,
                                                     "intermediate_size": 64, "num_hidden_layers": 2,
                                                     "num_attention_heads": 4, "encoder_hidden_size": 32})
    args = ["bench", "live", "--questioner-model", "random:flan-t5-xl", "--answerer-model",
            "random:blip2-flan-t5-xl", "--dialogues", "2", "--rounds", "1", "--threads", "1",
            "--dtype", "bf16", "--work-dir", str(tmp_path)]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert first.output.count("the published architecture, random weights) to") == 2
    assert "random:flan-t5-xl (the published architecture, random weights)" in first.output
    assert len(re.findall(r"[\d.]+ rounds/s", first.output)) == 2
    assert {path.name for path in tmp_path.iterdir()} == {"flan-t5-xl", "blip2-flan-t5-xl"}
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "to " + str(tmp_path) not in again.output  # written once, then reused


def test_bench_live_rejects_a_random_model_of_the_other_role() -> None:
    result = CliRunner().invoke(main, ["bench", "live", "--questioner-model", "random:blip2-flan-t5-xl"])
    assert result.exit_code != 0 and "the random model of --questioner-model is random:flan-t5-xl" in result.output
