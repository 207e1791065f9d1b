"""Metrics of interactive retrieval, all derived from the (dialogues x rounds) matrix of 0-based target ranks.

    >>> ranks = np.array([[12, 3, 40], [0, 20, 20]])
    >>> hits_at_k(ranks, 10).tolist()     # accumulated: a hit at any round <= t counts
    [50.0, 100.0, 100.0]
    >>> recall_at_k(ranks, 10).tolist()   # per round, no accumulation
    [50.0, 50.0, 0.0]

Definitions (PROTOCOL.md section 4):
- ``Hits@k`` (ChatIR): percentage of dialogues whose target ranked < k at ANY round <= t. Never decreases.
- ``Recall@k`` (PlugIR): percentage of dialogues whose target ranks < k at round t.
- ``BRI`` (PlugIR, lower is better): with m_r the best rank up to round r, the mean over r = 0..R-1 of the mean over
  dialogues of (ln(m_r + 1) + ln(m_{r+1} + 1)) / 2. Natural logarithm.
- ``MRR`` per round: mean of 1 / (rank + 1).
- ``MedR`` per round: median of the 1-based rank (rank + 1), so a perfect retriever has MedR 1.
- ``Degradation`` (ADaFuSE's analysis, fused retrievers only): per round, the percentage of dialogues whose fused
  rank is worse (higher) than the text-only rank of the same query; ``RankDrop``: the mean of (fused - text-only)
  over those degraded dialogues (null in a round with none).
- ``GateMean`` / ``GateCosineCorrelation`` (learned fusion only): per round, the mean gate value (the text weight)
  and its Pearson correlation with the text/image cosine similarity (null where either is constant);
  ``TextImageCosineMean``: the mean of that cosine; ``GateByCosineQ1`` .. ``GateByCosineQ4``: the mean gate of each
  quarter of the round's dialogues ordered by cosine (Q1 the lowest; null in a quarter left empty by fewer than four
  dialogues), so the shape of the relation shows, not only its linear part.
- ``TruncatedQueries`` (retrievers that report it): per round, the percentage of dialogues whose query text was
  cut at the encoder's token limit.
- ``TiedTargets`` (retrievers that report ties, as the harness's ranking does): per round, the percentage of dialogues
  whose target scored exactly as some other image (the stable tie rule of ``harness.ranking`` placed it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from harness.types import QUERY_TRUNCATED

DEFAULT_KS = (1, 5, 10)
QUARTERS = 4  # cosine bins of the gate inspection


def as_rank_matrix(ranks: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
    matrix = np.asarray(ranks, dtype=np.int64)
    if matrix.ndim != 2:
        raise ValueError(f"ranks must be a (dialogues x rounds) matrix, got shape {matrix.shape}")
    if matrix.size and matrix.min() < 0:
        raise ValueError("ranks are 0-based and cannot be negative")
    return matrix


def best_rank_so_far(ranks: np.ndarray) -> np.ndarray:
    return np.minimum.accumulate(ranks, axis=1)


def hits_at_k(ranks: np.ndarray, k: int) -> np.ndarray:
    return 100.0 * (best_rank_so_far(ranks) < k).mean(axis=0)


def recall_at_k(ranks: np.ndarray, k: int) -> np.ndarray:
    return 100.0 * (ranks < k).mean(axis=0)


def mrr(ranks: np.ndarray) -> np.ndarray:
    return (1.0 / (ranks + 1.0)).mean(axis=0)


def median_rank(ranks: np.ndarray) -> np.ndarray:
    return np.median(ranks + 1, axis=0)


def bri_per_dialogue(ranks: np.ndarray) -> np.ndarray:
    """Each dialogue's BRI term; the benchmark's BRI is their mean (per-dialogue values feed paired tests)."""
    if ranks.shape[1] < 2:
        raise ValueError("BRI needs at least two rounds")
    log_best = np.log(best_rank_so_far(ranks) + 1.0)
    return ((log_best[:, :-1] + log_best[:, 1:]) / 2.0).mean(axis=1)


def bri(ranks: np.ndarray) -> float:
    return float(bri_per_dialogue(ranks).mean())


def compute_metrics(ranks: Sequence[Sequence[int]] | np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, Any]:
    """Every metric of one run, keyed by canonical metric strings (``Hits@10``); per-round lists index rounds."""
    matrix = as_rank_matrix(ranks)
    if matrix.shape[0] == 0:
        raise ValueError("no dialogues to compute metrics over")
    metrics: dict[str, Any] = {}
    for k in ks:
        metrics[f"Hits@{k}"] = hits_at_k(matrix, k).tolist()
    for k in ks:
        metrics[f"Recall@{k}"] = recall_at_k(matrix, k).tolist()
    metrics["MRR"] = mrr(matrix).tolist()
    metrics["MedR"] = median_rank(matrix).tolist()
    if matrix.shape[1] >= 2:
        metrics["BRI"] = bri(matrix)
    return metrics


def degradation(fused: np.ndarray, text_only: np.ndarray) -> tuple[list[float], list[float | None]]:
    """Per round: % of dialogues the fusion made worse, and their mean rank drop (None where none were)."""
    worse = fused > text_only
    drop = np.where(worse, fused - text_only, 0)
    counts = worse.sum(axis=0)
    rates = (100.0 * worse.mean(axis=0)).tolist()
    drops = [float(drop[:, r].sum() / counts[r]) if counts[r] else None for r in range(fused.shape[1])]
    return rates, drops


def gate_by_cosine_quartile(gates: np.ndarray, cosines: np.ndarray) -> list[list[float | None]]:
    """For each quarter (lowest cosine first) of every round's dialogues sorted by text/image cosine, the per-round
    mean gate; ``gates`` and ``cosines`` are (dialogues x rounds). The dialogue at sorted position i of n falls in
    quarter floor(4 i / n), its empirical quantile, so with fewer than four dialogues the empty quarters are spread
    out rather than all at the top. Ties keep dialogue order (a stable sort)."""
    count = gates.shape[0]
    quarter_of_position = np.arange(count) * QUARTERS // max(1, count)
    quarters: list[list[float | None]] = [[] for _ in range(QUARTERS)]
    for round_ in range(gates.shape[1]):
        order = np.argsort(cosines[:, round_], kind="stable")
        for number, quarter in enumerate(quarters):
            members = order[quarter_of_position == number]
            quarter.append(float(gates[members, round_].mean()) if members.size else None)
    return quarters


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    if x.size < 2 or np.std(x) == 0 or np.std(y) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


class _HasSides(Protocol):
    ranks: Sequence[int]
    side_ranks: Mapping[str, Sequence[int]]
    side_values: Mapping[str, Sequence[float]]
    tied: Sequence[bool]


def run_metrics(records: Sequence[_HasSides]) -> dict[str, Any]:
    """Every metric of a run's finished records: the rank metrics, the side metrics and ``TiedTargets``."""
    metrics = compute_metrics([record.ranks for record in records])
    metrics.update(side_metrics(records))
    if records and all(QUERY_TRUNCATED in record.side_values for record in records):
        cut = np.asarray([record.side_values[QUERY_TRUNCATED] for record in records], dtype=np.float64)
        metrics["TruncatedQueries"] = (100.0 * cut.mean(axis=0)).tolist()
    if records and all(len(record.tied) == len(record.ranks) for record in records):
        metrics["TiedTargets"] = (100.0 * np.asarray([record.tied for record in records], dtype=np.float64)
                                  .mean(axis=0)).tolist()
    return metrics


