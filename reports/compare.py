"""Compare paired runs: per-round values with bootstrap intervals, and the significance tests a reviewer expects.

    runs = load_runs([Path("runs/chatir-visdial"), Path("runs/dar-visdial")])
    comparison = compare_runs(runs, ReportSettings(baseline="chatir-visdial", metrics=("Hits@1", "Hits@5")))
    comparison.benchmarks[0].summary["Hits@10"]["dar-visdial"]       # Estimate(value, low, high)
    [test for test in comparison.benchmarks[0].tests if test.family == "primary"]

Per benchmark (runs grouped and paired by ``reports.runs.pair_runs``):

- Values: per-round accumulated ``Hits@10`` (and the requested ``Hits@k``/``Recall@k``), per-round ``Recall@10``,
  ``MRR`` and ``MedR`` from ``harness.metrics.compute_metrics``, and ``BRI`` (whole dialogue, and per round as the
  BRI of rounds 0..t: ``running_bri``). A system's own Hits@k and Recall@k (proportions of dialogues) get exact
  Clopper-Pearson intervals; percentile bootstrap intervals of every other mean, and of every difference, come from
  one set of resampled dialogues shared by all systems (so intervals of differences are paired). ``MedR`` is a
  median and gets no interval and no test.
- Corrections (``correction``): Holm (family-wise error rate, the default) or Benjamini-Hochberg (false discovery
  rate); below, "corrected" means the chosen one. A Monte Carlo p-value too close to alpha to call (its 99% interval,
  corrected, contains alpha) is an undecided verdict, never a significant one.
- Primary endpoint, one test per compared pair, corrected across the pairs: accumulated Hits@10 at the last round with
  the exact McNemar test (``--primary last-round``), or the per-dialogue area under the accumulated Hits@10 curve
  (mean over rounds of the dialogue's 0/1 hit indicator) with the paired randomization test (``--primary auc``).
- Rank measures, corrected across the pairs per measure: MRR at the last round and per-dialogue BRI, paired
  randomization.
- Secondary, per round: every per-round metric with per-dialogue values at every round (McNemar for the 0/1
  Hits/Recall, randomization for reciprocal rank), corrected across the rounds of each pair and metric.
- Pairs: every pair of systems, or each system against ``baseline`` only.
"""

from __future__ import annotations

import itertools
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from harness.errors import HarnessError
from harness.metrics import best_rank_so_far, compute_metrics
from reports.runs import TEXT_ONLY, LoadedRun, PairedRuns, pair_runs
from reports.statistics import (
    CORRECTIONS,
    bootstrap_means,
    mcnemar_exact,
    monte_carlo_interval,
    paired_permutation_test,
    percentile_interval,
    permutations_to_settle,
    proportion_interval,
)

PRIMARY_CHOICES = ("last-round", "auc")
PRIMARY_K = 10
DEFAULT_ROUND_METRICS = ("Hits@10", "Recall@10", "MRR", "BRI", "MedR")
LOWER_IS_BETTER = {"MedR", "BRI"}
_METRIC_PATTERN = re.compile(r"^(Hits|Recall)@([1-9][0-9]*)$")

MCNEMAR = "exact McNemar"
CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg"}
CORRECTION_TEXT = {
    "holm": "Holm's step-down correction (controls the family-wise error rate)",
    "bh": "Benjamini-Hochberg's step-up correction (controls the false discovery rate)",
}
PERMUTATION = "paired randomization"


