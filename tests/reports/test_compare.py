"""Comparisons of synthetic runs with known answers: big differences are significant, identical ranks are not."""

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.metrics import compute_metrics
from reports.compare import ReportSettings, compare_runs, per_dialogue, system_letters
from reports.runs import load_runs
from reports.statistics import mcnemar_exact
from tests.reports.conftest import ROUNDS, ranks_from

FAST = {"permutations": 2000, "bootstrap": 500}


def test_per_dialogue_values_average_to_the_harness_metrics():
    ranks = ranks_from(seed=3)
    metrics = compute_metrics(ranks, ks=(1, 5, 10))
    for metric in ("Hits@1", "Hits@10", "Recall@5", "MRR"):
        assert per_dialogue(ranks, metric).mean(axis=0) == pytest.approx(metrics[metric])
    with pytest.raises(ValueError, match="median"):
        per_dialogue(ranks, "MedR")


def test_large_difference_is_significant(run_factory):
    good, bad = ranks_from(seed=1, good=0.95), ranks_from(seed=2, good=0.1)
    runs = load_runs([run_factory.make("good", good), run_factory.make("bad", bad)])
    (benchmark,) = compare_runs(runs, ReportSettings(**FAST)).benchmarks
    (primary,) = [test for test in benchmark.tests if test.family == "primary"]
    hit_good, hit_bad = per_dialogue(good, "Hits@10")[:, -1] > 0, per_dialogue(bad, "Hits@10")[:, -1] > 0
    expected = mcnemar_exact(hit_good, hit_bad)
    assert (primary.a_only, primary.b_only, primary.p_value) == (expected.a_only, expected.b_only, expected.p_value)
    assert primary.metric == "Hits@10" and primary.round == ROUNDS and primary.test == "exact McNemar"
    assert primary.difference == pytest.approx(100 * (hit_good.mean() - hit_bad.mean()))
    assert primary.ci_low > 0 and primary.p_adjusted < 1e-6 and primary.better == "good"
    by_metric = {test.metric: test for test in benchmark.tests if test.family == "rank"}
    assert by_metric["MRR"].better == "good" and by_metric["BRI"].better == "good"
    assert by_metric["BRI"].difference < 0  # lower BRI is better
    assert by_metric["MRR"].p_value == pytest.approx(1 / 2001)  # +1 correction: the smallest possible p
    assert benchmark.wins("Hits@10", ROUNDS, "primary") == {"good": ["bad"], "bad": []}
    assert benchmark.summary["Hits@10"]["good"].value == pytest.approx(100 * hit_good.mean())


def test_identical_ranks_give_p_one_and_zero_difference(run_factory):
    ranks = ranks_from(seed=5)
    runs = load_runs([run_factory.make("a", ranks), run_factory.make("b", ranks)])
    (benchmark,) = compare_runs(runs, ReportSettings(**FAST)).benchmarks
    assert benchmark.tests
    for test in benchmark.tests:
        assert test.p_value == 1.0 and test.p_adjusted == 1.0
        assert test.difference == 0.0 and test.ci_low == 0.0 and test.ci_high == 0.0 and test.better is None
    assert all(not letters for letters in benchmark.wins("Hits@10", ROUNDS).values())


def test_families_pairs_and_holm(run_factory):
    paths = [run_factory.make(name, ranks_from(seed=seed, good=good))
             for name, seed, good in (("x", 1, 0.9), ("y", 2, 0.5), ("z", 3, 0.2))]
    comparison = compare_runs(load_runs(paths), ReportSettings(metrics=("Hits@1",), **FAST))
    (benchmark,) = comparison.benchmarks
    primary = [test for test in benchmark.tests if test.family == "primary"]
    assert [(t.system_a, t.system_b) for t in primary] == [("x", "y"), ("x", "z"), ("y", "z")]
    raw = sorted(test.p_value for test in primary)
    adjusted = sorted(test.p_adjusted for test in primary)
    assert adjusted[0] == pytest.approx(min(1, 3 * raw[0]))
    assert all("Holm across 3 pairs" == test.correction for test in primary)
    per_round = [t for t in benchmark.tests if t.family == "per-round" and t.metric == "Hits@1" and t.system_a == "x"
                 and t.system_b == "y"]
    assert [t.round for t in per_round] == list(range(ROUNDS + 1))
    assert all(t.correction == f"Holm across {ROUNDS + 1} rounds" for t in per_round)
    assert {t.metric for t in benchmark.tests if t.family == "per-round"} == {"Hits@1", "Hits@10", "Recall@10", "MRR", "BRI"}

    baseline = compare_runs(load_runs(paths), ReportSettings(baseline="y", **FAST)).benchmarks[0]
    pairs = {(t.system_a, t.system_b) for t in baseline.tests}
    assert pairs == {("x", "y"), ("z", "y")}
    with pytest.raises(HarnessError, match="'w' is not one of the systems: x, y, z"):
        compare_runs(load_runs(paths), ReportSettings(baseline="w"))


def test_auc_primary_uses_the_randomization_test(run_factory):
    a, b = ranks_from(seed=1, good=0.9), ranks_from(seed=2, good=0.3)
    runs = load_runs([run_factory.make("a", a), run_factory.make("b", b)])
    (benchmark,) = compare_runs(runs, ReportSettings(primary="auc", **FAST)).benchmarks
    (primary,) = [test for test in benchmark.tests if test.family == "primary"]
    assert primary.metric == "Hits@10-AUC" and primary.round is None and primary.test == "paired randomization"
    auc_a = per_dialogue(a, "Hits@10").mean(axis=1)
    auc_b = per_dialogue(b, "Hits@10").mean(axis=1)
    assert primary.difference == pytest.approx((auc_a - auc_b).mean())
    assert benchmark.summary["Hits@10-AUC"]["a"].value == pytest.approx(np.mean(compute_metrics(a)["Hits@10"]))


