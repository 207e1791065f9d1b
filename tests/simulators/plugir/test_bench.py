"""`harness bench plugir` runs the runner's loop and reports every round's LLM calls and step seconds."""

import pytest
from click.testing import CliRunner

from harness.cli import main
from simulators.plugir.bench import STEP_SECONDS, measure_plugir


def test_the_bench_counts_plugirs_calls_per_round_and_step(one_torch_thread):
    rows = measure_plugir(dialogues=2, rounds=2, images=30, top=20, questions=2)
    assert [row["round"] for row in rows] == [1, 2]
    for row in rows:
        calls = row["calls"]
        assert calls["reconstruct"] == 2  # one reconstruction per dialogue and round
        assert 2 * 2 <= calls["question"] <= 2 * 2 * 3  # q_n draws, each redrawn at most twice
        assert row["llm_calls"] == sum(calls.values())
        assert set(row["seconds"]) == set(STEP_SECONDS) and all(value >= 0 for value in row["seconds"].values())
        assert row["seconds"]["kmeans"] > 0 and row["retriever"] > 0


@pytest.mark.slow
def test_the_bench_command_prints_a_row_per_round(one_torch_thread):
    result = CliRunner().invoke(main, ["bench", "plugir", "--dialogues", "1", "--rounds", "1", "--images", "14",
                                       "--top", "12", "--questions", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "llm calls by step:" in result.output and "per dialogue" in result.output
