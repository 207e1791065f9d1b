"""Loading and pairing real run directories: names, benchmark and dialogue checks, failed dialogues."""

import logging

import numpy as np
import pytest

from harness.errors import HarnessError
from reports.runs import load_runs, pair_runs
from tests.reports.conftest import ROUNDS, ranks_from, write_benchmark


def test_names_default_to_directories_and_ranks_are_paired(run_factory):
    first = ranks_from(seed=1)
    second = ranks_from(seed=2)
    runs = load_runs([run_factory.make("alpha", first), run_factory.make("beta", second)])
    assert [run.name for run in runs] == ["alpha", "beta"]
    assert runs[0].retriever == "oracle" and runs[0].benchmark == "dialogues"
    (paired,) = pair_runs(runs)
    assert paired.systems == ("alpha", "beta") and paired.rounds == ROUNDS + 1 and len(paired) == 40
    assert paired.dialogue_ids == tuple(str(i) for i in range(40))
    assert np.array_equal(paired.ranks["alpha"], first) and np.array_equal(paired.ranks["beta"], second)
    assert paired.excluded == () and paired.warnings == ()


def test_explicit_names_and_duplicate_names(run_factory, tmp_path):
    one = run_factory.make("same", ranks_from(seed=1))
    other_root = tmp_path / "elsewhere"
    other_root.mkdir()
    two = run_factory.make("other", ranks_from(seed=2))
    moved = other_root / "same"
    two.rename(moved)
    with pytest.raises(HarnessError, match="both named 'same'.*--name"):
        load_runs([one, moved])
    assert [run.name for run in load_runs([one, moved], ["a", "b"])] == ["a", "b"]
    with pytest.raises(HarnessError, match="2 runs"):
        load_runs([one, moved], ["a"])


def test_different_benchmark_files_are_refused(run_factory, tmp_path):
    changed = write_benchmark(tmp_path / "bench-changed", 40, variant=" edited")
    a = run_factory.make("original", ranks_from(seed=1))
    b = run_factory.make("edited", ranks_from(seed=1), benchmark=changed)
    with pytest.raises(HarnessError) as error:
        pair_runs(load_runs([a, b]))
    message = str(error.value)
    assert "original" in message and "edited" in message and "dialogues sha256" in message
    assert "search_space" not in message  # only what differs is named


def test_different_dialogue_ids_are_refused(run_factory):
    a = run_factory.make("full", ranks_from(seed=1))
    b = run_factory.make("partial", ranks_from(seed=1), limit=30)
    with pytest.raises(HarnessError) as error:
        pair_runs(load_runs([a, b]))
    message = str(error.value)
    assert "full has 40 dialogues, partial has 30" in message
    assert "10 only in full (first: 30, 31, 32, 33, 34)" in message


def test_failed_dialogues_are_excluded_everywhere_with_a_warning(run_factory, caplog):
    ranks = ranks_from(seed=1)
    a = run_factory.make("clean", ranks)
    b = run_factory.make("flaky", ranks, failing=["4", "17", "25"])
    with caplog.at_level(logging.WARNING, logger="reports.runs"):
        (paired,) = pair_runs(load_runs([a, b]))
    assert paired.excluded == ("4", "17", "25")
    assert len(paired) == 37 and "4" not in paired.dialogue_ids
    keep = [i for i in range(40) if i not in (4, 17, 25)]
    assert np.array_equal(paired.ranks["clean"], ranks[keep])
    (warning,) = paired.warnings
    assert "3 of 40 dialogues excluded" in warning and "flaky: 3" in warning and "remaining 37" in warning
    assert warning in caplog.text


def test_side_ranks_are_loaded(run_factory):
    text = ranks_from(seed=9)
    run = run_factory.make("fused", ranks_from(seed=1), text_only=text)
    (paired,) = pair_runs(load_runs([run]))
    assert np.array_equal(paired.side_ranks["fused"]["text_only"], text)


def test_a_directory_that_is_not_a_run(tmp_path):
    with pytest.raises(HarnessError, match="not a run directory"):
        load_runs([tmp_path])