def test_degradation_against_text_only_ranks(run_factory):
    fused = np.full((40, ROUNDS + 1), 5)
    text = np.full((40, ROUNDS + 1), 5)
    text[:10, 3] = 2  # dialogues 0-9 are degraded at round 3 by 3 ranks
    text[:4, 7] = 0   # dialogues 0-3 at round 7 by 5 ranks
    runs = load_runs([run_factory.make("fused", fused, text_only=text), run_factory.make("plain", fused)])
    (benchmark,) = compare_runs(runs, ReportSettings(**FAST)).benchmarks
    assert set(benchmark.degradation) == {"fused"}
    degradation = benchmark.degradation["fused"]
    expected = np.zeros(ROUNDS + 1)
    expected[3], expected[7] = 25.0, 10.0
    assert degradation.rate.values == pytest.approx(expected)
    assert degradation.mean_drop[3] == 3.0 and degradation.mean_drop[7] == 5.0 and np.isnan(degradation.mean_drop[0])


def test_settings_are_checked_and_letters():
    with pytest.raises(HarnessError, match="unknown metric 'P@5'"):
        ReportSettings(metrics=("P@5",))
    with pytest.raises(HarnessError, match="primary endpoint"):
        ReportSettings(primary="median")
    assert ReportSettings(metrics=("Recall@5", "Hits@1")).round_metrics == (
        "Hits@1", "Hits@10", "Recall@5", "Recall@10", "MRR", "BRI", "MedR")
    assert system_letters(["p", "q", "r"]) == {"p": "a", "q": "b", "r": "c"}


def test_running_bri_is_the_bri_of_rounds_zero_to_t():
    from harness.metrics import bri_per_dialogue
    from reports.compare import running_bri

    ranks = np.array([[3, 0, 7], [1, 1, 0]])
    # best so far: [3, 0, 0] and [1, 1, 0]; log(best + 1) = [log 4, 0, 0] and [log 2, log 2, 0]
    expected = np.array([
        [np.log(4), np.log(4) / 2, (np.log(4) / 2 + 0) / 2],
        [np.log(2), np.log(2), (np.log(2) + np.log(2) / 2) / 2],
    ])
    assert np.allclose(running_bri(ranks), expected)
    assert np.allclose(running_bri(ranks)[:, -1], bri_per_dialogue(ranks))


def test_a_system_at_zero_or_all_hits_gets_a_clopper_pearson_interval_not_a_point(run_factory):
    from statsmodels.stats.proportion import proportion_confint

    never = np.full((40, ROUNDS + 1), 50)
    always = np.zeros((40, ROUNDS + 1), dtype=int)
    runs = load_runs([run_factory.make("never", never), run_factory.make("always", always)])
    (benchmark,) = compare_runs(runs, ReportSettings(**FAST)).benchmarks
    low, high = proportion_confint(0, 40, alpha=0.05, method="beta")
    assert (benchmark.summary["Hits@10"]["never"].low, benchmark.summary["Hits@10"]["never"].high) == pytest.approx(
        (100 * low, 100 * high))
    assert benchmark.summary["Hits@10"]["always"].high == 100.0 and benchmark.summary["Hits@10"]["always"].low < 100
    curve = benchmark.curves["Hits@10"]["never"]
    assert (curve.low == 0).all() and (curve.high == pytest.approx(100 * high))


def _monte_carlo_test(p_value: float, permutations: int, difference: float = 0.1):
    from reports.compare import PairTest
    from reports.statistics import monte_carlo_error

    return PairTest(benchmark="b", family="rank", metric="MRR", round=10, system_a="a", system_b="b",
                    test="paired randomization", difference=difference, ci_low=0.0, ci_high=0.2, p_value=p_value,
                    p_adjusted=p_value, correction="", permutations=permutations,
                    p_error=monte_carlo_error(p_value, permutations))


def test_a_monte_carlo_verdict_too_close_to_alpha_is_undecided():
    from reports.compare import _correct_family

    settings = ReportSettings(**FAST)
    (close,) = _correct_family([_monte_carlo_test(0.049995, 2000)], "one test", settings)
    assert close.undecided and close.better is None and close.permutations_needed > 2000
    (clear,) = _correct_family([_monte_carlo_test(0.0005, 20_000)], "one test", settings)
    assert not clear.undecided and clear.better == "a" and clear.permutations_needed is None
    # The interval is of the corrected p: two tests at p = 0.02 (Holm: 0.04) with few permutations are undecided.
    pair = _correct_family([_monte_carlo_test(0.02, 500), _monte_carlo_test(0.02, 500)], "two", settings)
    assert all(test.undecided for test in pair)


def test_benjamini_hochberg_is_offered_and_named(run_factory):
    paths = [run_factory.make(name, ranks_from(seed=seed, good=good))
             for name, seed, good in (("x", 1, 0.9), ("y", 2, 0.5), ("z", 3, 0.2))]
    comparison = compare_runs(load_runs(paths), ReportSettings(correction="bh", **FAST))
    (benchmark,) = comparison.benchmarks
    primary = [test for test in benchmark.tests if test.family == "primary"]
    from statsmodels.stats.multitest import multipletests

    expected = multipletests([test.p_value for test in primary], method="fdr_bh")[1]
    assert [test.p_adjusted for test in primary] == pytest.approx(list(expected))
    assert all(test.correction.startswith("Benjamini-Hochberg across 3 pairs") for test in primary)
    with pytest.raises(HarnessError, match="correction must be one of holm, bh"):
        ReportSettings(correction="bonferroni")
