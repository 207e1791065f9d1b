"""Paired significance tests and confidence intervals on per-dialogue vectors: pure functions, no I/O.

    >>> a = np.array([1, 1, 1, 0, 1]); b = np.array([0, 0, 1, 0, 0])
    >>> mcnemar_exact(a, b)                      # binary outcome: exact McNemar on the discordant pairs
    McNemarResult(a_only=3, b_only=0, both=1, neither=1, p_value=0.25)
    >>> paired_permutation_test(a * 1.0, b * 1.0, permutations=10_000).p_value   # 2**5 <= 10_000: exact
    0.25
    >>> holm([0.01, 0.04, 0.03]).tolist()
    [0.03, 0.06, 0.06]

Choices, stated for the report (``describe_methods`` in ``reports.compare`` quotes them):

- Binary per-dialogue outcomes (a hit or not) use the exact McNemar test: a two-sided binomial test with p = 1/2 on
  the discordant pairs only (``scipy.stats.binomtest``), reported with the discordant counts. The Wilcoxon
  signed-rank test is never used on binary outcomes: every non-zero paired difference is +1 or -1, so all of them
  tie in absolute value and the signed-rank statistic degenerates into a sign test on the discordant pairs, computed
  with a tie-corrected normal approximation and a convention for the zero differences (which are most pairs).
  Exact McNemar is that sign test done exactly, without the approximation.
- Continuous per-dialogue measures (reciprocal rank, BRI, area under the accumulated curve) use a paired
  randomization test of the mean difference: each permutation flips the sign of every dialogue's difference with
  probability 1/2 (swapping the two systems' values for that dialogue). With ``2**n <= permutations`` every sign
  vector is enumerated and the p-value is exact; otherwise ``permutations`` random sign vectors are drawn (seeded)
  and p = (count + 1) / (permutations + 1), so p is never 0. Two-sided: |mean| at least the observed |mean|.
- Confidence intervals: the paired percentile bootstrap of the mean, resampling dialogues with replacement (the
  same resampled dialogues for both systems, so the interval is of the paired difference), seeded. Resample
  indices are drawn in blocks of ``BOOTSTRAP_BLOCK`` resamples, each ``rng.integers(0, n, (block, n))``; with
  ``samples <= BOOTSTRAP_BLOCK`` this is exactly what ``scipy.stats.bootstrap(..., method="percentile")`` draws.
- Monte Carlo p-values carry their standard error sqrt(p (1 - p) / permutations) and a 99% interval
  (``monte_carlo_error``); a verdict whose interval, scaled by the correction, contains alpha is undecided, and
  ``permutations_to_settle`` says how many permutations would decide it.
- Single proportions (a system's own Hits@k or Recall@k) get the exact Clopper-Pearson interval
  (``proportion_interval``), which stays informative at 0% and 100% where a percentile bootstrap collapses to a point.
- Multiple comparisons: Holm's step-down correction (family-wise error rate), ``holm``, or Benjamini-Hochberg's
  step-up correction (false discovery rate), ``benjamini_hochberg``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest, norm

BOOTSTRAP_BLOCK = 1000
PERMUTATION_BLOCK = 1000
_EXACT_LIMIT = 20  # enumerate at most 2**20 sign vectors


@dataclass(frozen=True)
class McNemarResult:
    """Exact McNemar test of two paired binary vectors. ``a_only``: dialogues A got right and B did not."""

    a_only: int
    b_only: int
    both: int
    neither: int
    p_value: float

    @property
    def discordant(self) -> int:
        return self.a_only + self.b_only


@dataclass(frozen=True)
class PermutationResult:
    """Paired randomization test of mean(a - b). ``permutations`` is the number of sign vectors evaluated
    (``2**n`` when ``exact``)."""

    difference: float
    p_value: float
    permutations: int
    exact: bool

    @property
    def standard_error(self) -> float:
        """Monte Carlo standard error of ``p_value`` (0 when exact)."""
        return 0.0 if self.exact else monte_carlo_error(self.p_value, self.permutations)


@dataclass(frozen=True)
class ConfidenceInterval:
    """Percentile bootstrap interval of a mean."""

    estimate: float
    low: float
    high: float
    confidence: float
    samples: int


def _paired(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired tests need two vectors of the same length, got shapes {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("paired tests need at least one pair")
    return a, b


def mcnemar_exact(a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray) -> McNemarResult:
    """Exact (binomial) McNemar test of paired 0/1 outcomes; p = 1 when there is no discordant pair."""
    a, b = _paired(a, b)
    if not (np.isin(a, (0, 1)).all() and np.isin(b, (0, 1)).all()):
        raise ValueError("McNemar's test needs binary (0/1 or boolean) outcomes")
    a = a.astype(bool)
    b = b.astype(bool)
    a_only = int((a & ~b).sum())
    b_only = int((~a & b).sum())
    both = int((a & b).sum())
    neither = int((~a & ~b).sum())
    if a_only + b_only == 0:
        p_value = 1.0
    else:
        p_value = float(binomtest(b_only, a_only + b_only, 0.5, alternative="two-sided").pvalue)
    return McNemarResult(a_only, b_only, both, neither, min(p_value, 1.0))


def paired_permutation_pvalues(differences: np.ndarray, permutations: int = 10_000, seed: int = 0) -> np.ndarray:
    """Two-sided randomization p-values of the mean of every column of an (n x m) matrix of paired differences,
    all columns sharing the same sign vectors. Exact when ``2**n <= permutations``, else Monte Carlo with +1."""
    matrix = np.asarray(differences, dtype=np.float64)
    if matrix.ndim == 1:
        matrix = matrix[:, None]
    n = matrix.shape[0]
    if permutations < 1:
        raise ValueError(f"permutations must be at least 1, got {permutations}")
    observed = np.abs(matrix.mean(axis=0))
    # Means that differ only by rounding must count as equal (identical systems give p = 1).
    tolerance = 1e-12 * np.maximum(np.abs(matrix).max(axis=0, initial=0.0), 1.0)
    exact = n <= _EXACT_LIMIT and 2**n <= permutations
    count = np.zeros(matrix.shape[1], dtype=np.int64)
    if exact:
        total = 2**n
        for start in range(0, total, PERMUTATION_BLOCK):
            codes = np.arange(start, min(start + PERMUTATION_BLOCK, total))
            signs = 1.0 - 2.0 * ((codes[:, None] >> np.arange(n)[None, :]) & 1)
            count += (np.abs(signs @ matrix / n) >= observed - tolerance).sum(axis=0)
        return count / total
    rng = np.random.default_rng(seed)
    for start in range(0, permutations, PERMUTATION_BLOCK):
        block = min(PERMUTATION_BLOCK, permutations - start)
        signs = 1.0 - 2.0 * rng.integers(0, 2, size=(block, n))
        count += (np.abs(signs @ matrix / n) >= observed - tolerance).sum(axis=0)
    return (count + 1) / (permutations + 1)


def paired_permutation_test(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, permutations: int = 10_000, seed: int = 0
) -> PermutationResult:
    """Paired randomization (sign-flip) test of mean(a - b), two-sided."""
    a, b = _paired(a, b)
    differences = a.astype(np.float64) - b.astype(np.float64)
    p_value = float(paired_permutation_pvalues(differences, permutations, seed)[0])
    n = differences.size
    exact = n <= _EXACT_LIMIT and 2**n <= permutations
    return PermutationResult(float(differences.mean()), p_value, 2**n if exact else permutations, exact)


def bootstrap_means(values: np.ndarray, samples: int = 1000, seed: int = 0) -> np.ndarray:
    """Means of ``samples`` bootstrap resamples of the rows of ``values`` (n, or n x m): shape (samples,) or
    (samples, m). Every column uses the same resampled rows, so differences of columns are paired."""
    matrix = np.asarray(values, dtype=np.float64)
    vector = matrix.ndim == 1
    if vector:
        matrix = matrix[:, None]
    n = matrix.shape[0]
    if n == 0:
        raise ValueError("cannot bootstrap an empty sample")
    if samples < 1:
        raise ValueError(f"bootstrap samples must be at least 1, got {samples}")
    rng = np.random.default_rng(seed)
    means = np.empty((samples, matrix.shape[1]))
    for start in range(0, samples, BOOTSTRAP_BLOCK):
        block = min(BOOTSTRAP_BLOCK, samples - start)
        indices = rng.integers(0, n, (block, n))
        # Counting how often each row was drawn turns the resampled means into one matrix product.
        flat = (indices + n * np.arange(block)[:, None]).ravel()
        counts = np.bincount(flat, minlength=block * n).reshape(block, n).astype(np.float64)
        means[start : start + block] = counts @ matrix / n
    return means[:, 0] if vector else means


def percentile_interval(means: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of bootstrap means along axis 0."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(means, [100 * alpha, 100 * (1 - alpha)], axis=0)
    return low, high


def bootstrap_ci(
    values: Sequence[float] | np.ndarray, samples: int = 1000, seed: int = 0, confidence: float = 0.95
) -> ConfidenceInterval:
    """Percentile bootstrap interval of the mean of ``values`` (pass a - b for a paired difference)."""
    vector = np.asarray(values, dtype=np.float64)
    if vector.ndim != 1:
        raise ValueError(f"bootstrap_ci takes a vector, got shape {vector.shape}")
    low, high = percentile_interval(bootstrap_means(vector, samples, seed), confidence)
    return ConfidenceInterval(float(vector.mean()), float(low), float(high), confidence, samples)


def paired_bootstrap_ci(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    samples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> ConfidenceInterval:
    """Percentile bootstrap interval of mean(a - b), resampling pairs."""
    a, b = _paired(a, b)
    return bootstrap_ci(a.astype(np.float64) - b.astype(np.float64), samples, seed, confidence)


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values, in the input order: the i-th smallest p is multiplied by (m - i + 1),
    running maxima keep the order, capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError("holm takes a vector of p-values")
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


MONTE_CARLO_CONFIDENCE = 0.99


def monte_carlo_error(p_value: float, permutations: int) -> float:
    """Standard error of a Monte Carlo p-value estimated from ``permutations`` random permutations."""
    return float(np.sqrt(p_value * (1.0 - p_value) / permutations))


def monte_carlo_interval(p_value: float, error: float, confidence: float = MONTE_CARLO_CONFIDENCE
                         ) -> tuple[float, float]:
    """Normal-approximation interval of a Monte Carlo p-value, clipped to [0, 1]."""
    half = float(norm.ppf(0.5 + confidence / 2.0)) * error
    return max(0.0, p_value - half), min(1.0, p_value + half)


def permutations_to_settle(p_value: float, alpha: float, scale: float = 1.0,
                           confidence: float = MONTE_CARLO_CONFIDENCE) -> int | None:
    """Random permutations after which the ``confidence`` interval of ``scale`` x p (the corrected p-value) no
    longer contains ``alpha``, if p is where it stands; None when p equals alpha / scale (no number settles it)."""
    gap = abs(scale * p_value - alpha)
    if gap == 0:
        return None
    z = float(norm.ppf(0.5 + confidence / 2.0))
    return int(np.ceil((z * scale) ** 2 * p_value * (1.0 - p_value) / gap**2))


def proportion_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact Clopper-Pearson interval of a proportion, in [0, 1]."""
    if trials < 1:
        raise ValueError("a proportion needs at least one trial")
    interval = binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence, method="exact")
    return float(interval.low), float(interval.high)


def benjamini_hochberg(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg step-up adjusted p-values (false discovery rate), in the input order: the i-th smallest p
    is multiplied by m / i, running minima from the largest keep the order, capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError("benjamini_hochberg takes a vector of p-values")
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return adjusted


CORRECTIONS = {"holm": holm, "bh": benjamini_hochberg}
