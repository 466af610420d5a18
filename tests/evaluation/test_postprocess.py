"""The AVEC post-processing chain: each step against a loop, fitted on devel only."""

import numpy as np
import pytest

from avstan.errors import AvstanError
from avstan.evaluation.postprocess import (
    PostProcessing,
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
