"""Exact target ranks over the whole search space without sorting it.

Tie rule: the rank of the target is the number of images scoring STRICTLY higher, so an image tied with the target
never pushes it down (ties resolve in the target's favour). A target scoring NaN or infinity is an error
(``NonFiniteScores``), never a rank. The public ChatIR code takes a full argsort instead, whose
order among exactly equal scores is arbitrary; for distinct scores both give the same 0-based rank.

    >>> scores = torch.tensor([[0.1, 0.9, 0.5], [0.3, 0.3, 0.2]])
    >>> ranks_from_scores(scores, [2, 1])
    [1, 0]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from harness.errors import HarnessError


class NonFiniteScores(HarnessError):
    """A target scored NaN or infinity (a NaN never compares higher, so its rank would read as a perfect 0).
    ``rows``: the query rows of the batch concerned, for the caller to name the dialogues."""

    def __init__(self, rows: Sequence[int]) -> None:
        self.rows = tuple(rows)
        super().__init__(
            f"non-finite scores (NaN or inf) for the target of query rows {list(self.rows[:10])}: the query or the "
            "target image embedding is not finite (an fp16 overflow? try dtype=bfloat16 or float32)"
        )


def ranks_from_scores(scores: torch.Tensor, target_indices: Sequence[int]) -> list[int]:
    """0-based target rank per row of a (queries x images) score matrix."""
    targets = torch.as_tensor(list(target_indices), device=scores.device, dtype=torch.long).unsqueeze(1)
    target_scores = scores.gather(1, targets)
    finite = torch.isfinite(target_scores).squeeze(1)
    if not bool(finite.all()):
        raise NonFiniteScores(torch.nonzero(~finite).squeeze(1).tolist())
    # int32 accumulation is about 4x faster than the default int64 on CPU; 2**31 images is no practical limit.
    return torch.sum(scores > target_scores, dim=1, dtype=torch.int32).tolist()


def target_ranks(
    queries: torch.Tensor,
    images: torch.Tensor,
    target_indices: Sequence[int],
    chunk_size: int = 128,
) -> list[int]:
    """Rank ``images`` (N x D) for each query (B x D) by dot product; one matrix product per chunk of queries."""
    if queries.shape[-1] != images.shape[-1]:
        raise ValueError(f"query width {queries.shape[-1]} does not match image width {images.shape[-1]}")
    queries = queries.to(device=images.device, dtype=images.dtype)
    ranks: list[int] = []
    for start in range(0, queries.shape[0], chunk_size):
        scores = queries[start : start + chunk_size] @ images.T
        try:
            ranks.extend(ranks_from_scores(scores, target_indices[start : start + chunk_size]))
        except NonFiniteScores as error:
            raise NonFiniteScores([start + row for row in error.rows]) from None
    return ranks


def argsort_ranks(queries: torch.Tensor, images: torch.Tensor, target_indices: Sequence[int]) -> list[int]:
    """The public code's method (full descending argsort per query), kept as the benchmark's reference."""
    scores = queries.to(device=images.device, dtype=images.dtype) @ images.T
    order = torch.argsort(scores, dim=1, descending=True)
    targets = torch.as_tensor(list(target_indices), device=images.device).unsqueeze(1)
    return (order == targets).nonzero()[:, 1].tolist()
