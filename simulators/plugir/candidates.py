"""PlugIR's retrieval-candidate and selection arithmetic, in float64 with ties broken by index.

    count = candidate_count(round_=1, top=500)                      # 500, then 450, 400, ... 50 at round 10
    entropy = caption_entropies(caption_embeddings, image_embeddings)   # per candidate
    shown = representatives(labels, entropy)                        # one candidate per cluster
    divergences = kl_divergences(previous_scores, question_scores)  # per candidate question
    chosen = int(torch.argmin(divergences))                         # the SMALLEST KL, as PlugIR's code picks

Round r shows the questioner candidates from the top N = int(T - (r - 1) * T / 10) images (at least one; rounds
past 10 keep one). A candidate's entropy is that of the softmax, over the N candidate images, of its caption's
similarities to them: a low entropy means the caption picks its own image out of the others. From each k-means
cluster of the N image embeddings the member with the lowest entropy is shown; the shown captions are ordered by
their image's rank. Selection compares, over the candidates ranked k..N-1 (0-based: the top k left out), the softmax
of the similarities to the current caption (p_prev) with the one after appending a question (p_q) and keeps the
question with the smallest KL(p_prev || p_q).
"""

from __future__ import annotations

import torch


def candidate_count(round_: int, top: int) -> int:
    return max(1, int(top - (round_ - 1) * (top / 10.0)))


def caption_entropies(captions: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Per row of ``captions`` (N x D), the entropy of softmax(its similarities to ``images``, N x D)."""
    similarities = captions.to(torch.float64) @ images.to(torch.float64).T
    log_p = torch.log_softmax(similarities, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def representatives(labels: torch.Tensor, entropies: torch.Tensor) -> list[int]:
    """One candidate index per cluster, its lowest-entropy member (ties: the lower index), in index order."""
    chosen = []
    for label in torch.unique(labels).tolist():
        members = torch.nonzero(labels == label).squeeze(1)
        order = torch.argsort(entropies[members], stable=True)
        chosen.append(int(members[order[0]]))
    return sorted(chosen)


def kl_divergences(previous: torch.Tensor, questions: torch.Tensor) -> torch.Tensor:
    """KL(softmax(previous) || softmax(row)) for each row of ``questions`` (q x m); ``previous`` has m scores."""
    log_p = torch.log_softmax(previous.to(torch.float64), dim=0)
    log_q = torch.log_softmax(questions.to(torch.float64), dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=1)


def smallest(values: torch.Tensor) -> int:
    """The index of the smallest value, the first one on ties."""
    return int(torch.argsort(values, stable=True)[0])
