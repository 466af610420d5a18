"""The synthetic corpus: deterministic, labels recoverable only from mouth and brows."""

from dataclasses import replace

import numpy as np
import pytest

from avstan.data.store import RecordingStore
from avstan.data.synthetic import (
    PRESETS,
    SyntheticConfig,
    generate_corpus,
    generate_recording,
    render,
    sample_processes,
    signal_variance_fraction,
)
from avstan.errors import AvstanError

SMALL = replace(PRESETS["default"], steps_per_recording=120)


def test_same_seed_same_recording_other_seed_other():
    a = generate_recording(SMALL, "a", "train", 7)
    b = generate_recording(SMALL, "b", "train", 7)
    c = generate_recording(SMALL, "c", "train", 8)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.frames, c.frames)
    assert not np.allclose(a.labels, c.labels)


def test_labels_are_smooth_varied_and_in_range():
    labels = np.concatenate([generate_recording(replace(SMALL, steps_per_recording=480), "r",
                                                "train", seed).labels for seed in range(3)])
    assert np.isfinite(labels).all() and labels.min() >= -1 and labels.max() <= 1
    assert (labels.std(axis=0) > 0.15).all()
    for column in range(2):
        x = labels[:, column]
        assert np.corrcoef(x[:-1], x[1:])[0, 1] > 0.9  # lag-1 autocorrelation at 4 steps/s


def test_the_emotion_changes_pixels_only_inside_the_salient_mask():
    processes = sample_processes(SMALL, 3)
    frames, mask = render(SMALL, processes)
    neutral, _ = render(SMALL, replace(processes, labels=np.zeros_like(processes.labels)))
    changed = np.abs(frames.astype(int) - neutral.astype(int)).max(axis=-1) > 0
    assert changed.any()
    assert not (changed & ~mask).any()
    area = mask.mean(axis=(1, 2))
    assert (area > 0.03).all() and (area < 0.35).all()


def test_mouth_and_brows_carry_both_labels():
    """Without distractors, the pixel change from neutral predicts each label linearly on
    held-out frames: both valence and arousal have a visible cue."""
    config = replace(PRESETS["easy"], steps_per_recording=240)
    processes = sample_processes(config, 5)
    frames, mask = render(config, processes)
    neutral, _ = render(config, replace(processes, labels=np.zeros_like(processes.labels)))
    diff = (frames.astype(np.float32) - neutral.astype(np.float32)).reshape(240, -1)
    labels = processes.labels
    train, test = slice(0, 160), slice(160, 240)
    x = diff[train] - diff[train].mean(0)
    weights = np.linalg.solve(x.T @ x + 10 * np.eye(x.shape[1]), x.T @ labels[train])
    prediction = (diff[test] - diff[train].mean(0)) @ weights
    for column in range(2):
        assert np.corrcoef(prediction[:, column], labels[test, column])[0, 1] > 0.8


def test_the_decoy_carries_no_label_information():
    """Decoy and labels are independent processes: their correlations over many recordings
    average to zero (single recordings show chance correlations of smooth processes)."""
    config = replace(SMALL, steps_per_recording=2000)
    correlations = []
    for seed in range(16):
        p = sample_processes(config, seed)
        correlations += [np.corrcoef(p.decoy, p.labels[:, k])[0, 1] for k in range(2)]
    assert abs(np.mean(correlations)) < 0.08
    p = sample_processes(config, 0)
    lag = [np.corrcoef(x[:-1], x[1:])[0, 1] for x in (p.decoy, p.labels[:, 0])]
    assert abs(lag[0] - lag[1]) < 0.05  # same smoothness as the labels


def test_the_emotion_is_a_small_part_of_the_pixel_variance():
    default = signal_variance_fraction(SMALL, 0)
    hard = signal_variance_fraction(replace(PRESETS["hard"], steps_per_recording=120), 0)
    assert 0 < default["signal"] < 0.25
    assert hard["signal"] < default["signal"]
    assert default["signal_outside_mask"] == pytest.approx(0.0, abs=1e-9)
    assert default["decoy"] > 0 and default["flicker"] > 0 and default["head_motion"] > 0


def test_generate_corpus_partitions_and_resume(tmp_path):
    config = replace(SMALL, steps_per_recording=20, crop_size=16, num_train=2, num_devel=1,
                     num_test=1)
    store = generate_corpus(tmp_path, config, progress=False)
    assert store.names("train") == ["train_000", "train_001"]
    assert store.names("devel") == ["devel_000"] and store.names("test") == ["test_000"]
    recording = RecordingStore.open(tmp_path).load("train_001")
    assert recording.salient_mask.shape == (20, 16, 16) and recording.corpus == "synthetic"
    stamp = (tmp_path / "train_000.h5").stat().st_mtime_ns
    generate_corpus(tmp_path, config, progress=False)
    assert (tmp_path / "train_000.h5").stat().st_mtime_ns == stamp
    with pytest.raises(AvstanError, match="different configuration"):
        generate_corpus(tmp_path, replace(config, noise_std=0.5), progress=False)


def test_config_from_dict_checks_keys_and_types():
    config = SyntheticConfig.from_dict({"preset": "hard", "crop_size": 64})
    assert config.crop_size == 64 and config.face_scale == PRESETS["hard"].face_scale
    with pytest.raises(AvstanError, match="unknown key 'crop'"):
        SyntheticConfig.from_dict({"crop": 64})
    with pytest.raises(AvstanError, match="must be a number"):
        SyntheticConfig.from_dict({"noise_std": "loud"})
    with pytest.raises(AvstanError, match="unknown synthetic preset"):
        SyntheticConfig.preset("nope")
