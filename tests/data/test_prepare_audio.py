"""`avstan prepare` with audio: a video's own track, a separate audio file, no track, audio
files on their own, and bad audio (each skipped and named, the run going on)."""

import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from avstan.cli import EXIT_PARTIAL_FAILURE, EXIT_USER_ERROR, main
from avstan.data.audio import SAMPLE_RATE, egemaps_functionals, load_audio
from avstan.data.store import RecordingStore
from tests.conftest import one_track_copy

DATA = Path(__file__).parent
SPEECH = DATA / "speech"
MEDIA = DATA / "media"


def write_wav(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    """``samples (L,)`` or ``(L, C)`` in [-1, 1] as 16-bit PCM."""
    samples = np.asarray(samples).reshape(len(samples), -1)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(samples.shape[1])
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(np.round(samples * 32767).astype("<i2").tobytes())
    return path


def speech(ids, rate: int = SAMPLE_RATE) -> np.ndarray:
    return np.concatenate([load_audio(SPEECH / f"{i:02d}.wav", rate) for i in ids])


def without_audio(source: Path, target: Path) -> Path:
    """Copy of a video with its audio track left out (stream copy, no re-encoding)."""
    return one_track_copy(source, target)


@pytest.fixture
def audio_folder(tmp_path):
    """Audio files on their own: one good (with labels), one stereo 8 kHz, and bad ones."""
    root = tmp_path / "voices"
    root.mkdir()
    write_wav(root / "talk.wav", speech(range(3)))  # 6.4 s
    (root / "talk.csv").write_text("time,valence,arousal\n0,-0.5,0.0\n20,0.5,1.0\n")
    stereo = speech([5, 6], 8000)
    write_wav(root / "stereo8k.wav", np.stack([stereo, 0.5 * stereo], 1), 8000)
    write_wav(root / "quiet.wav", np.zeros(5 * SAMPLE_RATE))
    shutil.copy(SPEECH / "01.wav", root / "short.wav")  # 1.5 s
    whole = (root / "talk.wav").read_bytes()
    (root / "cut.wav").write_bytes(whole[: len(whole) // 3])
    float16 = bytearray((root / "short.wav").read_bytes())
    float16[20:22] = (3).to_bytes(2, "little")  # IEEE float format tag with 16-bit samples
    (root / "float16.wav").write_bytes(bytes(float16))
    return root


def test_audio_files_on_their_own_become_audio_only_recordings(audio_folder, tmp_path,
                                                               capsys):
    out = tmp_path / "store"
    code = main(["prepare", str(audio_folder), str(out), "--workers", "1"])
    printed = capsys.readouterr().out
    assert code == EXIT_PARTIAL_FAILURE
    assert "prepared 2, skipped 0 (already complete), failed 4" in printed
    for name, reason in (("quiet", "silent"), ("short", "shorter than one 4 s"),
                         ("cut", "truncated"), ("float16", "cannot decode")):
        line = next(line for line in printed.splitlines() if line.startswith(f"failed {name}:"))
        assert str(audio_folder / f"{name}.wav") in line and reason in line

    store = RecordingStore.open(out)
    assert store.names() == ["stereo8k", "talk"]
    talk = store.load("talk")
    assert talk.frames is None and not talk.face_found.any() and talk.crop_size == 0
    duration = load_audio(audio_folder / "talk.wav").size / SAMPLE_RATE
    np.testing.assert_allclose(talk.times, np.arange(talk.num_steps) / 4)
    assert duration - 0.25 < talk.times[-1] < duration + 0.125
    expected = egemaps_functionals(load_audio(audio_folder / "talk.wav"), SAMPLE_RATE,
                                   talk.times, 4.0)
    np.testing.assert_array_equal(talk.audio_features, expected)
    assert np.isfinite(talk.audio_features).all()
    np.testing.assert_allclose(talk.labels[:, 0], -0.5 + talk.times / 20, atol=1e-6)
    np.testing.assert_allclose(talk.labels[:, 1], talk.times / 20, atol=1e-6)
    np.testing.assert_array_equal(talk.gold_times, [0.0, 20.0])  # the CSV's rows, as read
    np.testing.assert_array_equal(talk.gold_labels, [[-0.5, 0.0], [0.5, 1.0]])
    stereo = store.load("stereo8k")
    assert stereo.audio_features.shape == (stereo.num_steps, 88)
    assert np.isnan(stereo.labels).all() and not stereo.has_gold_track


def test_no_audio_turns_audio_off_and_audio_only_files_fail_clearly(audio_folder, tmp_path,
                                                                    capsys):
    for name in ("cut", "quiet", "short", "float16", "stereo8k"):
        (audio_folder / f"{name}.wav").unlink()
    out = tmp_path / "store"
    assert main(["prepare", str(audio_folder), str(out), "--no-audio"]) == EXIT_PARTIAL_FAILURE
    printed = capsys.readouterr().out
    assert "failed talk:" in printed and "audio features are turned off" in printed
    assert main(["prepare", str(audio_folder), str(out), "--audio-window", "0"]) \
        == EXIT_USER_ERROR
    assert "--audio-window 0.0: use 0.5 to 60 seconds" in capsys.readouterr().err


def test_videos_take_audio_from_their_track_or_a_separate_file(tmp_path, capsys):
    root = tmp_path / "corpus"
    root.mkdir()
    shutil.copy(MEDIA / "single_face.mp4", root / "own.mp4")  # 2.4 s mp3 track
    without_audio(MEDIA / "single_face.mp4", root / "mute.mp4")
    shutil.copy(MEDIA / "single_face.mp4", root / "dubbed.mp4")
    write_wav(root / "dubbed.wav", speech([5]))  # a separate audio file beside the video
    out = tmp_path / "store"
    code = main(["prepare", str(root), str(out), "--crop-size", "48", "--workers", "1",
                 "--audio-window", "2", "--preview"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "prepared 3, skipped 0 (already complete), failed 0; 1 of them without audio" \
        in printed
    assert f"no audio mute: {root / 'mute.mp4'}: has no audio track" in printed

    store = RecordingStore.open(out)
    own, mute, dubbed = (store.load(name) for name in ("own", "mute", "dubbed"))
    assert own.face_found.mean() > 0.9 and mute.face_found.mean() > 0.9
    assert mute.audio_features is None
    assert "no audio:" in store.entries["mute"].message
    for recording, audio in ((own, root / "own.mp4"), (dubbed, root / "dubbed.wav")):
        expected = egemaps_functionals(load_audio(audio), SAMPLE_RATE, recording.times, 2.0)
        np.testing.assert_array_equal(recording.audio_features, expected)
    assert not np.allclose(own.audio_features, dubbed.audio_features, equal_nan=True)
    assert (out / "preview" / "mute.png").is_file()

    # Another audio window into the same store is refused.
    assert main(["prepare", str(root), str(out), "--crop-size", "48"]) == EXIT_USER_ERROR
    assert "holds 2 s audio windows" in capsys.readouterr().err
    # So is another face-search schedule (crops would be made two ways).
    assert main(["prepare", str(root), str(out), "--crop-size", "48", "--audio-window", "2",
                 "--redetect-every", "1"]) == EXIT_USER_ERROR
    assert "was prepared with --redetect-every 4" in capsys.readouterr().err


def test_a_video_whose_audio_is_too_short_or_ends_early(tmp_path, capsys):
    """face_noface.mov: 6.4 s of video, 3.97 s of audio. With 4 s windows its audio is too
    short (prepared without audio); with 2 s windows the last steps have no audio."""
    root = tmp_path / "corpus"
    root.mkdir()
    shutil.copy(MEDIA / "face_noface.mov", root / "leaves.mov")
    out = tmp_path / "store"
    assert main(["prepare", str(root), str(out), "--crop-size", "32", "--workers", "1",
                 "--step-rate", "2"]) == 0
    printed = capsys.readouterr().out
    assert "1 of them without audio" in printed
    assert "shorter than one 4 s eGeMAPS window" in printed
    assert RecordingStore.open(out).load("leaves").audio_features is None

    out = tmp_path / "store2"
    assert main(["prepare", str(root), str(out), "--crop-size", "32", "--workers", "1",
                 "--step-rate", "2", "--audio-window", "2"]) == 0
    store = RecordingStore.open(out)
    leaves = store.load("leaves")
    missing = np.isnan(leaves.audio_features).any(axis=1)
    assert missing[leaves.times - 1.0 > 3.97].all() and not missing[leaves.times < 4.5].any()
    assert f"no audio features in {missing.sum()} of" in store.entries["leaves"].message


def test_a_video_with_audio_but_no_face_is_kept_audio_only(tmp_path, capsys):
    """Issue 18 item 7: no_face.mp4 (3.9 s, aac) used to fail as "no face" even when the
    audio models could use it; now it is an audio-only recording on the video's steps,
    named in the summary, and only audio models read it."""
    from avstan.data.clips import usable_recordings

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(MEDIA / "no_face.mp4", corpus)
    (corpus / "no_face.csv").write_text("time,valence,arousal\n0,0.1,0.2\n3.9,0.5,-0.2\n")
    out = tmp_path / "store"
    assert main(["prepare", str(corpus), str(out), "--crop-size", "32", "--workers", "1",
                 "--audio-window", "2"]) == 0
    printed = capsys.readouterr().out
    assert (f"audio only no_face: {corpus / 'no_face.mp4'}: no face found in any of its 17 "
            "steps; kept for the audio models (video models skip it)") in printed
    assert "1 of them audio only (no face)" in printed
    recording = RecordingStore.open(out).load("no_face")
    assert recording.frames is None and not recording.face_found.any()
    np.testing.assert_allclose(recording.times, np.arange(17) / 4)  # the video's steps
    assert recording.audio_features.shape == (17, 88)
    assert np.isfinite(recording.audio_features[8:]).all()  # full 2 s windows from 2 s on
    np.testing.assert_allclose(recording.labels[[0, 8]],
                               [[0.1, 0.2], [0.1 + 0.4 * 2 / 3.9, 0.2 - 0.4 * 2 / 3.9]],
                               atol=1e-5)
    assert usable_recordings([recording], ("clip",))[0] == []
    assert usable_recordings([recording], ("audio",))[0] == [recording]

    # Without audio features, or audio shorter than one window: still "no face".
    for flags, why in ((["--no-audio"], None),
                       ([], "its audio cannot stand in for it: the audio is 3.97 s long")):
        store = tmp_path / f"store{len(flags)}"
        assert main(["prepare", str(corpus), str(store), "--crop-size", "32", "--workers",
                     "1", *flags]) == EXIT_PARTIAL_FAILURE
        printed = capsys.readouterr().out
        assert "failed no_face:" in printed and "no face found" in printed
        assert RecordingStore.open(store).entries["no_face"].status == "no_face"
        if why:
            assert why in printed


def audio_track_only(source: Path, target: Path) -> Path:
    """Copy of a file's audio track alone into another container (stream copy)."""
    return one_track_copy(source, target, kind="audio")


def test_an_mp4_with_only_audio_is_an_audio_file_and_a_silent_wav_is_named_as_audio(
        tmp_path, capsys):
    """Issue 18 item 11: an audio-only .mp4 was refused as a video while the same audio as
    .m4a was prepared; a silent wav on its own was said to be "still used by video
    models"."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    audio_track_only(MEDIA / "no_face.mp4", corpus / "voice.mp4")
    audio_track_only(MEDIA / "no_face.mp4", corpus / "same.m4a")
    write_wav(corpus / "quiet.wav", np.zeros(5 * SAMPLE_RATE))
    out = tmp_path / "store"
    assert main(["prepare", str(corpus), str(out), "--workers", "1", "--audio-window", "2"]) \
        == EXIT_PARTIAL_FAILURE
    printed = capsys.readouterr().out
    store = RecordingStore.open(out)
    assert store.names() == ["same", "voice"]
    voice, same = store.load("voice"), store.load("same")
    assert voice.frames is None and voice.num_steps == same.num_steps
    np.testing.assert_array_equal(voice.audio_features, same.audio_features)
    line = next(line for line in printed.splitlines() if line.startswith("failed quiet:"))
    assert "the audio track is silent" in line and "video models" not in line
    assert line.endswith("an audio file without usable audio gives no recording")
