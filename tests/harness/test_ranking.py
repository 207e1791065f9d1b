import pytest
import torch

from harness.ranking import NonFiniteScores, argsort_ranks, ranks_from_scores, target_ranks


def test_rank_counts_strictly_higher_scores_so_ties_favour_the_target():
    scores = torch.tensor([[0.5, 0.5, 0.5, 0.9], [0.1, 0.2, 0.3, 0.4]])
    assert ranks_from_scores(scores, [1, 0]) == [1, 3]


def test_matches_a_full_argsort_when_scores_are_distinct_and_chunking_does_not_matter():
    generator = torch.Generator().manual_seed(0)
    queries = torch.nn.functional.normalize(torch.randn(37, 16, generator=generator), dim=1)
    images = torch.nn.functional.normalize(torch.randn(500, 16, generator=generator), dim=1)
    targets = torch.randint(500, (37,), generator=generator).tolist()
    expected = argsort_ranks(queries, images, targets)
    assert target_ranks(queries, images, targets) == expected
    assert target_ranks(queries, images, targets, chunk_size=5) == expected


def test_target_scoring_highest_has_rank_zero():
    images = torch.eye(4)
    assert target_ranks(torch.eye(4), images, [0, 1, 2, 3]) == [0, 0, 0, 0]


def test_a_target_scoring_nan_is_an_error_naming_its_rows_not_rank_zero():
    queries = torch.eye(4)[:3]
    images = torch.eye(4)
    images[2, 2] = float("nan")
    with pytest.raises(NonFiniteScores) as error:
        target_ranks(queries, images, [0, 1, 2, 3][:3], chunk_size=2)
    assert error.value.rows == (2,)  # the row number in the whole batch, across chunks
    assert "NaN or inf" in str(error.value)
