"""``harness bench live`` on the tiny models: it runs, reports both rates, and both runs make every model call."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from click.testing import CliRunner

from harness.cli import main
from simulators.bench import NoReuseCache, bench_benchmark, run_loop
from simulators.hf_bots import build_blip2_answerer, build_flan_questioner


def test_bench_live_command() -> None:
    threads = torch.get_num_threads()
    result = CliRunner().invoke(main, ["bench", "live", "--dialogues", "4", "--rounds", "2", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == threads  # the command's one-thread setting does not leak
    assert "torch threads 1:" in result.output
    rates = re.findall(r"([\d.]+) dialogues/s", result.output)
    assert len(rates) == 2 and all(float(rate) > 0 for rate in rates)
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
    questioner = build_flan_questioner(str(tiny_flan_t5), max_new_tokens=4)
    answerer = build_blip2_answerer(str(tiny_blip2), max_new_tokens=3)
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
