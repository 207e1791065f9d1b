"""Exact ranks by counting, checked against torch's own stable descending argsort (ties included), float32 scoring
whatever the embeddings' dtype, tie flags, and queries that cannot be ranked."""

import pytest
import torch

from harness.ranking import UNRANKED, argsort_ranks, rank_targets, ranks_from_scores


def _stable_argsort_ranks(scores: torch.Tensor, targets: list[int]) -> list[int]:
    order = torch.argsort(scores, dim=1, descending=True, stable=True)
    return [int((row == target).nonzero()) for row, target in zip(order, targets)]


def _random(queries: int, images: int, dim: int = 16, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    query_matrix = torch.nn.functional.normalize(torch.randn(queries, dim, generator=generator), dim=1)
    image_matrix = torch.nn.functional.normalize(torch.randn(images, dim, generator=generator), dim=1)
    return query_matrix, image_matrix, torch.randint(images, (queries,), generator=generator).tolist()


def test_a_tie_counts_an_earlier_image_above_the_target_as_a_stable_sort_does():
    scores = torch.tensor([[0.5, 0.5, 0.5, 0.9], [0.1, 0.2, 0.3, 0.4], [0.7, 0.2, 0.7, 0.7]])
    ranking = ranks_from_scores(scores, [1, 0, 2])
    assert ranking.ranks == (2, 3, 1) == tuple(_stable_argsort_ranks(scores, [1, 0, 2]))
    assert ranking.tied == (True, False, True)
    assert ranking.failed == {}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_scores_full_of_ties_rank_as_torch_stable_argsort(dtype):
    # Embeddings of -1/0/1 entries: every score is a small integer, so most targets tie with hundreds of images.
    generator = torch.Generator().manual_seed(0)
    queries = torch.randint(-1, 2, (64, 8), generator=generator).to(dtype)
    images = torch.randint(-1, 2, (3000, 8), generator=generator).to(dtype)
    targets = torch.randint(3000, (64,), generator=generator).tolist()
    scores = queries.float() @ images.float().T
    ranking = rank_targets(queries, images, targets, chunk_size=7)
    nonconstant = [row for row in range(64) if scores[row].min() < scores[row].max()]
    assert [ranking.ranks[row] for row in nonconstant] == [
        _stable_argsort_ranks(scores, targets)[row] for row in nonconstant]
    assert ranking.tied == tuple(bool((row == row[t]).sum() > 1) for row, t in zip(scores, targets))
    assert sum(ranking.tied) > 50  # the test needs ties to mean anything


def test_scores_are_float32_whatever_the_embedding_dtype():
    queries, images, targets = _random(32, 2000, seed=1)
    half = rank_targets(queries.half(), images.half(), targets)
    reference = _stable_argsort_ranks(queries.half().float() @ images.half().float().T, targets)
    assert list(half.ranks) == reference


def test_counting_and_the_chunked_stable_argsort_agree_on_every_query_at_50k_images():
    queries, images, targets = _random(40, 50_000, dim=32, seed=2)
    images = images.to(torch.bfloat16)  # ties at the target, as low-precision indexes have
    assert list(rank_targets(queries, images, targets).ranks) == argsort_ranks(queries, images, targets)


def test_matches_a_full_argsort_when_scores_are_distinct_and_chunking_does_not_matter():
    queries, images, targets = _random(37, 500)
    expected = argsort_ranks(queries, images, targets)
    assert list(rank_targets(queries, images, targets).ranks) == expected
    assert list(rank_targets(queries, images, targets, chunk_size=5).ranks) == expected


def test_target_scoring_highest_has_rank_zero():
    assert rank_targets(torch.eye(4), torch.eye(4) * 2 + 0.1, [0, 1, 2, 3]).ranks == (0, 0, 0, 0)


def test_constant_and_non_finite_queries_are_failures_never_hits():
    images = torch.nn.functional.normalize(torch.randn(6, 4, generator=torch.Generator().manual_seed(3)), dim=1)
    queries = torch.stack([torch.zeros(4), images[1], torch.full((4,), float("nan")), images[3]])
    images_with_inf = images.clone()
    ranking = rank_targets(queries, images_with_inf, [0, 1, 2, 3], chunk_size=3)
    assert ranking.ranks[0] == UNRANKED and "every image scores the same" in ranking.failures[0]
    assert ranking.ranks[1] == 0 and ranking.failures[1] is None
    assert ranking.ranks[2] == UNRANKED and "not all finite" in ranking.failures[2]
    assert set(ranking.failed) == {0, 2}  # row numbers over the whole batch, across chunks
    images_with_inf[5, 0] = float("inf")
    assert set(rank_targets(queries, images_with_inf, [0, 1, 2, 3]).failed) == {0, 1, 2, 3}