@dataclass(frozen=True)
class ReportSettings:
    """Everything that changes a report's numbers; the report prints all of it."""

    metrics: tuple[str, ...] = ()  # per-round metrics shown in addition to DEFAULT_ROUND_METRICS
    baseline: str | None = None
    primary: str = "last-round"
    permutations: int = 10_000
    bootstrap: int = 1_000
    seed: int = 0
    alpha: float = 0.05
    confidence: float = 0.95
    correction: str = "holm"

    def __post_init__(self) -> None:
        if self.correction not in CORRECTIONS:
            raise HarnessError(f"correction must be one of {', '.join(CORRECTIONS)}, got {self.correction!r}")
        if self.primary not in PRIMARY_CHOICES:
            raise HarnessError(f"primary endpoint must be one of {', '.join(PRIMARY_CHOICES)}, got {self.primary!r}")
        for metric in self.metrics:
            if metric not in DEFAULT_ROUND_METRICS and not _METRIC_PATTERN.match(metric):
                raise HarnessError(f"unknown metric {metric!r}; use Hits@K or Recall@K (K >= 1), MRR, BRI or MedR")
        if self.permutations < 1 or self.bootstrap < 1:
            raise HarnessError("--permutations and --bootstrap must be at least 1")
        if not 0 < self.alpha < 1 or not 0 < self.confidence < 1:
            raise HarnessError("alpha and confidence must be between 0 and 1")

    @property
    def round_metrics(self) -> tuple[str, ...]:
        """Per-round tables in display order: accumulated Hits@k first, then Recall@k, MRR, BRI, MedR."""
        chosen = list(dict.fromkeys(("Hits@10", *self.metrics, *DEFAULT_ROUND_METRICS)))

        def order(metric: str) -> tuple[int, int]:
            match = _METRIC_PATTERN.match(metric)
            if match:
                return (0 if match.group(1) == "Hits" else 1, int(match.group(2)))
            return ({"MRR": 2, "BRI": 3}.get(metric, 4), 0)

        return tuple(sorted(chosen, key=order))

    @property
    def primary_metric(self) -> str:
        return f"Hits@{PRIMARY_K}" if self.primary == "last-round" else f"Hits@{PRIMARY_K}-AUC"


@dataclass(frozen=True)
class Estimate:
    """A mean with its percentile bootstrap interval (``low``/``high`` are NaN where none applies)."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Curve:
    """One system's per-round values of one metric, with bootstrap intervals (NaN for MedR)."""

    values: np.ndarray
    low: np.ndarray
    high: np.ndarray


@dataclass(frozen=True)
class PairTest:
    """One paired test of ``system_a`` against ``system_b``. ``difference`` is mean(a - b) in the metric's units
    (percentage points for Hits/Recall), with its paired bootstrap interval. ``a_only``/``b_only``: McNemar's
    discordant counts (dialogues only A / only B got right). ``permutations``: the sign vectors a randomization
    test used (all 2^n when ``test`` says exact). ``better``: the significantly better system after correction,
    else None (also when the verdict is ``undecided``: its Monte Carlo p-value's 99% interval, corrected, holds
    alpha)."""

    benchmark: str
    family: str  # "primary", "rank" or "per-round"
    metric: str
    round: int | None
    system_a: str
    system_b: str
    test: str
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    p_adjusted: float
    correction: str
    a_only: int | None = None
    b_only: int | None = None
    permutations: int | None = None
    better: str | None = None
    p_error: float = 0.0  # Monte Carlo standard error of p_value (0 when the p-value is exact)
    undecided: bool = False  # the Monte Carlo interval of p_adjusted contains alpha: no verdict either way
    permutations_needed: int | None = None  # random permutations that would settle an undecided verdict


@dataclass(frozen=True)
class Degradation:
    """Per round: the percentage of queries a fused retriever ranks worse than its own text-only query, and the
    mean rank drop of those degraded queries (NaN where none is degraded)."""

    rate: Curve
    mean_drop: np.ndarray


@dataclass(frozen=True)
class BenchmarkComparison:
    benchmark: str
    paired: PairedRuns
    letters: Mapping[str, str]
    curves: Mapping[str, Mapping[str, Curve]]  # metric -> system -> per-round curve
    summary: Mapping[str, Mapping[str, Estimate]]  # summary metric -> system -> estimate
    tests: tuple[PairTest, ...]
    degradation: Mapping[str, Degradation] = field(default_factory=dict)

    @property
    def systems(self) -> tuple[str, ...]:
        return self.paired.systems

    @property
    def rounds(self) -> int:
        return self.paired.rounds

    def summary_columns(self) -> list[tuple[str, int | None]]:
        """(metric, round) of each summary column: the primary endpoint, MRR at the last round, BRI."""
        return [(metric, _summary_round(metric, self.rounds)) for metric in self.summary]

    def wins(self, metric: str, round_: int | None, family: str | None = None) -> dict[str, list[str]]:
        """system -> systems it is significantly better than on ``metric`` at ``round_`` (after correction)."""
        wins: dict[str, list[str]] = {system: [] for system in self.systems}
        for test in self.tests:
            if test.metric != metric or test.round != round_ or test.better is None:
                continue
            if family is not None and test.family != family:
                continue
            loser = test.system_b if test.better == test.system_a else test.system_a
            wins[test.better].append(loser)
        return {system: sorted(losers, key=self.systems.index) for system, losers in wins.items()}


