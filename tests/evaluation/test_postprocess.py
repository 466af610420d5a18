"""The AVEC post-processing chain: each step against a loop, fitted on devel only."""

import numpy as np
import pytest

from avstan.errors import AvstanError
from avstan.evaluation.postprocess import (
    SCALE_BOUNDS,
    PostProcessing,
    correlation_noise_level,
    describe_notes,
    fit_postprocessing,
    interpolate_missing,
    median_smooth,
    time_shift,
)
from avstan.metrics import concordance_cc


def loop_median(values, window):
    half = window // 2
    return np.array([np.median(values[max(0, i - half): i + half + 1])
                     for i in range(len(values))])


@pytest.mark.parametrize("window", [1, 3, 5, 9])
def test_median_smooth_against_a_loop(window):
    values = np.random.default_rng(window).normal(size=57)
    np.testing.assert_allclose(median_smooth(values, window), loop_median(values, window))


def test_time_shift_delays_and_repeats_the_first_value():
    np.testing.assert_array_equal(time_shift(np.array([1.0, 2, 3, 4]), 2), [1, 1, 1, 2])
    np.testing.assert_array_equal(time_shift(np.array([1.0, 2]), 5), [1, 1])


def test_interpolate_missing_against_a_hand_example():
    values = np.array([9.0, 1.0, 9.0, 9.0, 4.0, 9.0])
    found = np.array([False, True, False, False, True, False])
    np.testing.assert_allclose(interpolate_missing(values, found), [1, 1, 2, 3, 4, 4])
    np.testing.assert_array_equal(interpolate_missing(values, np.zeros(6, bool)), values)


def recordings(seed, offset=0.4, scale=0.5, noise=0.3, lag=0):
    rng = np.random.default_rng(seed)
    golds, preds = [], []
    for _ in range(3):
        t = np.arange(300)
        gold = 0.6 * np.sin(t / 20 + rng.uniform(0, 6))
        early = np.concatenate([gold[lag:], np.full(lag, gold[-1])])
        preds.append(offset + scale * early + rng.normal(0, noise, 300))
        golds.append(gold)
    return preds, golds


def test_each_step_is_fitted_when_it_helps_and_the_chain_raises_ccc():
    preds, golds = recordings(0, lag=4)
    chain = fit_postprocessing(preds, golds, shifts=range(0, 9))
    assert chain.median_window > 1
    assert chain.centre_offset == pytest.approx(-0.4, abs=0.05)
    assert chain.scale_factor > 1.2
    assert chain.shift_steps == pytest.approx(4, abs=1)
    fresh_preds, fresh_golds = recordings(1, lag=4)  # another partition, same distortion
    raw = concordance_cc(np.concatenate(fresh_preds), np.concatenate(fresh_golds))
    after = concordance_cc(np.concatenate(chain.apply(fresh_preds)), np.concatenate(fresh_golds))
    assert after > raw + 0.2
    assert chain.devel_ccc > chain.devel_ccc_raw


def test_steps_that_do_not_help_are_left_off():
    preds, golds = recordings(0, offset=0.0, scale=1.0, noise=0.0)
    chain = fit_postprocessing(preds, golds, shifts=range(4))
    assert (chain.median_window, chain.centre_offset, chain.scale_factor,
            chain.shift_steps) == (1, 0.0, 1.0, 0)
    np.testing.assert_allclose(chain.apply(preds)[0], preds[0])


def test_time_shift_is_off_unless_asked():
    preds, golds = recordings(0, lag=6)
    assert fit_postprocessing(preds, golds).shift_steps == 0


def test_test_labels_cannot_influence_the_chain():
    """The chain is a function of devel data only: two runs that differ only in the test
    partition's labels give the same parameters."""
    devel_preds, devel_golds = recordings(0)
    chain_a = fit_postprocessing(devel_preds, devel_golds)
    test_preds, test_golds = recordings(5)
    _ = chain_a.apply(test_preds), test_golds
    chain_b = fit_postprocessing(devel_preds, devel_golds)
    assert chain_a == chain_b
    assert PostProcessing.from_dict(chain_a.to_dict()) == chain_a


def test_devel_without_labels_is_a_clear_error():
    with pytest.raises(AvstanError, match="no labels"):
        fit_postprocessing([np.zeros(5)], [np.full(5, np.nan)])
    with pytest.raises(AvstanError, match="devel partition is empty"):
        fit_postprocessing([], [])