def side_metrics(records: Sequence[_HasSides]) -> dict[str, Any]:
    """Degradation from ``text_only`` side ranks, gate statistics from ``gate`` and ``text_image_cosine`` side
    values, where every record carries them."""
    metrics: dict[str, Any] = {}
    if records and all("text_only" in record.side_ranks for record in records):
        rates, drops = degradation(
            as_rank_matrix([record.ranks for record in records]),
            as_rank_matrix([record.side_ranks["text_only"] for record in records]),
        )
        metrics["Degradation"] = rates
        metrics["RankDrop"] = drops
    if records and all({"gate", "text_image_cosine"} <= set(record.side_values) for record in records):
        gates = np.asarray([record.side_values["gate"] for record in records], dtype=np.float64)
        cosines = np.asarray([record.side_values["text_image_cosine"] for record in records], dtype=np.float64)
        metrics["GateMean"] = gates.mean(axis=0).tolist()
        metrics["GateCosineCorrelation"] = [_pearson(gates[:, r], cosines[:, r]) for r in range(gates.shape[1])]
        metrics["TextImageCosineMean"] = cosines.mean(axis=0).tolist()
        for number, means in enumerate(gate_by_cosine_quartile(gates, cosines), start=1):
            metrics[f"GateByCosineQ{number}"] = means
    return metrics
