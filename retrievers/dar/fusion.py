"""Static fusion of a text query with generated-image embeddings (DAR's two published variants).

    schedule = FusionSchedule.paper()                       # (0.7, 0.3) for rounds 0-1, then (0.5, 0.5)
    queries = fuse(text, images, [schedule.weights(r) for r in rounds], schedule.mode)
    ranks = rank_targets(queries, search_space_matrix, targets).ranks

Both variants reduce to one fused query vector per dialogue, ranked by one matrix product:
- ``embedding`` (paper): F = a E(S_t) + b sum_k E(I_k), ranked by cosine; dividing F by its norm scales all of
  its scores by one positive number and cannot change their order, so F is ranked by dot product as it is.
- ``score`` (released code): s(c) = w_t (t . c) + w_v (v . c) = (w_t t + w_v v) . c, so the weighted sum of the
  two unit vectors, unnormalised, ranks exactly as the fused scores do (v: the mean of the K images).
With image weight 0 and text weight 1 the fused query IS the text query, so the ranks equal the base retriever's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from harness.errors import ConfigError

MODES = ("embedding", "score")
IMAGE_AGGREGATES = ("sum", "mean")


@dataclass(frozen=True)
class FusionSchedule:
    """Weights (text, image) before ``switch_round`` and from it on; ``images_per_round`` generated images (K),
    combined by ``image_aggregate``: ``sum`` (equation 4 of the DAR paper, F = a t + b sum_k i_k: with K = 3 the
    images together weigh 3b against the text's a) or ``mean`` (the K images weigh b together)."""

    mode: str
    early: tuple[float, float]
    late: tuple[float, float]
    switch_round: int
    images_per_round: int
    image_aggregate: str = "sum"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"fusion mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        for name, (text, image) in (("early", self.early), ("late", self.late)):
            if text < 0 or image < 0:
                raise ConfigError(f"{name} fusion weights must not be negative, got ({text}, {image})")
        if self.image_aggregate not in IMAGE_AGGREGATES:
            raise ConfigError(f"image_aggregate must be one of {', '.join(IMAGE_AGGREGATES)}, got "
                              f"{self.image_aggregate!r}")
        if self.images_per_round < 1 or self.switch_round < 0:
            raise ConfigError("images_per_round must be at least 1 and switch_round at least 0")

    def weights(self, round_: int) -> tuple[float, float]:
        return self.early if round_ < self.switch_round else self.late

    @classmethod
    def paper(cls) -> FusionSchedule:
        return cls("embedding", (0.7, 0.3), (0.5, 0.5), switch_round=2, images_per_round=3)

    @classmethod
    def released(cls) -> FusionSchedule:
        return cls("score", (0.8, 0.2), (0.5, 0.5), switch_round=2, images_per_round=1, image_aggregate="mean")


def fuse(text: torch.Tensor, images: torch.Tensor, weights: Sequence[tuple[float, float]], mode: str,
         image_aggregate: str = "sum") -> torch.Tensor:
    """Fused queries (B, D) from unit text embeddings (B, D) and unit image embeddings (B, K, D); the K images are
    summed or averaged (``image_aggregate``) before weighting."""
    if images.dim() != 3 or images.shape[0] != text.shape[0] or images.shape[2] != text.shape[1]:
        raise ValueError(f"image embeddings {tuple(images.shape)} do not match text embeddings {tuple(text.shape)}")
    weight = torch.tensor(weights, dtype=text.dtype, device=text.device)
    text_weight, image_weight = weight[:, :1], weight[:, 1:]
    if mode not in MODES:
        raise ConfigError(f"fusion mode must be one of {', '.join(MODES)}, got {mode!r}")
    if image_aggregate not in IMAGE_AGGREGATES:
        raise ConfigError(f"image_aggregate must be one of {', '.join(IMAGE_AGGREGATES)}, got {image_aggregate!r}")
    image = images.sum(dim=1) if image_aggregate == "sum" else images.mean(dim=1)
    return text_weight * text + image_weight * image
