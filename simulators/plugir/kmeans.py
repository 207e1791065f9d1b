"""Spherical (cosine) k-means with k-means++ seeding, deterministic for a given seed.

    labels = spherical_kmeans(embeddings, clusters=10, seed=derive_seed(run_seed, "plugir", dialogue_id, round_))

PlugIR clusters with an unseeded library k-means; ours is seeded from (dialogue, round), so a run gives the same
clusters whatever the batch, the device or where it resumed. Everything runs in float64 on the CPU. Seeding: the
first centre is drawn uniformly, each next one with probability proportional to the squared cosine distance to the
nearest centre chosen (the first unchosen point when every point coincides with a centre). Then Lloyd steps: each
point joins its most similar centre (ties: the lower centre index), each centre becomes the normalised sum of its
members (an empty cluster keeps its centre), until no label changes or ``max_iterations``.
"""

from __future__ import annotations

import torch

MAX_ITERATIONS = 100


def spherical_kmeans(points: torch.Tensor, clusters: int, seed: int, max_iterations: int = MAX_ITERATIONS) -> torch.Tensor:
    """The cluster label (0..clusters-1) of each row of ``points`` (n x D); fewer points than clusters gives each
    point its own cluster."""
    data = torch.nn.functional.normalize(points.detach().to("cpu", torch.float64), dim=1)
    count = data.shape[0]
    if count == 0:
        return torch.zeros(0, dtype=torch.long)
    clusters = min(clusters, count)
    centres = data[_seed_centres(data, clusters, seed)]
    labels = torch.full((count,), -1, dtype=torch.long)
    for _ in range(max_iterations):
        new_labels = torch.argmax(data @ centres.T, dim=1)
        if torch.equal(new_labels, labels):
            break
        labels = new_labels
        sums = torch.zeros_like(centres).index_add_(0, labels, data)
        filled = torch.bincount(labels, minlength=clusters) > 0
        centres = torch.where(filled.unsqueeze(1), torch.nn.functional.normalize(sums, dim=1), centres)
    return labels


def _seed_centres(data: torch.Tensor, clusters: int, seed: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    chosen = [int(torch.randint(data.shape[0], (1,), generator=generator))]
    nearest = 1.0 - data @ data[chosen[0]]
    for _ in range(1, clusters):
        weights = nearest.clamp(min=0.0) ** 2
        weights[chosen] = 0.0
        if float(weights.sum()) > 0:
            choice = int(torch.multinomial(weights, 1, generator=generator))
        else:
            choice = next(index for index in range(data.shape[0]) if index not in chosen)
        chosen.append(choice)
        nearest = torch.minimum(nearest, 1.0 - data @ data[choice])
    return chosen
