"""The synthetic corpus's random processes: seeds, label statistics, and distractors that
are independent of the labels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from avstan.data.synthetic import SyntheticConfig, recording_seed, sample_processes

SMALL = SyntheticConfig.preset("default", crop_size=24, steps_per_recording=40)


def _lag1(x: np.ndarray) -> float:
    return float(np.corrcoef(x[:-1], x[1:])[0, 1])


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])

# ---------------------------------------------------------------------------- determinism


def test_the_voice_stream_leaves_the_face_streams_as_before():
    # The voice's seed is a tenth child of the recording's SeedSequence; the nine streams
    # drawn before it existed (spawn(9)) must be the same, so corpora stay as they were.
    p = sample_processes(SMALL, 5)
    nine = np.random.SeedSequence(5).spawn(9)
    assert p.noise_seed == int(nine[8].generate_state(1, dtype=np.uint32)[0])
    assert p.voice_seed not in (p.noise_seed, 5)


def test_recording_seeds_differ_by_partition_and_index_and_root_seed():
    seeds = {recording_seed(SMALL, part, i) for part in ("train", "devel", "test")
             for i in range(4)}
    assert len(seeds) == 12
    assert recording_seed(SMALL, "train", 0) == recording_seed(SMALL, "train", 0)
    other = dataclasses.replace(SMALL, seed=1)
    assert recording_seed(other, "train", 0) != recording_seed(SMALL, "train", 0)


# ---------------------------------------------------------------------------- labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_labels_in_range_varied_and_smooth(seed):
    p = sample_processes(SyntheticConfig(), seed)  # 240 steps at 4 steps/s
    labels = p.labels
    assert np.isfinite(labels).all()
    assert labels.min() >= -1 and labels.max() <= 1
    for k in range(2):
        assert 0.15 < labels[:, k].std() < 0.6  # spread, but not saturated
        assert _lag1(labels[:, k]) > 0.9
    assert np.abs(labels).max() < 0.99


# ---------------------------------------------------------------------------- distractors


def test_distractors_are_independent_of_the_labels():
    config = SyntheticConfig.preset("hard", crop_size=16, steps_per_recording=20000)
    p = sample_processes(config, 0)
    distractors = {
        "decoy": p.decoy, "head_x": p.head_xy[:, 0], "head_y": p.head_xy[:, 1],
        "scale": p.head_scale, "roll": p.head_roll, "brightness": p.brightness,
        "contrast": p.contrast, "blink": p.blink, "gaze_x": p.gaze[:, 0],
    }
    for name, series in distractors.items():
        for k in range(2):
            assert abs(_corr(series, p.labels[:, k])) < 0.25, (name, k)
    # The decoy looks like a label in time: same smoothness, similar spread.
    assert abs(_lag1(p.decoy) - _lag1(p.labels[:, 0])) < 0.01
    assert 0.5 < p.decoy.std() / p.labels[:, 0].std() < 2.0
    assert abs(_corr(p.labels[:, 0], p.labels[:, 1])) < 0.25
