"""`harness bench dar` on a tiny pipeline."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from retrievers.dar.bench import bench_prompts, dar


def test_bench_prompts_are_distinct() -> None:
    prompts = bench_prompts(600)
    assert len(set(prompts)) == 600


@pytest.mark.slow
def test_bench_runs_on_a_tiny_pipeline(tmp_path: Path) -> None:
    result = CliRunner().invoke(dar, [
        "--images", "3", "--batch-size", "2", "--steps", "1", "--size", "32", "--pair-dialogues", "2",
        "--work-dir", str(tmp_path),
    ])
    assert result.exit_code == 0, result.output
    assert "naive loop, one prompt per call" in result.output and "speed-up over the naive loop" in result.output
    pair = re.findall(r"(first|second) run.*?(\d+) images generated, +(\d+) image cache hits, +(\d+) LLM calls",
                      result.output)
    (_, first_drawn, _, first_calls), (_, *second) = pair
    assert int(first_drawn) > 0 and int(first_calls) > 0
    assert [int(number) for number in second] == [0, 2 * 2 * 3, 0]  # dialogues x rounds x K, all from the cache
    assert (tmp_path / "tiny-sd3" / "model_index.json").is_file()
    assert (tmp_path / "run-pair" / "run-1" / "ranks.jsonl").is_file()