@dataclass(frozen=True)
class Comparison:
    settings: ReportSettings
    benchmarks: tuple[BenchmarkComparison, ...]
    runs: tuple[LoadedRun, ...]

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(warning for benchmark in self.benchmarks for warning in benchmark.paired.warnings)


def system_letters(systems: Sequence[str]) -> dict[str, str]:
    """ranx-style letters naming systems in superscripts: a, b, c, ... in the order given."""
    letters = {}
    for index, system in enumerate(systems):
        letters[system] = string.ascii_lowercase[index] if index < 26 else f"s{index + 1}"
    return letters


def per_dialogue(ranks: np.ndarray, metric: str) -> np.ndarray:
    """The (dialogues x rounds) matrix whose column means are ``metric`` per round, as ``compute_metrics`` gives it:
    100 x 0/1 hit indicators for ``Hits@k`` (accumulated) and ``Recall@k``, reciprocal ranks for ``MRR``."""
    match = _METRIC_PATTERN.match(metric)
    if match:
        k = int(match.group(2))
        reached = best_rank_so_far(ranks) if match.group(1) == "Hits" else ranks
        return 100.0 * (reached < k)
    if metric == "MRR":
        return 1.0 / (ranks + 1.0)
    if metric == "BRI":
        return running_bri(ranks)
    raise ValueError(f"{metric} has no per-dialogue values (a median is not a mean)")


def running_bri(ranks: np.ndarray) -> np.ndarray:
    """(dialogues x rounds): column t is the dialogue's BRI over rounds 0..t, the trapezoid mean of log(best rank so
    far + 1) over [0, t]; column 0 is log(best rank + 1) at round 0 (the mean over a single point), and the last
    column is the dialogue's BRI (``harness.metrics.bri_per_dialogue``)."""
    log_best = np.log(best_rank_so_far(ranks) + 1.0)
    if log_best.shape[1] < 2:
        return log_best
    trapezoids = np.cumsum((log_best[:, :-1] + log_best[:, 1:]) / 2.0, axis=1) / np.arange(1, log_best.shape[1])
    return np.hstack([log_best[:, :1], trapezoids])


def pairs_to_compare(benchmark: str, systems: Sequence[str], baseline: str | None) -> list[tuple[str, str]]:
    """(a, b) pairs tested: all pairs in system order, or (system, baseline) for every other system."""
    if baseline is None:
        return list(itertools.combinations(systems, 2))
    if baseline not in systems:
        raise HarnessError(
            f"the baseline {baseline!r} has no run on benchmark {benchmark!r} (its systems: {', '.join(systems)}); name the "
            "baseline's run on every benchmark the same (--name, once per run, in order)"
        )
    return [(system, baseline) for system in systems if system != baseline]


def compare_runs(runs: Sequence[LoadedRun], settings: ReportSettings | None = None) -> Comparison:
    """Pair ``runs`` per benchmark and compute every table value, interval and test of the report."""
    settings = settings or ReportSettings()
    if len(runs) < 1:
        raise HarnessError("give at least one run")
    if settings.baseline is not None and settings.baseline not in {run.name for run in runs}:
        raise HarnessError(
            f"--baseline {settings.baseline!r} is not one of the systems: {', '.join(run.name for run in runs)}"
        )
    benchmarks = tuple(_compare_benchmark(paired, settings) for paired in pair_runs(runs))
    return Comparison(settings, benchmarks, tuple(runs))


