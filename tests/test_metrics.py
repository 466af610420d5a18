"""Metrics against audmetric (an independent implementation) and explicit loops."""

import warnings

import audmetric
import numpy as np
import pytest

from avstan.errors import AvstanError
from avstan.metrics import (
    attention_in_mask_ratio,
    concordance_cc,
    pearson_cc,
    rmse,
    score,
    score_partition,
    score_targets,
)


def random_pairs(seed):
    rng = np.random.default_rng(seed)
    gold = rng.uniform(-1, 1, 300)
    pred = rng.normal(0.4, 1.3) * gold + rng.normal(rng.normal(0, 0.5), 0.4, 300)
    return pred, gold


@pytest.mark.parametrize("seed", range(6))
def test_equal_to_audmetric(seed):
    pred, gold = random_pairs(seed)
    assert concordance_cc(pred, gold) == pytest.approx(audmetric.concordance_cc(gold, pred),
                                                       abs=1e-9)
    assert pearson_cc(pred, gold) == pytest.approx(audmetric.pearson_cc(gold, pred), abs=1e-9)
    assert rmse(pred, gold) == pytest.approx(np.sqrt(audmetric.mean_squared_error(gold, pred)),
                                             abs=1e-9)


def test_ccc_uses_biased_variances_as_eq_4():
    pred, gold = random_pairs(1)
    rho = np.corrcoef(pred, gold)[0, 1]
    expected = (2 * rho * pred.std() * gold.std()
                / (pred.var() + gold.var() + (pred.mean() - gold.mean()) ** 2))
    assert concordance_cc(pred, gold) == pytest.approx(expected, abs=1e-12)


def test_constant_predictions_score_zero_without_warnings():
    gold = np.linspace(-1, 1, 50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert concordance_cc(np.full(50, 0.3), gold) == 0.0
        assert pearson_cc(np.full(50, 0.3), gold) == 0.0
        assert concordance_cc(np.full(50, 0.3), np.full(50, 0.3)) == 0.0


def test_nan_pairs_are_ignored():
    pred, gold = random_pairs(2)
    gold_with_gaps = gold.copy()
    gold_with_gaps[::7] = np.nan
    keep = ~np.isnan(gold_with_gaps)
    assert concordance_cc(pred, gold_with_gaps) == pytest.approx(
        audmetric.concordance_cc(gold[keep], pred[keep]), abs=1e-12)
    with pytest.raises(AvstanError, match="no labelled steps"):
        concordance_cc(pred, np.full_like(gold, np.nan))


def test_concatenated_and_per_recording_scores_differ_as_they_must():
    """Two recordings each predicted perfectly up to an offset: per recording CC = 1, but the
    concatenation sees the offsets."""
    t = np.linspace(0, 6, 100)
    gold_a, gold_b = np.sin(t) * 0.5, np.cos(t) * 0.5
    pred_a, pred_b = gold_a + 0.3, gold_b - 0.3
    scores = score_partition([pred_a, pred_b], [gold_a, gold_b])
    assert scores["per_recording_mean"]["cc"] == pytest.approx(1.0)
    expected_concat = audmetric.pearson_cc(np.r_[gold_a, gold_b], np.r_[pred_a, pred_b])
    assert scores["concatenated"]["cc"] == pytest.approx(expected_concat, abs=1e-12)
    assert scores["concatenated"]["cc"] < 0.9
    per_a = audmetric.concordance_cc(gold_a, pred_a)
    per_b = audmetric.concordance_cc(gold_b, pred_b)
    assert scores["per_recording_mean"]["ccc"] == pytest.approx((per_a + per_b) / 2, abs=1e-12)


def test_single_recording_partition_and_unlabelled_recordings():
    pred, gold = random_pairs(3)
    scores = score_partition([pred, pred[:10]], [gold, np.full(10, np.nan)])
    assert scores["per_recording"][1] is None
    assert scores["per_recording_mean"]["ccc"] == pytest.approx(concordance_cc(pred, gold))


def test_score_targets_per_column():
    pred_v, gold_v = random_pairs(4)
    pred_a, gold_a = random_pairs(5)
    scores = score_targets(np.c_[pred_v, pred_a], np.c_[gold_v, gold_a])
    assert scores["arousal"]["ccc"] == pytest.approx(audmetric.concordance_cc(gold_a, pred_a))


def loop_ratio(attention, mask):
    ratios = []
    for b in range(attention.shape[0]):
        for t in range(attention.shape[1]):
            area = mask[b, t].sum() / mask[b, t].size
            if area == 0:
                continue
            inside = sum(attention[b, t, i, j] for i in range(attention.shape[2])
                         for j in range(attention.shape[3]) if mask[b, t, i, j])
            ratios.append(inside / attention[b, t].sum() / area)
    return np.mean(ratios)


def test_attention_ratio_against_a_loop():
    rng = np.random.default_rng(0)
    attention = rng.random((2, 3, 6, 6))
    attention /= attention.sum(axis=(-2, -1), keepdims=True)
    mask = rng.random((2, 3, 6, 6)) > 0.7
    mask[1, 2] = False  # an empty mask is skipped
    assert attention_in_mask_ratio(attention, mask) == pytest.approx(loop_ratio(attention, mask))


def test_attention_ratio_bounds():
    mask = np.zeros((4, 8, 8), bool)
    mask[:, :2] = True  # a quarter of the frame
    uniform = np.full((4, 8, 8), 1 / 64)
    assert attention_in_mask_ratio(uniform, mask) == pytest.approx(1.0)
    inside = mask / mask.sum(axis=(-2, -1), keepdims=True)
    assert attention_in_mask_ratio(inside, mask) == pytest.approx(4.0)
    assert attention_in_mask_ratio(~mask / 48.0, mask) == 0.0


def test_attention_ratio_per_frame_and_broadcast_mask():
    rng = np.random.default_rng(1)
    attention = rng.random((5, 6, 6))
    attention /= attention.sum(axis=(-2, -1), keepdims=True)
    mask = np.zeros((6, 6), bool)
    mask[1:3, 2:5] = True  # one mask for every frame
    ratios = attention_in_mask_ratio(attention, mask, reduction="none")
    assert ratios.shape == (5,)
    for t in range(5):
        assert ratios[t] == pytest.approx(attention[t][mask].sum() / (6 / 36))
    empty = np.zeros((5, 6, 6), bool)
    empty[:2] = mask
    ratios = attention_in_mask_ratio(attention, empty, reduction="none")
    assert np.isnan(ratios[2:]).all() and not np.isnan(ratios[:2]).any()
    with pytest.raises(AvstanError, match="non-empty salient mask"):
        attention_in_mask_ratio(attention, np.zeros((6, 6), bool))


def test_score_bundles_the_three_metrics():
    pred, gold = random_pairs(7)
    assert score(pred, gold) == {"rmse": rmse(pred, gold), "cc": pearson_cc(pred, gold),
                                 "ccc": concordance_cc(pred, gold)}
