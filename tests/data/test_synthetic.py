"""The synthetic corpus: determinism, label statistics, where the signal lives, the store."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from avstan.data.audio import EGEMAPS_NAMES, egemaps_functionals
from avstan.data.store import RecordingStore
from avstan.data.synthetic import (
    PRESETS,
    SyntheticConfig,
    generate_corpus,
    generate_recording,
    recording_seed,
    render_float,
    render_voice,
    salient_mask,
    sample_processes,
    signal_variance_fraction,
    step_times,
)
from avstan.data.synthetic_voice import SAMPLE_RATE, read_wav
from avstan.errors import AvstanError

SMALL = SyntheticConfig.preset("default", crop_size=24, steps_per_recording=40)


def _lag1(x: np.ndarray) -> float:
    return float(np.corrcoef(x[:-1], x[1:])[0, 1])


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


# ---------------------------------------------------------------------------- determinism


def test_same_seed_same_recording_different_seed_different():
    a = generate_recording(SMALL, "r", "train", 5)
    b = generate_recording(SMALL, "r", "train", 5)
    c = generate_recording(SMALL, "r", "train", 6)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.salient_mask, b.salient_mask)
    np.testing.assert_array_equal(a.audio_features, b.audio_features)
    assert not np.array_equal(a.frames, c.frames)
    assert not np.array_equal(a.labels, c.labels)
    assert not np.array_equal(a.audio_features, c.audio_features)


def test_the_voice_stream_leaves_the_face_streams_as_before():
    # The voice's seed is a tenth child of the recording's SeedSequence; the nine streams
    # drawn before it existed (spawn(9)) must be the same, so corpora stay as they were.
    p = sample_processes(SMALL, 5)
    nine = np.random.SeedSequence(5).spawn(9)
    assert p.noise_seed == int(nine[8].generate_state(1, dtype=np.uint32)[0])
    assert p.voice_seed not in (p.noise_seed, 5)


def test_recording_fields():
    rec = generate_recording(SMALL, "devel_002", "devel", 1)
    n, s = SMALL.steps_per_recording, SMALL.crop_size
    assert rec.frames.shape == (n, s, s, 3) and rec.frames.dtype == np.uint8
    assert rec.salient_mask.shape == (n, s, s) and rec.salient_mask.dtype == bool
    assert rec.labels.shape == (n, 2) and rec.labels.dtype == np.float32
    assert rec.audio_features.shape == (n, len(EGEMAPS_NAMES))
    assert rec.audio_features.dtype == np.float32 and np.isfinite(rec.audio_features).all()
    np.testing.assert_allclose(rec.times, np.arange(n) / SMALL.step_rate)
    assert rec.face_found.all()
    assert (rec.partition, rec.corpus, rec.name) == ("devel", "synthetic", "devel_002")
    assert rec.source.startswith("synthetic:default")


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


def test_emotion_is_a_small_part_of_pixel_variance_and_smaller_when_hard():
    easy = signal_variance_fraction(SyntheticConfig.preset("default", steps_per_recording=80), 0)
    hard = signal_variance_fraction(SyntheticConfig.preset("hard", steps_per_recording=80), 0)
    assert 0.005 < easy["signal"] < 0.25
    assert 0.001 < hard["signal"] < easy["signal"]
    assert hard["decoy"] > hard["signal"]
    assert easy["signal_outside_mask"] < 1e-9 and hard["signal_outside_mask"] < 1e-9
    for key in ("decoy", "head_motion", "flicker", "background", "eyes"):
        assert 0 < hard[key] < 1, key


# ---------------------------------------------------------------------------- corpus


def test_generate_corpus_writes_partitions_and_resumes(tmp_path):
    config = SyntheticConfig.preset("default", crop_size=24, steps_per_recording=20,
                                    num_train=2, num_devel=1, num_test=1)
    root = tmp_path / "corpus"
    generate_corpus(root, config, progress=False, wav_folder=tmp_path / "wav")
    store = RecordingStore.open(root)
    assert store.corpus == "synthetic"
    assert store.attrs["synthetic_config"] == dataclasses.asdict(config)
    assert store.names("train") == ["train_000", "train_001"]
    assert store.names("devel") == ["devel_000"]
    assert store.names("test") == ["test_000"]
    rec = store.load("train_001")
    assert rec.salient_mask.shape == (20, 24, 24)
    expected = generate_recording(config, "train_001", "train",
                                  recording_seed(config, "train", 1))
    np.testing.assert_array_equal(rec.frames, expected.frames)
    np.testing.assert_array_equal(rec.labels, expected.labels)
    np.testing.assert_array_equal(rec.audio_features, expected.audio_features)
    # The stored features are those of the voice in the wav, on the step timeline.
    voice = render_voice(config, sample_processes(config, recording_seed(config, "train", 1)))
    assert voice.shape == (5 * SAMPLE_RATE,)
    np.testing.assert_array_equal(rec.audio_features,
                                  egemaps_functionals(voice, SAMPLE_RATE, step_times(config)))
    wav, rate = read_wav(tmp_path / "wav" / "train_001.wav")
    assert rate == SAMPLE_RATE
    np.testing.assert_allclose(wav, voice, atol=1 / 32767)
    assert sorted(p.name for p in (tmp_path / "wav").iterdir()) == [
        "devel_000.wav", "test_000.wav", "train_000.wav", "train_001.wav"]

    files = sorted(root.glob("*.h5"))
    assert len(files) == 4
    stamps = {f.name: f.stat().st_mtime_ns for f in files}
    (root / "devel_000.h5").unlink()  # an interrupted run lost this one
    (tmp_path / "wav" / "test_000.wav").unlink()  # and this wav
    generate_corpus(root, config, progress=False, wav_folder=tmp_path / "wav")
    again = {f.name: f.stat().st_mtime_ns for f in root.glob("*.h5")}
    assert set(again) == set(stamps)
    assert all(again[name] == stamps[name] for name in stamps if name != "devel_000.h5")
    test_voice = render_voice(config, sample_processes(config, recording_seed(config, "test", 0)))
    np.testing.assert_allclose(read_wav(tmp_path / "wav" / "test_000.wav")[0], test_voice,
                               atol=1 / 32767)

    with pytest.raises(AvstanError, match="different configuration"):
        generate_corpus(root, dataclasses.replace(config, seed=1), progress=False)


def test_without_audio_no_features_and_the_same_frames():
    silent = dataclasses.replace(SMALL, audio=False)
    a = generate_recording(silent, "r", "train", 5)
    b = generate_recording(SMALL, "r", "train", 5)
    assert a.audio_features is None
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_voice_follows_the_recordings_labels_and_its_own_seed():
    config = SyntheticConfig.preset("default", steps_per_recording=40)
    p = sample_processes(config, 3)
    voice = render_voice(config, p)
    neutral = render_voice(config, dataclasses.replace(p, labels=np.zeros_like(p.labels)))
    other_speaker = render_voice(config, dataclasses.replace(p, voice_seed=p.voice_seed + 1))
    assert not np.array_equal(voice, neutral)
    assert not np.array_equal(voice, other_speaker)
    np.testing.assert_array_equal(voice, render_voice(config, p))
    # Without label cues the labels leave no trace in the voice.
    no_cues = dataclasses.replace(config, voice_arousal_cue=0.0, voice_valence_cue=0.0)
    np.testing.assert_array_equal(
        render_voice(no_cues, p),
        render_voice(no_cues, dataclasses.replace(p, labels=np.zeros_like(p.labels))))


# ---------------------------------------------------------------------------- config


def test_presets_and_from_dict():
    assert {"default", "hard"} <= set(PRESETS)
    default, hard = PRESETS["default"], PRESETS["hard"]
    assert hard.face_scale < default.face_scale
    assert hard.expression_strength < default.expression_strength
    assert hard.head_motion > default.head_motion
    config = SyntheticConfig.from_dict({"preset": "hard", "noise_std": 0.1, "crop_size": 64})
    assert config.face_scale == hard.face_scale and config.noise_std == 0.1
    assert config.crop_size == 64 and isinstance(config.crop_size, int)
    assert SyntheticConfig.from_dict({}) == SyntheticConfig()
    quiet = SyntheticConfig.from_dict({"audio": False, "steps_per_recording": 12})
    assert quiet.audio is False and quiet.steps_per_recording == 12
    assert SyntheticConfig().audio and SyntheticConfig().audio_window_seconds == 4.0
    assert SyntheticConfig.preset("hard") == hard
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 3  # type: ignore[misc]
    with pytest.raises(AvstanError, match="unknown synthetic preset 'nope'"):
        SyntheticConfig.preset("nope")


@pytest.mark.parametrize("data, word", [
    ({"crop_sise": 48}, "crop_sise"),
    ({"preset": "medium"}, "medium"),
    ({"noise_std": "lots"}, "noise_std"),
    ({"steps_per_recording": 2.5}, "steps_per_recording"),
    ({"face_scale": 5.0}, "face_scale"),
    ({"flicker": -0.1}, "flicker"),
    ({"audio": "yes"}, "audio"),
    ({"audio": 1}, "audio"),
    ({"voice_noise": -1.0}, "voice_noise"),
    ({"steps_per_recording": 12}, "audio_window_seconds"),
    ({"audio_window_seconds": 0.0}, "audio_window_seconds"),
])
def test_bad_config_raises_avstan_error_naming_the_key(data, word):
    with pytest.raises(AvstanError, match=word):
        SyntheticConfig.from_dict(data)
