"""Loading and pairing real run directories: names, benchmark and dialogue checks, failed dialogues."""

import logging

import numpy as np
import pytest

from harness.errors import HarnessError
from reports.compare import ReportSettings, compare_runs
from reports.runs import load_runs, pair_runs
from tests.reports.conftest import ROUNDS, BenchmarkFiles, ranks_from, write_benchmark


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
    with pytest.raises(HarnessError, match="benchmark 'dialogues' are both named 'same'.*--name"):
        pair_runs(load_runs([one, moved]))
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


def test_one_system_name_follows_a_system_across_benchmarks(run_factory, tmp_path):
    other = write_benchmark(tmp_path / "bench-other", 40, variant=" other")
    other.dialogues.rename(other.dialogues.with_name("other.json"))
    other = BenchmarkFiles(other.dialogues.with_name("other.json"), other.search_space, other.count)
    runs = [
        run_factory.make("strong-a", ranks_from(seed=1, good=0.9)),
        run_factory.make("weak-a", ranks_from(seed=2, good=0.1)),
        run_factory.make("strong-b", ranks_from(seed=3, good=0.9), benchmark=other),
        run_factory.make("weak-b", ranks_from(seed=4, good=0.1), benchmark=other),
    ]
    loaded = load_runs(runs, ["strong", "weak", "strong", "weak"])
    groups = pair_runs(loaded)
    assert [(group.benchmark, group.systems) for group in groups] == [
        ("dialogues", ("strong", "weak")), ("other", ("strong", "weak"))
    ]
    comparison = compare_runs(loaded, ReportSettings(baseline="weak", permutations=200, bootstrap=50))
    primary = [test for bench in comparison.benchmarks for test in bench.tests if test.family == "primary"]
    assert [(test.benchmark, test.system_a, test.system_b, test.better) for test in primary] == [
        ("dialogues", "strong", "weak", "strong"), ("other", "strong", "weak", "strong")
    ]
    with pytest.raises(HarnessError, match="baseline 'weak' has no run on benchmark 'other'"):
        compare_runs(load_runs(runs, ["strong", "weak", "strong", "weak-b"]), ReportSettings(baseline="weak"))


def test_the_same_files_under_another_name_join_one_group(run_factory, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    renamed = BenchmarkFiles(copy / "renamed.json", copy / "space.json", 40)
    renamed.dialogues.write_bytes(run_factory.benchmark.dialogues.read_bytes())
    renamed.search_space.write_bytes(run_factory.benchmark.search_space.read_bytes())
    a = run_factory.make("by-name", ranks_from(seed=1))
    b = run_factory.make("by-copy", ranks_from(seed=2), benchmark=renamed)
    (paired,) = pair_runs(load_runs([a, b]))
    assert paired.benchmark == "dialogues" and paired.systems == ("by-name", "by-copy")


def test_a_lone_system_is_reported_with_a_warning(run_factory):
    (paired,) = pair_runs(load_runs([run_factory.make("alone", ranks_from(seed=1))]))
    assert paired.warnings == ("dialogues: only one system (alone); its values are shown, nothing is tested",)