def _compare_benchmark(paired: PairedRuns, settings: ReportSettings) -> BenchmarkComparison:
    systems = paired.systems
    rounds = paired.rounds
    round_metrics = tuple(metric for metric in settings.round_metrics if metric != "BRI" or rounds >= 2)
    ks = sorted({int(m.split("@")[1]) for m in round_metrics if _METRIC_PATTERN.match(m)} | {PRIMARY_K})
    computed = {system: compute_metrics(paired.ranks[system], ks=ks) for system in systems}

    # Per-dialogue columns of every system, bootstrapped together: one resampling of dialogues for everything.
    columns: dict[tuple[str, str], np.ndarray] = {}
    for system in systems:
        ranks = paired.ranks[system]
        for metric in round_metrics:
            if metric != "MedR":
                columns[(system, metric)] = per_dialogue(ranks, metric)
        columns[(system, "MRR")] = per_dialogue(ranks, "MRR")
        columns[(system, f"Hits@{PRIMARY_K}")] = per_dialogue(ranks, f"Hits@{PRIMARY_K}")
        if settings.primary == "auc":
            columns[(system, settings.primary_metric)] = columns[(system, f"Hits@{PRIMARY_K}")].mean(axis=1)[:, None]
        side = paired.side_ranks[system].get(TEXT_ONLY)
        if side is not None:
            columns[(system, "Degradation")] = 100.0 * (ranks > side)
    keys = list(columns)
    widths = [columns[key].shape[1] for key in keys]
    offsets = np.concatenate([[0], np.cumsum(widths)])
    boot = bootstrap_means(np.hstack([columns[key] for key in keys]), settings.bootstrap, settings.seed)
    span = {key: slice(offsets[i], offsets[i + 1]) for i, key in enumerate(keys)}

    def boot_of(system: str, metric: str) -> np.ndarray:
        return boot[:, span[(system, metric)]]

    curves: dict[str, dict[str, Curve]] = {}
    for metric in round_metrics:
        curves[metric] = {}
        for system in systems:
            values = (columns[(system, metric)].mean(axis=0) if metric == "BRI"
                      else np.asarray(computed[system][metric], dtype=np.float64))
            if metric == "MedR":
                nan = np.full(rounds, np.nan)
                curves[metric][system] = Curve(values, nan, nan.copy())
            elif _is_proportion(metric):
                low, high = _proportion_band(columns[(system, metric)], settings.confidence)
                curves[metric][system] = Curve(values, low, high)
            else:
                low, high = percentile_interval(boot_of(system, metric), settings.confidence)
                curves[metric][system] = Curve(values, low, high)

    summary_metrics = [settings.primary_metric, "MRR"] + (["BRI"] if rounds >= 2 else [])
    summary: dict[str, dict[str, Estimate]] = {metric: {} for metric in summary_metrics}
    for system in systems:
        for metric in summary_metrics:
            column = _summary_column(metric, rounds)
            if _is_proportion(metric):
                low, high = _proportion_band(columns[(system, metric)][:, column:column + 1], settings.confidence)
            else:
                low, high = percentile_interval(boot_of(system, metric)[:, column], settings.confidence)
            value = _summary_value(computed[system], columns[(system, metric)], metric, rounds)
            summary[metric][system] = Estimate(value, float(np.squeeze(low)), float(np.squeeze(high)))

    tests: list[PairTest] = []
    pairs = pairs_to_compare(paired.benchmark, systems, settings.baseline)
    name = CORRECTION_NAMES[settings.correction]
    correction_pairs = f"{name} across {len(pairs)} {'comparisons with the baseline' if settings.baseline else 'pairs'}"
    for family, metrics in (("primary", [settings.primary_metric]), ("rank", summary_metrics[1:])):
        for metric in metrics:
            family_tests = []
            for a, b in pairs:
                family_tests.append(_test(paired, settings, columns, boot_of, family, metric,
                                          _summary_round(metric, rounds), _summary_column(metric, rounds), a, b))
            tests.extend(_correct_family(family_tests, correction_pairs, settings))
    for a, b in pairs:
        for metric in round_metrics:
            if metric == "MedR":
                continue
            round_tests = [_test(paired, settings, columns, boot_of, "per-round", metric, round_, round_, a, b)
                           for round_ in range(rounds)]
            tests.extend(_correct_family(round_tests, f"{name} across {rounds} rounds", settings))

    degradation = {}
    for system in systems:
        side = paired.side_ranks[system].get(TEXT_ONLY)
        if side is None:
            continue
        ranks = paired.ranks[system]
        degraded = ranks > side
        low, high = percentile_interval(boot_of(system, "Degradation"), settings.confidence)
        drop = np.where(degraded, ranks - side, 0).sum(axis=0) / np.maximum(degraded.sum(axis=0), 1)
        drop = np.where(degraded.any(axis=0), drop, np.nan)
        degradation[system] = Degradation(Curve(100.0 * degraded.mean(axis=0), low, high), drop)

    return BenchmarkComparison(
        benchmark=paired.benchmark,
        paired=paired,
        letters=system_letters(systems),
        curves=curves,
        summary=summary,
        tests=tuple(tests),
        degradation=degradation,
    )


