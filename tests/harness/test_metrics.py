import numpy as np
import pytest

from harness.metrics import bri, bri_per_dialogue, compute_metrics, hits_at_k, median_rank, mrr, recall_at_k


def test_hits_are_accumulated_and_a_target_hit_early_then_lost_stays_hit():
    ranks = np.array([[3, 50, 60], [20, 15, 9], [100, 100, 100], [0, 0, 0]])
    assert hits_at_k(ranks, 10).tolist() == [50.0, 50.0, 75.0]
    assert recall_at_k(ranks, 10).tolist() == [50.0, 25.0, 50.0]


def test_k_boundary_rank_k_minus_one_hits_rank_k_does_not():
    ranks = np.array([[9], [10], [4], [5], [0], [1]])
    assert hits_at_k(ranks, 10).tolist() == [pytest.approx(100 * 5 / 6)]
    assert hits_at_k(ranks, 5).tolist() == [50.0]
    assert hits_at_k(ranks, 1).tolist() == [pytest.approx(100 / 6)]


def test_mrr_and_median_rank_per_round():
    ranks = np.array([[0, 1], [1, 3], [3, 0]])
    assert mrr(ranks).tolist() == pytest.approx([(1 + 0.5 + 0.25) / 3, (0.5 + 0.25 + 1) / 3])
    assert median_rank(ranks).tolist() == [2.0, 2.0]


def test_bri_by_hand():
    # best ranks so far: [4, 1, 1] -> terms (ln5 + ln2)/2, (ln2 + ln2)/2 ; [0, 0, 0] -> 0
    ranks = np.array([[4, 1, 7], [0, 3, 0]])
    first = ((np.log(5) + np.log(2)) / 2 + (np.log(2) + np.log(2)) / 2) / 2
    assert bri_per_dialogue(ranks).tolist() == pytest.approx([first, 0.0])
    assert bri(ranks) == pytest.approx(first / 2)


def test_compute_metrics_keys_and_monotone_hits():
    rng = np.random.default_rng(0)
    ranks = rng.integers(0, 40, size=(50, 11))
    metrics = compute_metrics(ranks)
    assert set(metrics) == {"Hits@1", "Hits@5", "Hits@10", "Recall@1", "Recall@5", "Recall@10", "MRR", "MedR", "BRI"}
    assert all(len(metrics[name]) == 11 for name in ("Hits@10", "Recall@10", "MRR", "MedR"))
    assert np.all(np.diff(metrics["Hits@10"]) >= 0)


def test_negative_ranks_are_rejected():
    with pytest.raises(ValueError, match="negative"):
        compute_metrics([[0, -1]])


def test_degradation_counts_worse_fused_ranks_and_their_mean_drop():
    from harness.metrics import degradation

    fused = np.array([[5, 100], [3, 3], [0, 50]])
    text = np.array([[4, 10], [3, 1], [0, 60]])
    rates, drops = degradation(fused, text)
    assert rates == pytest.approx([100 / 3, 200 / 3])
    assert drops == [1.0, (90 + 2) / 2]
    assert degradation(text, text) == ([0.0, 0.0], [None, None])


def test_side_metrics_need_every_record_to_carry_the_sides():
    from harness.metrics import side_metrics
    from harness.types import RunRecord

    with_sides = [RunRecord("0", "a", (5, 1), {"text_only": (4, 1)}, {"gate": (0.8, 0.6), "text_image_cosine": (0.1, 0.3)}),
                  RunRecord("1", "b", (2, 2), {"text_only": (2, 3)}, {"gate": (0.7, 0.9), "text_image_cosine": (0.2, 0.5)})]
    metrics = side_metrics(with_sides)
    assert metrics["Degradation"] == [50.0, 0.0] and metrics["RankDrop"] == [1.0, None]
    assert metrics["GateMean"] == pytest.approx([0.75, 0.75])
    assert metrics["GateCosineCorrelation"] == pytest.approx([-1.0, 1.0])
    assert metrics["TextImageCosineMean"] == pytest.approx([0.15, 0.4])
    # Two dialogues are the 0 and 50% quantiles: Q1 holds the lower-cosine one's gate, Q3 the other's.
    assert metrics["GateByCosineQ1"] == pytest.approx([0.8, 0.6])
    assert metrics["GateByCosineQ3"] == pytest.approx([0.7, 0.9])
    assert metrics["GateByCosineQ2"] == metrics["GateByCosineQ4"] == [None, None]
    assert side_metrics([RunRecord("0", "a", (1,))]) == {}


def test_gate_by_cosine_quartile_bins_each_round_by_its_own_cosine_order():
    from harness.metrics import gate_by_cosine_quartile

    cosines = np.array([[0.9, 0.1], [0.1, 0.2], [0.5, 0.3], [0.3, 0.4], [0.7, 0.5], [0.2, 0.6], [0.8, 0.7], [0.4, 0.8]])
    gates = np.array([[0.1, 0.9], [0.9, 0.8], [0.5, 0.7], [0.7, 0.6], [0.3, 0.5], [0.8, 0.4], [0.2, 0.3], [0.6, 0.2]])
    quarters = gate_by_cosine_quartile(gates, cosines)
    # Round 0 sorted by cosine: gates 0.9, 0.8 | 0.7, 0.6 | 0.5, 0.3 | 0.2, 0.1; round 1: 0.9, 0.8 | ... | 0.3, 0.2.
    assert quarters == [pytest.approx([0.85, 0.85]), pytest.approx([0.65, 0.65]), pytest.approx([0.4, 0.45]),
                        pytest.approx([0.15, 0.25])]
