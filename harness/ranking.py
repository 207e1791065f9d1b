"""Exact target ranks over the whole search space without sorting it.

Scores are dot products computed in float32, whatever the encoders' dtype (in float16 or bfloat16 a fifth to two
fifths of random queries meet a tie at the target). Tie rule (``harness.config.TIE_RULE``, part of every run's identity): the rank
of the target is its position in a STABLE descending sort of the scores, i.e. the number of images scoring strictly
higher plus the number of images scoring exactly the same that come earlier in the search space. The public ChatIR
code's argsort gives the same rank whenever scores are distinct. A query whose scores are all equal (a constant or
zero embedding) or not all finite cannot be ranked: its failure reason is returned instead of a rank, never a hit.

    >>> scores = torch.tensor([[0.1, 0.9, 0.5], [0.3, 0.3, 0.2]])
    >>> ranking = ranks_from_scores(scores, [2, 1])
    >>> ranking.ranks, ranking.tied
    ((1, 1), (False, True))

With ``keep_top`` K the ranking also lists each query's K best images (search-space positions, best first, under
the same tie rule), which a run keeps in its trace.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from harness.types import RankBatch

DEFAULT_CHUNK = 128  # queries per score-matrix product
SCORE_BUDGET = 2**26  # float32 scores (256 MB) per product: large search spaces get fewer queries per chunk
UNRANKED = -1  # the rank placeholder of a query that could not be ranked


@dataclass(frozen=True)
class Ranking:
    """Per query: the target's 0-based rank (``UNRANKED`` where it failed), whether another image scored exactly
    the target's score, and why a query could not be ranked (None where it could)."""

    ranks: tuple[int, ...]
    tied: tuple[bool, ...]
    failures: tuple[str | None, ...]
    top: tuple[tuple[int, ...], ...] = ()  # per query, the ``keep_top`` best images (empty when not asked for)

    @property
    def failed(self) -> Mapping[int, str]:
        """Row -> reason, for the rows that could not be ranked."""
        return {row: reason for row, reason in enumerate(self.failures) if reason is not None}

    def batch(self, **sides: Mapping[str, tuple]) -> RankBatch:
        """This ranking as a retriever's answer (``sides``: ``side_ranks``, ``side_values``)."""
        return RankBatch(ranks=self.ranks, tied=self.tied, failures=self.failed, top=self.top, **sides)

    def __add__(self, other: Ranking) -> Ranking:
        return Ranking(self.ranks + other.ranks, self.tied + other.tied, self.failures + other.failures,
                       self.top + other.top)


def ranks_from_scores(scores: torch.Tensor, target_indices: Sequence[int], keep_top: int = 0) -> Ranking:
    """The ranking of each row of a (queries x images) score matrix; see the module doc for the rule."""
    scores = scores.to(torch.float32)
    targets = torch.as_tensor(list(target_indices), device=scores.device, dtype=torch.long).unsqueeze(1)
    target_scores = scores.gather(1, targets)
    # int32 accumulation is about 4x faster than the default int64 on CPU; 2**31 images is no practical limit.
    higher = torch.sum(scores > target_scores, dim=1, dtype=torch.int32)
    equal = torch.sum(scores == target_scores, dim=1, dtype=torch.int32) - 1  # the target equals itself
    tied_rows = torch.nonzero(equal > 0).squeeze(1)
    if len(tied_rows):  # rare in float32: only those rows pay for counting the tied images that come earlier
        earlier = torch.arange(scores.shape[1], device=scores.device).unsqueeze(0) < targets[tied_rows]
        tied_earlier = torch.sum((scores[tied_rows] == target_scores[tied_rows]) & earlier, dim=1, dtype=torch.int32)
        higher = higher.index_add(0, tied_rows, tied_earlier)
    failures = row_failures(scores)
    ranks = [UNRANKED if failure else rank for rank, failure in zip(higher.tolist(), failures)]
    tied = [bool(count > 0) and failure is None for count, failure in zip(equal.tolist(), failures)]
    top = stable_top(scores, keep_top, failures) if keep_top > 0 else ()
    return Ranking(tuple(ranks), tuple(tied), tuple(failures), top)