def _is_proportion(metric: str) -> bool:
    """Hits@k and Recall@k of one system: a proportion of dialogues (not the AUC, a mean of proportions)."""
    return _METRIC_PATTERN.match(metric) is not None and not metric.endswith("-AUC")


def _proportion_band(hits: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Clopper-Pearson interval per column of a (dialogues x rounds) matrix of 0/100 hit values, in points."""
    successes = (hits > 0).sum(axis=0)
    bounds = [proportion_interval(int(count), hits.shape[0], confidence) for count in successes]
    return (100.0 * np.array([low for low, _ in bounds]), 100.0 * np.array([high for _, high in bounds]))


def _summary_round(metric: str, rounds: int) -> int | None:
    """Summary metrics at the last round (Hits@10, MRR) or over all rounds (BRI, AUC: round None)."""
    return None if metric == "BRI" or metric.endswith("-AUC") else rounds - 1


def _summary_column(metric: str, rounds: int) -> int:
    """The column of the per-dialogue matrix a summary metric reads (BRI: its value over all rounds, the last)."""
    if metric == "BRI":
        return rounds - 1
    round_ = _summary_round(metric, rounds)
    return 0 if round_ is None else round_


def _summary_value(computed: Mapping[str, object], column: np.ndarray, metric: str, rounds: int) -> float:
    if metric == "BRI":
        return float(computed["BRI"])  # type: ignore[arg-type]
    if metric.endswith("-AUC"):
        return float(column.mean())
    return float(computed[metric][rounds - 1])  # type: ignore[index]


def _test(
    paired: PairedRuns,
    settings: ReportSettings,
    columns: Mapping[tuple[str, str], np.ndarray],
    boot_of,
    family: str,
    metric: str,
    round_: int | None,
    column: int,
    a: str,
    b: str,
) -> PairTest:
    values_a = columns[(a, metric)][:, column]
    values_b = columns[(b, metric)][:, column]
    differences = values_a - values_b
    low, high = percentile_interval(boot_of(a, metric)[:, column] - boot_of(b, metric)[:, column], settings.confidence)
    binary = _is_proportion(metric)
    a_only = b_only = permutations = None
    p_error = 0.0
    if binary:
        result = mcnemar_exact(values_a > 0, values_b > 0)
        p_value, test, a_only, b_only = result.p_value, MCNEMAR, result.a_only, result.b_only
    else:
        randomization = paired_permutation_test(values_a, values_b, settings.permutations, settings.seed)
        p_value, permutations = randomization.p_value, randomization.permutations
        p_error = randomization.standard_error
        test = f"{PERMUTATION} (exact)" if randomization.exact else PERMUTATION
    return PairTest(
        benchmark=paired.benchmark,
        family=family,
        metric=metric,
        round=round_,
        system_a=a,
        system_b=b,
        test=test,
        difference=float(differences.mean()),
        ci_low=float(low),
        ci_high=float(high),
        p_value=p_value,
        p_adjusted=p_value,
        correction="",
        a_only=a_only,
        b_only=b_only,
        permutations=permutations,
        p_error=p_error,
    )


def _correct_family(tests: Sequence[PairTest], correction: str, settings: ReportSettings) -> list[PairTest]:
    """``settings.correction`` across ``tests``; a Monte Carlo verdict too close to alpha to call is undecided."""
    adjusted = CORRECTIONS[settings.correction]([test.p_value for test in tests])
    corrected = []
    for test, p_adjusted in zip(tests, adjusted):
        better, undecided, needed = None, False, None
        if test.p_error > 0 and test.p_value > 0:
            scale = p_adjusted / test.p_value  # the correction's multiplier of this p-value
            low, high = monte_carlo_interval(test.p_value, test.p_error)
            if min(1.0, scale * low) <= settings.alpha <= min(1.0, scale * high):
                undecided = True
                needed = permutations_to_settle(test.p_value, settings.alpha, scale)
        if p_adjusted < settings.alpha and test.difference != 0 and not undecided:
            a_wins = test.difference > 0 if test.metric not in LOWER_IS_BETTER else test.difference < 0
            better = test.system_a if a_wins else test.system_b
        corrected.append(PairTest(**{**test.__dict__, "p_adjusted": float(p_adjusted), "correction": correction,
                                     "better": better, "undecided": undecided, "permutations_needed": needed}))
    return corrected


def describe_methods(settings: ReportSettings, comparison: Comparison | None = None) -> list[str]:
    """The statistical choices in plain sentences, for the report's Methods section."""
    exact_note = (
        " When 2^n <= the number of permutations (n dialogues), all 2^n sign vectors are enumerated and p is exact."
    )
    primary = (
        f"Primary endpoint: accumulated Hits@{PRIMARY_K} at the last round, paired per dialogue (hit or not). "
        "Test: exact McNemar test, a two-sided binomial test with p = 1/2 on the discordant pairs only "
        "(scipy.stats.binomtest); the discordant counts are reported."
        if settings.primary == "last-round"
        else f"Primary endpoint: the per-dialogue area under the accumulated Hits@{PRIMARY_K} curve (the mean over "
        "rounds of the dialogue's 0/1 hit indicator, in points), paired per dialogue. Test: paired randomization test."
    )
    comparisons = (
        f"each system against the baseline {settings.baseline!r} only" if settings.baseline else "every pair of systems"
    )
    lines = [
        primary,
        "Rank measures (MRR at the last round, BRI per dialogue) and the area under the curve: paired randomization "
        f"(permutation) test of the mean difference, flipping each dialogue's pair with probability 1/2, "
        f"{settings.permutations} random permutations (seed {settings.seed}), p = (count + 1) / (permutations + 1) "
        "so that p is never 0; two-sided." + exact_note,
        (f"Differences are mean(A - B) per dialogue, in percentage points for Hits and Recall, with paired percentile "
        f"bootstrap {settings.confidence:.0%} confidence intervals from {settings.bootstrap} resamples of the "
        f"dialogues (seed {settings.seed}); the same resamples give every system's interval and the curve bands."),
        (f"Multiple comparisons: {comparisons}; {CORRECTION_TEXT[settings.correction]} across those comparisons "
        "for the primary endpoint and for each rank measure. Per-round tests (McNemar for Hits@k and Recall@k, "
        "randomization for reciprocal rank) are secondary and corrected the same way across the rounds of each pair "
        f"and metric. Significance at alpha = {settings.alpha} after correction."),
        ("Monte Carlo p-values are reported with their standard error sqrt(p (1 - p) / permutations); a verdict whose "
        "99% interval of the corrected p-value contains alpha is marked undecided (neither significant nor not), "
        "with the number of permutations that would settle it at the current estimate."),
        ("Superscript letters (as in ranx) name the systems a value is significantly better than. MedR is a median: "
        "no interval and no test. Lower is better for BRI and MedR."),
        ("Why never Wilcoxon on a binary outcome: the per-dialogue differences of a 0/1 outcome are only -1, 0 and "
        "+1, so every non-zero difference ties in absolute value; the signed-rank test then reduces to a sign test "
        "on the discordant pairs computed with a tie-corrected normal approximation and an arbitrary treatment of "
        "the (many) zero differences. Exact McNemar is that sign test, computed exactly."),
    ]
    if comparison is not None:
        lines.extend(f"Warning: {warning}" for warning in comparison.warnings)
    return lines
