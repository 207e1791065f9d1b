"""Known-answer tests of the statistical kernels against scipy/statsmodels on the same vectors."""

import itertools

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from reports.statistics import (
    benjamini_hochberg,
    bootstrap_ci,
    bootstrap_means,
    holm,
    mcnemar_exact,
    paired_bootstrap_ci,
    paired_permutation_pvalues,
    paired_permutation_test,
    permutations_to_settle,
    proportion_interval,
)


def binary_pair(a_only: int, b_only: int, both: int, neither: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([1] * a_only + [0] * b_only + [1] * both + [0] * neither)
    b = np.array([0] * a_only + [1] * b_only + [1] * both + [0] * neither)
    order = np.random.default_rng(seed).permutation(a.size)
    return a[order], b[order]


@pytest.mark.parametrize("a_only, b_only, both, neither", [(3, 0, 1, 1), (12, 4, 30, 20), (7, 7, 5, 5), (1, 9, 0, 0),
                                                           (40, 25, 900, 100), (0, 0, 10, 3)])
def test_mcnemar_matches_statsmodels_exact(a_only, b_only, both, neither):
    a, b = binary_pair(a_only, b_only, both, neither)
    result = mcnemar_exact(a, b)
    assert (result.a_only, result.b_only, result.both, result.neither) == (a_only, b_only, both, neither)
    table = [[both, a_only], [b_only, neither]]
    expected = sm_mcnemar(table, exact=True).pvalue if a_only + b_only else 1.0
    assert result.p_value == pytest.approx(expected, rel=1e-12)


def test_mcnemar_hand_computed_and_input_checks():
    # 3 discordant pairs all one way: p = 2 * (1/2)^3
    assert mcnemar_exact([1, 1, 1, 0, 1], [0, 0, 1, 0, 0]).p_value == pytest.approx(0.25)
    with pytest.raises(ValueError, match="binary"):
        mcnemar_exact([0, 2], [1, 0])
    with pytest.raises(ValueError, match="same length"):
        mcnemar_exact([0, 1], [1])


def exact_enumeration(differences: np.ndarray) -> float:
    observed = abs(differences.mean())
    count = sum(abs((np.array(signs) * differences).mean()) >= observed - 1e-12
                for signs in itertools.product((1, -1), repeat=differences.size))
    return count / 2**differences.size


def test_permutation_exact_matches_enumeration_and_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.6, 1, 10), rng.normal(0, 1, 10)
    result = paired_permutation_test(a, b, permutations=2**10)
    assert result.exact and result.permutations == 2**10
    assert result.p_value == pytest.approx(exact_enumeration(a - b))
    scipy_result = stats.permutation_test(
        (a, b), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples", n_resamples=2**10,
        vectorized=True,
    )
    assert result.p_value == pytest.approx(scipy_result.pvalue)


def test_permutation_monte_carlo_agrees_with_scipy_and_is_seeded():
    rng = np.random.default_rng(4)
    a = rng.random(200) < 0.55
    b = rng.random(200) < 0.45
    a, b = 1.0 / (1 + rng.integers(0, 50, 200)) + 0.05 * a, 1.0 / (1 + rng.integers(0, 50, 200)) + 0.05 * b
    result = paired_permutation_test(a, b, permutations=20_000, seed=1)
    assert not result.exact and result.permutations == 20_000
    scipy_result = stats.permutation_test(
        (a, b), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples", n_resamples=20_000,
        vectorized=True, random_state=np.random.default_rng(1),
    )
    # Different random draws of the same null distribution: within Monte Carlo error (sd < 0.004 here).
    assert result.p_value == pytest.approx(scipy_result.pvalue, abs=0.015)
    assert paired_permutation_test(a, b, permutations=20_000, seed=1) == result


def test_permutation_plus_one_correction_and_identical_systems():
    a = np.ones(50)
    b = np.zeros(50)
    result = paired_permutation_test(a, b, permutations=999)
    assert result.p_value == pytest.approx(1 / 1000)  # never 0: the observed arrangement counts
    same = np.random.default_rng(0).random(50)
    identical = paired_permutation_test(same, same.copy(), permutations=999)
    assert identical.p_value == 1.0 and identical.difference == 0.0