def row_failures(scores: torch.Tensor) -> list[str | None]:
    """Per row of a score matrix, why it cannot be ranked (all scores equal, or not all finite), else None."""
    low, high = torch.aminmax(scores, dim=1)
    return [_failure(float(lowest), float(highest)) for lowest, highest in zip(low.tolist(), high.tolist())]


def best_images(scores: torch.Tensor, count: int) -> tuple[tuple[int, ...], ...]:
    """Each row's ``count`` best columns under the stable tie rule; none for a row that cannot be ranked."""
    return stable_top(scores, count, row_failures(scores))


def stable_top(scores: torch.Tensor, count: int, failures: Sequence[str | None]) -> tuple[tuple[int, ...], ...]:
    """Each row's ``count`` best columns in the order of a stable descending sort (ties: the earlier column first);
    none for a row that could not be ranked. Only the images scoring at least the count-th best are sorted."""
    count = min(count, scores.shape[1])
    threshold = torch.topk(scores, count, dim=1).values[:, -1:]
    top = []
    for row, failure in enumerate(failures):
        if failure is not None:
            top.append(())
            continue
        candidates = torch.nonzero(scores[row] >= threshold[row]).squeeze(1)  # ascending columns
        order = torch.argsort(scores[row, candidates], descending=True, stable=True)
        top.append(tuple(candidates[order[:count]].tolist()))
    return tuple(top)


def rank_targets(
    queries: torch.Tensor,
    images: torch.Tensor,
    target_indices: Sequence[int],
    chunk_size: int = DEFAULT_CHUNK,
    keep_top: int = 0,
) -> Ranking:
    """Rank ``images`` (N x D) for each query (B x D) by float32 dot product; one matrix product per chunk of
    queries, so memory stays at ``chunk_size`` x N scores, and at most ``SCORE_BUDGET`` scores. ``keep_top``: also
    list each query's best images."""
    if queries.shape[-1] != images.shape[-1]:
        raise ValueError(f"query width {queries.shape[-1]} does not match image width {images.shape[-1]}")
    images = images.to(torch.float32)
    queries = queries.to(device=images.device, dtype=torch.float32)
    ranking = Ranking((), (), ())
    chunk_size = capped_chunk(images.shape[0], chunk_size)
    for start in range(0, queries.shape[0], chunk_size):
        scores = queries[start : start + chunk_size] @ images.T
        ranking += ranks_from_scores(scores, target_indices[start : start + chunk_size], keep_top)
    return ranking


def capped_chunk(images: int, chunk_size: int = DEFAULT_CHUNK) -> int:
    """Queries per score product over ``images`` images: ``chunk_size``, fewer when that would pass SCORE_BUDGET."""
    return max(1, min(chunk_size, SCORE_BUDGET // max(1, images)))


def argsort_ranks(
    queries: torch.Tensor, images: torch.Tensor, target_indices: Sequence[int], chunk_size: int = 32
) -> list[int]:
    """The reference: each target's position in a stable descending argsort of the same float32 products, chunk by
    chunk (a full argsort holds 8 bytes of indices per score)."""
    images = images.to(torch.float32)
    queries = queries.to(device=images.device, dtype=torch.float32)
    ranks: list[int] = []
    for start in range(0, queries.shape[0], chunk_size):
        ranks += argsort_from_scores(queries[start : start + chunk_size] @ images.T,
                                     target_indices[start : start + chunk_size])
    return ranks


def argsort_from_scores(scores: torch.Tensor, target_indices: Sequence[int]) -> list[int]:
    order = torch.argsort(scores.to(torch.float32), dim=1, descending=True, stable=True)
    targets = torch.as_tensor(list(target_indices), device=scores.device).unsqueeze(1)
    return (order == targets).nonzero()[:, 1].tolist()


def _failure(lowest: float, highest: float) -> str | None:
    if not (math.isfinite(lowest) and math.isfinite(highest)):  # aminmax propagates NaN
        return ("the query's scores are not all finite (NaN or inf): the query or an image embedding is not finite "
                "(an fp16 overflow? try dtype=bfloat16 or float32)")
    if lowest == highest:
        return "every image scores the same for this query (a constant or zero query embedding?): it ranks nothing"
    return None
