"""Rendering the synthetic corpus: where the signal lives (the salient mask, the decoy
outside it, the labels readable from inside it)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from avstan.data.synthetic import SyntheticConfig, render_float, salient_mask, sample_processes


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])

# ---------------------------------------------------------------------------- mask


@pytest.mark.parametrize("preset", ["default", "hard"])
def test_mask_nonempty_small_and_free_of_decoy(preset):
    config = SyntheticConfig.preset(preset, steps_per_recording=60)
    p = sample_processes(config, 3)
    mask = salient_mask(config, p)
    area = mask.mean(axis=(1, 2))
    assert (mask.sum(axis=(1, 2)) > 0).all()
    assert 0.03 < area.min() and area.max() < 0.30
    # Every pixel the decoy can change lies outside the mask.
    bright = render_float(config, dataclasses.replace(p, decoy=np.ones_like(p.decoy)))
    dark = render_float(config, dataclasses.replace(p, decoy=-np.ones_like(p.decoy)))
    decoy_pixels = np.abs(bright - dark).max(-1) > 1e-6
    assert decoy_pixels.any(axis=(1, 2)).mean() > 0.5  # the decoy is visible most of the time
    assert not (decoy_pixels & mask).any()


@pytest.mark.parametrize("preset", ["default", "hard"])
def test_emotion_changes_pixels_only_inside_the_mask(preset):
    config = SyntheticConfig.preset(preset, steps_per_recording=60)
    p = sample_processes(config, 4)
    real = render_float(config, p)
    neutral = render_float(config, dataclasses.replace(p, labels=np.zeros_like(p.labels)))
    changed = np.abs(real - neutral).max(-1) > 1e-6
    mask = salient_mask(config, p)
    assert not (changed & ~mask).any()
    assert changed.any(axis=(1, 2)).mean() > 0.9  # the emotion shows in nearly every frame


def test_valence_and_arousal_each_readable_from_the_mask_region():
    # A still head (no motion, no flicker) so a linear read-out of the mask pixels works.
    config = SyntheticConfig.preset("default", crop_size=32, steps_per_recording=600,
                                    head_motion=0.0, scale_jitter=0.0,
                                    head_roll_degrees=0.0, flicker=0.0)
    p = sample_processes(config, 3)
    frames = render_float(config, p).mean(-1)
    region = salient_mask(config, p).any(0)
    x = frames[:, region].astype(np.float64)
    y = p.labels.astype(np.float64)
    train, test = slice(0, 400), slice(400, None)
    mean = x[train].mean(0)
    xc = x - mean
    gram = xc[train].T @ xc[train] + 0.02 * np.eye(x.shape[1])
    weights = np.linalg.solve(gram, xc[train].T @ (y[train] - y[train].mean(0)))
    prediction = xc[test] @ weights
    assert _corr(prediction[:, 0], y[test, 0]) > 0.8  # valence
    assert _corr(prediction[:, 1], y[test, 1]) > 0.8  # arousal