def autoregressive(rng, length, coefficient):
    values = np.zeros(length)
    innovations = rng.normal(size=length)
    for i in range(1, length):
        values[i] = coefficient * values[i - 1] + innovations[i]
    return values


@pytest.mark.parametrize("coefficient", [0.0, 0.9])
def test_the_noise_level_is_the_spread_of_r_between_unrelated_series(coefficient):
    """Against a simulation: r of independent smooth series (3 recordings × 300 steps)
    spreads as correlation_noise_level says, far more than 1/sqrt(N) when they are smooth,
    and the 2-sigma rule lets about 5 % of them through."""
    rng = np.random.default_rng(7)
    correlations, levels = [], []
    for _ in range(300):
        preds = [autoregressive(rng, 300, coefficient) for _ in range(3)]
        golds = [autoregressive(rng, 300, coefficient) for _ in range(3)]
        correlations.append(np.corrcoef(np.concatenate(preds), np.concatenate(golds))[0, 1])
        levels.append(correlation_noise_level(preds, golds))
    simulated = np.std(correlations)
    assert np.mean(levels) == pytest.approx(simulated, rel=0.15)
    assert np.mean(np.abs(correlations) > 2 * np.array(levels)) < 0.1
    if coefficient:
        assert simulated > 2.5 / np.sqrt(900)


def nearly_constant(seed, leak):
    """Devel predictions with a spread of about 0.5 % of the gold's: a slow jitter of their
    own plus ``leak`` times the gold (the demo's cnn3d once had a devel CCC of 0.002)."""
    rng = np.random.default_rng(seed)
    _, golds = recordings(seed)
    preds = [0.1 + 0.003 * (leak * g / 0.6 + (1 - leak) * autoregressive(rng, g.size, 0.95) / 3)
             for g in golds]
    return preds, golds


def test_scaling_nearly_constant_noise_is_refused_and_said():
    preds, golds = nearly_constant(0, leak=0.05)
    unbounded = np.std(np.concatenate(golds)) / np.std(np.concatenate(preds))
    assert unbounded > 50  # what the old rule would have multiplied by
    chain = fit_postprocessing(preds, golds)
    assert chain.scale_factor == 1.0
    assert len(chain.notes) == 1 and "refused" in chain.notes[0] and "within noise" in \
        chain.notes[0]
    assert describe_notes({"valence": chain}).startswith("valence: scaling ×")
    after = np.concatenate(chain.apply(preds))
    assert np.std(after) < 0.01  # the spread was not blown up


def test_a_large_factor_on_a_real_correlation_is_clipped_and_said():
    preds, golds = nearly_constant(0, leak=0.9)  # tiny spread, but it follows the gold
    chain = fit_postprocessing(preds, golds)
    assert chain.scale_factor == SCALE_BOUNDS[1]
    assert len(chain.notes) == 1 and chain.notes[0].startswith("scaling clipped to ×4")


def test_constant_predictions_are_not_scaled_and_said():
    _, golds = recordings(0)
    chain = fit_postprocessing([np.full(g.size, 0.2) for g in golds], golds)
    assert chain.scale_factor == 1.0 and "constant" in chain.notes[0]


def test_a_well_scaled_case_is_fitted_as_before():
    """The factor is std(gold) / std(smoothed, centred prediction), computed here with the
    loop median; nothing is noted."""
    preds, golds = recordings(0)
    chain = fit_postprocessing(preds, golds)
    assert chain.notes == [] and describe_notes({"valence": chain}) is None
    smoothed = np.concatenate([loop_median(p, chain.median_window) for p in preds])
    gold = np.concatenate(golds)
    assert chain.scale_factor == pytest.approx(np.std(gold) / np.std(smoothed), rel=1e-9)
    assert chain.scale_reference == pytest.approx(np.mean(smoothed) + chain.centre_offset)
    assert SCALE_BOUNDS[0] < chain.scale_factor < SCALE_BOUNDS[1]


def test_a_chain_stored_before_notes_existed_still_loads():
    stored = PostProcessing(median_window=3, scale_factor=1.5).to_dict()
    del stored["notes"]
    assert PostProcessing.from_dict(stored).notes == []