def test_permutation_columns_share_sign_vectors():
    rng = np.random.default_rng(5)
    differences = rng.normal(0.2, 1, (60, 3))
    together = paired_permutation_pvalues(differences, permutations=500, seed=2)
    alone = [paired_permutation_pvalues(differences[:, j], permutations=500, seed=2)[0] for j in range(3)]
    assert together.tolist() == pytest.approx(alone)


def test_bootstrap_matches_scipy_percentile_with_same_seed():
    rng = np.random.default_rng(6)
    values = rng.normal(2.0, 3.0, 150)
    ours = bootstrap_ci(values, samples=900, seed=11, confidence=0.9)
    theirs = stats.bootstrap((values,), np.mean, n_resamples=900, method="percentile", confidence_level=0.9,
                             random_state=np.random.default_rng(11), vectorized=True).confidence_interval
    assert (ours.low, ours.high) == pytest.approx((theirs.low, theirs.high), rel=1e-12)
    assert ours.estimate == pytest.approx(values.mean())


def test_bootstrap_direct_computation_and_pairing():
    rng = np.random.default_rng(7)
    a, b = rng.random(40), rng.random(40)
    means = bootstrap_means(np.column_stack([a, b]), samples=2500, seed=3)
    # Direct computation with the same seed and block layout (blocks of 1000 resamples).
    generator = np.random.default_rng(3)
    direct = np.concatenate([a[generator.integers(0, 40, (size, 40))].mean(axis=1) for size in (1000, 1000, 500)])
    assert means[:, 0] == pytest.approx(direct)
    paired = paired_bootstrap_ci(a, b, samples=2500, seed=3)
    low, high = np.percentile(means[:, 0] - means[:, 1], [2.5, 97.5])
    assert (paired.low, paired.high) == pytest.approx((low, high))
    same = paired_bootstrap_ci(a, a, samples=200)
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0)


def test_holm_hand_computed_and_against_statsmodels():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    assert holm(p).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    rng = np.random.default_rng(8)
    for size in (1, 2, 5, 17):
        values = rng.random(size) ** 3
        assert holm(values) == pytest.approx(multipletests(values, method="holm")[1])
    assert holm([0.5, 0.9]).tolist() == [1.0, 1.0]
    assert holm([]).size == 0


def test_benjamini_hochberg_against_statsmodels():
    rng = np.random.default_rng(4)
    for p_values in ([0.01, 0.04, 0.03, 0.5], rng.uniform(0, 0.2, 25).tolist(), [0.2], [0.05, 0.05, 0.01]):
        expected = multipletests(p_values, method="fdr_bh")[1]
        assert np.allclose(benjamini_hochberg(p_values), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("successes, trials", [(0, 200), (200, 200), (1, 3), (57, 120), (2064, 2064)])
def test_proportion_interval_is_clopper_pearson_and_never_degenerate(successes, trials):
    low, high = proportion_interval(successes, trials, 0.95)
    expected = proportion_confint(successes, trials, alpha=0.05, method="beta")
    assert (low, high) == pytest.approx(expected, abs=1e-12)
    assert high - low > 0  # 0 hits of 200 is "0.00 [0.00, 1.83]", not "0.00 [0.00, 0.00]"


def test_a_monte_carlo_p_comes_with_its_error_and_the_permutations_that_settle_it():
    # The case the audit met: the same data, p = 0.049995 with one seed and 0.0556 with another.
    rng = np.random.default_rng(11)
    a = rng.normal(0.0, 1.0, 60)
    b = a - 0.26 + rng.normal(0.0, 0.001, 60)
    result = paired_permutation_test(a, b, permutations=2000, seed=0)
    assert not result.exact
    assert result.standard_error == pytest.approx(np.sqrt(result.p_value * (1 - result.p_value) / 2000))
    needed = permutations_to_settle(result.p_value, 0.05)
    gap = abs(result.p_value - 0.05)
    assert needed is not None and 2.5758 * np.sqrt(result.p_value * (1 - result.p_value) / needed) <= gap * 1.0001
    assert permutations_to_settle(0.05, 0.05) is None
