"""PlugIR's arithmetic against hand-computed cases and scipy: the N schedule, caption entropies, one representative
per cluster, our seeded spherical k-means, and the KL selection."""

import numpy as np
import pytest
import torch
from scipy.special import softmax
from scipy.stats import entropy

from simulators.plugir.candidates import candidate_count, caption_entropies, kl_divergences, representatives, smallest
from simulators.plugir.kmeans import spherical_kmeans


def test_the_candidate_count_shrinks_by_a_tenth_of_t_each_round():
    assert [candidate_count(round_, 500) for round_ in range(1, 11)] == [500, 450, 400, 350, 300, 250, 200, 150,
                                                                          100, 50]
    assert candidate_count(3, 64) == int(64 - 2 * 6.4) == 51
    assert candidate_count(11, 500) == 1 and candidate_count(30, 500) == 1  # past round 10: one candidate


def test_caption_entropies_are_scipys_and_a_caption_matching_its_own_image_alone_ranks_first():
    generator = torch.Generator().manual_seed(0)
    images = torch.nn.functional.normalize(torch.randn(6, 8, generator=generator), dim=1)
    captions = torch.nn.functional.normalize(torch.randn(6, 8, generator=generator), dim=1)
    captions[2] = images[2] * 5.0  # large similarity to its own image only: a peaked softmax
    values = caption_entropies(captions, images)
    expected = [entropy(softmax((captions[row].double() @ images.double().T).numpy())) for row in range(6)]
    np.testing.assert_allclose(values.numpy(), expected, rtol=1e-12)
    assert values.dtype == torch.float64 and int(torch.argmin(values)) == 2


def test_one_representative_per_cluster_the_lowest_entropy_member_ties_to_the_lower_index():
    labels = torch.tensor([1, 0, 1, 2, 0, 2, 1])
    entropies = torch.tensor([0.5, 0.9, 0.2, 0.7, 0.3, 0.7, 0.2], dtype=torch.float64)
    # cluster 0: {1: 0.9, 4: 0.3} -> 4; cluster 1: {0, 2, 6} -> 2 (tied with 6, lower index); cluster 2: {3, 5} -> 3
    assert representatives(labels, entropies) == [2, 3, 4]


def test_spherical_kmeans_finds_separated_directions_and_is_seeded():
    generator = torch.Generator().manual_seed(1)
    centres = torch.eye(4)[:3] * 10
    points = torch.cat([centre + 0.3 * torch.randn(7, 4, generator=generator) for centre in centres])
    labels = spherical_kmeans(points, 3, seed=5)
    groups = [set(labels[start:start + 7].tolist()) for start in (0, 7, 14)]
    assert all(len(group) == 1 for group in groups) and len(set.union(*groups)) == 3
    assert torch.equal(spherical_kmeans(points, 3, seed=5), labels)
    # Scaling does not matter (cosine), nor does the input's dtype or device copy.
    assert torch.equal(spherical_kmeans(points.double() * 3, 3, seed=5), labels)


def test_spherical_kmeans_with_fewer_points_than_clusters_and_with_duplicates():
    points = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert sorted(spherical_kmeans(points, 10, seed=0).tolist()) == [0, 1]
    same = torch.ones(5, 3)
    labels = spherical_kmeans(same, 3, seed=0)
    assert len(labels) == 5 and len(set(labels.tolist())) == 1  # identical points share one cluster
    assert spherical_kmeans(torch.zeros(0, 3), 3, seed=0).shape == (0,)


def test_kl_divergences_are_scipys_and_the_smallest_is_chosen():
    previous = torch.tensor([0.30, 0.10, 0.25, 0.05])
    questions = torch.tensor([[0.9, 0.1, 0.1, 0.1], [0.31, 0.1, 0.24, 0.05], [0.0, 0.5, 0.0, 0.5]])
    values = kl_divergences(previous, questions)
    expected = [entropy(softmax(previous.double().numpy()), softmax(row.double().numpy())) for row in questions]
    np.testing.assert_allclose(values.numpy(), expected, rtol=1e-10)
    assert smallest(values) == 1  # the question that moves the distribution least
    assert smallest(torch.tensor([0.2, 0.1, 0.1])) == 1  # ties: the first


@pytest.mark.parametrize("scale", [1.0, 40.0])
def test_kl_of_an_unchanged_distribution_is_zero(scale):
    scores = torch.tensor([0.3, 0.2, 0.1]) * scale
    assert float(kl_divergences(scores, scores.unsqueeze(0))[0]) == pytest.approx(0.0, abs=1e-12)
