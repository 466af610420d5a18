"""Synthetic recordings and corpora: determinism, the recording's fields, the store and the
wavs, the voice of a recording, and how small the emotion's share of the pixels is."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from avstan.data.audio import EGEMAPS_NAMES, egemaps_functionals
from avstan.data.store import RecordingStore
from avstan.data.synthetic import (
    SyntheticConfig,
    generate_corpus,
    generate_recording,
    recording_seed,
    render_voice,
    sample_processes,
    signal_variance_fraction,
    step_times,
)
from avstan.data.synthetic.voice import SAMPLE_RATE, read_wav
from avstan.errors import AvstanError

SMALL = SyntheticConfig.preset("default", crop_size=24, steps_per_recording=40)



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


# ---------------------------------------------------------------------------- measurement


def test_emotion_is_a_small_part_of_pixel_variance_and_smaller_when_hard():
    easy = signal_variance_fraction(SyntheticConfig.preset("default", steps_per_recording=80), 0)
    hard = signal_variance_fraction(SyntheticConfig.preset("hard", steps_per_recording=80), 0)
    assert 0.005 < easy["signal"] < 0.25
    assert 0.001 < hard["signal"] < easy["signal"]
    assert hard["decoy"] > hard["signal"]
    assert easy["signal_outside_mask"] < 1e-9 and hard["signal_outside_mask"] < 1e-9
    for key in ("decoy", "head_motion", "flicker", "background", "eyes"):
        assert 0 < hard[key] < 1, key
