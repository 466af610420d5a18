"""Audio decoding, eGeMAPS functionals in one pass and the robust standardisation, on the real
utterances in tests/data/speech and small generated files."""

import struct
import wave
from pathlib import Path

import av
import numpy as np
import opensmile
import pytest

from avstan.data.audio import (
    EGEMAPS_NAMES,
    LLD_HOP,
    NoAudioError,
    egemaps_functionals,
    feature_names,
    fit_standardisation,
    load_audio,
    standardise,
    standardise_per_recording,
)
from avstan.errors import AvstanError

SPEECH = Path(__file__).parent / "speech"
MEDIA = Path(__file__).parent / "media"
RATE = 16000


def read_pcm_wav(path: Path) -> np.ndarray:
    """A 16-bit mono wav through the standard library: an independent decoder."""
    with wave.open(str(path)) as handle:
        assert handle.getsampwidth() == 2 and handle.getnchannels() == 1
        return np.frombuffer(handle.readframes(handle.getnframes()), "<i2") / 32768.0


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """``samples (L, C)`` in [-1, 1] as 16-bit PCM."""
    pcm = np.round(np.asarray(samples) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(pcm.shape[1])
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(pcm.tobytes())
    return path


def raw_wav(format_tag: int, data: bytes, channels: int = 1, bits: int = 16,
            rate: int = 16000) -> bytes:
    """A RIFF/WAVE file with any format tag (write_wav can only write PCM)."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", format_tag, channels, rate, rate * block, block, bits)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", len(data)) + data)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def concatenated(ids) -> np.ndarray:
    return np.concatenate([load_audio(SPEECH / f"{i:02d}.wav") for i in ids])


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """About 18 s of real speech: utterances 00–06 back to back."""
    return concatenated(range(7))


# ------------------------------------------------------------------------------ decoding


def test_wav_decodes_to_the_same_samples_as_the_wave_module():
    signal = load_audio(SPEECH / "05.wav")
    expected = read_pcm_wav(SPEECH / "05.wav")
    assert signal.dtype == np.float32 and signal.shape == expected.shape
    np.testing.assert_allclose(signal, expected, atol=1e-7)


def test_stereo_8khz_is_averaged_to_mono_and_resampled_to_16khz(tmp_path):
    seconds, rate = 1.5, 8000
    t = np.arange(int(seconds * rate)) / rate
    tone = np.sin(2 * np.pi * 440 * t)
    path = write_wav(tmp_path / "stereo.wav", np.stack([0.6 * tone, 0.2 * tone], 1), rate)
    signal = load_audio(path)
    assert signal.shape == (int(seconds * RATE),)
    expected = 0.4 * np.sin(2 * np.pi * 440 * np.arange(signal.size) / RATE)
    middle = slice(RATE // 10, -RATE // 10)  # the resampler's filter rings at the ends
    np.testing.assert_allclose(signal[middle], expected[middle], atol=2e-3)


def test_a_videos_own_audio_track_is_decoded():
    signal = load_audio(MEDIA / "face_noface.mov")  # 6.4 s of video, 3.97 s of aac audio
    with av.open(str(MEDIA / "face_noface.mov")) as container:
        stream = container.streams.audio[0]
        declared = float(stream.duration * stream.time_base)
    assert abs(signal.size / RATE - declared) < 0.05
    assert 0.1 < np.abs(signal).max() <= 1.0 and np.sqrt(np.mean(signal ** 2)) > 0.01


def test_a_video_without_audio_track_raises_no_audio_error(tmp_path):
    from tests.conftest import one_track_copy

    path = one_track_copy(MEDIA / "single_face.mp4", tmp_path / "mute.mp4")
    with pytest.raises(NoAudioError, match=r"mute\.mp4: has no audio track"):
        load_audio(path)


def test_an_all_zero_signal_raises_no_audio_error(tmp_path):
    path = write_wav(tmp_path / "zeros.wav", np.zeros((RATE, 1)), RATE)
    with pytest.raises(NoAudioError, match=r"zeros\.wav: the audio track is silent"):
        load_audio(path)


def test_bad_files_raise_one_line_naming_the_file(tmp_path):
    pcm = (np.sin(np.arange(RATE * 2) / 5) * 20000).astype("<i2").tobytes()
    cases = {
        "truncated.wav": (raw_wav(1, pcm)[: len(pcm) // 2], "truncated wav file"),
        "garbage.wav": (b"RIFF\x00\x00" + bytes(range(256)) * 8, "not a readable media file"),
        "float16.wav": (raw_wav(3, pcm), "codec or sample format FFmpeg cannot decode"),
        "header_only.wav": (raw_wav(1, pcm)[:44], "no audio could be decoded"),
    }
    for name, (content, reason) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(AvstanError) as caught:
            load_audio(tmp_path / name)
        message = str(caught.value)
        assert not isinstance(caught.value, NoAudioError)
        assert str(tmp_path / name) in message and reason in message and "\n" not in message
    with pytest.raises(AvstanError, match="file not found"):
        load_audio(tmp_path / "absent.wav")


def encode(path: Path, signal: np.ndarray, codec: str, options: dict | None = None) -> Path:
    """``signal`` as 16 kHz mono audio in ``codec``, ``options`` for the container."""
    with av.open(str(path), "w", options=options or {}) as out:
        stream = out.add_stream(codec, rate=RATE)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray((signal[None] * 30000).astype(np.int16),
                                           format="s16", layout="mono")
        frame.sample_rate = RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return path


def encode_mp3(path: Path, signal: np.ndarray, xing: bool) -> Path:
    """``signal`` as a 16 kHz mono mp3, with or without the Xing/Info header that states
    its length (without one FFmpeg estimates the duration from the file size)."""
    return encode(path, signal, "libmp3lame", {"write_xing": "1" if xing else "0"})


@pytest.mark.parametrize("xing, reason", [
    (True, r"truncated audio: decoded 2\.\d\d s of the 5\.\d\d s its header declares"),
    (False, r"truncated audio: its last frame is cut off after 2\.\d\d s"),
])
def test_a_truncated_mp3_is_detected(xing, reason, tmp_path):
    """Issue 18 item 8: a cut-off mp3 without a Xing header used to decode "completely"
    to FFmpeg's size-based estimate; its last frame, shorter than its header says, shows
    the cut."""
    signal = concatenated(range(3))[: 5 * RATE]
    whole = encode_mp3(tmp_path / "whole.mp3", signal, xing)
    assert load_audio(whole).size / RATE == pytest.approx(5.0, abs=0.1)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[: len(data) // 2 + 37])  # inside a frame
    with pytest.raises(AvstanError, match=rf"cut\.mp3: {reason}; re-export the file"):
        load_audio(cut)


def test_other_codecs_are_not_taken_for_cut_frames(tmp_path):
    """FLAC's frame sync looks like an ADTS header; only mp3 and ADTS AAC are checked."""
    signal = concatenated(range(2))
    path = encode(tmp_path / "speech.flac", signal, "flac")
    assert load_audio(path).size == signal.size


# ------------------------------------------------------------------------------ features


def test_feature_names_are_opensmiles_egemaps_v02_functionals():
    smile = opensmile.Smile(opensmile.FeatureSet.eGeMAPSv02, opensmile.FeatureLevel.Functionals)
    assert len(EGEMAPS_NAMES) == 88
    assert feature_names() == list(smile.feature_names)


def test_each_window_is_the_llds_before_its_step(speech):
    """Independent check of the window placement: loudness_sma3_amean of step t is the mean
    of openSMILE's own loudness LLD track over the window's 10 ms frames, [t - W, t)
    (from 0 while t < W)."""
    window = 4.0
    times = np.arange(0, speech.size / RATE - 0.1, 0.25)
    features = egemaps_functionals(speech, RATE, times, window)
    lld = opensmile.Smile(opensmile.FeatureSet.eGeMAPSv02,
                          opensmile.FeatureLevel.LowLevelDescriptors)
    loudness = lld.process_signal(speech, RATE)["Loudness_sma3"].to_numpy()
    frames = round(window / LLD_HOP)
    expected = []
    for t in times:
        first = round(max(t - window, 0.0) / LLD_HOP)
        expected.append(loudness[first:first + frames].mean()
                        if first + frames <= loudness.size else np.nan)
    expected = np.array(expected)
    full = np.isfinite(expected)
    assert full.sum() >= len(times) - 2  # only the very last steps lack a full window
    column = EGEMAPS_NAMES.index("loudness_sma3_amean")
    np.testing.assert_allclose(features[full, column], expected[full], rtol=1e-5)
    # Steps earlier than one window share the window that begins at 0.
    early = times < window
    assert (features[early] == features[0]).all() and not (features[~early] == features[0]).all()


def test_one_pass_agrees_with_one_opensmile_call_per_window(speech):
    """The bulk of the 88 functionals agree with separate calls on each window's audio; the
    separate call gets [t - W, t + 40 ms), which yields the same 400 LLD frames."""
    window, rate = 4.0, 2.0
    times = np.arange(window, speech.size / RATE - 0.1, 1 / rate)
    one_pass = egemaps_functionals(speech, RATE, times, window)
    smile = opensmile.Smile(opensmile.FeatureSet.eGeMAPSv02, opensmile.FeatureLevel.Functionals)
    length = int(round((window + 0.04) * RATE))
    separate = np.stack([
        smile.process_signal(speech[start:start + length], RATE).to_numpy()[0]
        for start in np.rint((times - window) * RATE).astype(int)])
    relative = np.abs(one_pass - separate) / np.maximum(np.abs(separate), 1e-12)
    median = np.median(relative, axis=0)
    within_1_percent = int((median < 1e-2).sum())
    within_01_percent = int((median < 1e-3).sum())
    print(f"\none pass vs one call per window, {len(times)} windows: {within_1_percent}/88 "
          f"features within 1 % (median window), {within_01_percent}/88 within 0.1 %; "
          "worst: " + ", ".join(EGEMAPS_NAMES[i] for i in np.argsort(median)[-5:]))
    assert within_1_percent >= 0.8 * 88
    correlation = np.array([np.corrcoef(one_pass[:, i], separate[:, i])[0, 1]
                            for i in range(88)])
    assert (correlation > 0.99).sum() >= 0.8 * 88
    assert np.isfinite(one_pass).all()


def test_step_times_off_the_hop_grid_map_to_the_same_windows(speech):
    """3 steps/s is no whole number of 10 ms frames: its steps at whole seconds must get the
    same values as those of 4 steps/s, and a little timing jitter changes nothing."""
    seconds = np.arange(5, 15)
    quarter = egemaps_functionals(speech, RATE, np.arange(60) / 4, 4.0)
    third = egemaps_functionals(speech, RATE, np.arange(45) / 3, 4.0)
    np.testing.assert_array_equal(quarter[seconds * 4], third[seconds * 3])
    jitter = np.random.default_rng(0).uniform(-0.003, 0.003, 60)
    jittered = egemaps_functionals(speech, RATE, np.arange(60) / 4 + jitter, 4.0)
    np.testing.assert_array_equal(jittered, quarter)


def test_six_second_windows(speech):
    """A window length that is not a whole number of LLD frames in floating point (6.0 s)."""
    times = np.array([6.0, 10.0, 12.0])
    six = egemaps_functionals(speech, RATE, times, 6.0)
    lld = opensmile.Smile(opensmile.FeatureSet.eGeMAPSv02,
                          opensmile.FeatureLevel.LowLevelDescriptors)
    loudness = lld.process_signal(speech, RATE)["Loudness_sma3"].to_numpy()
    expected = [loudness[round((t - 6.0) / LLD_HOP):][:600].mean() for t in times]
    np.testing.assert_allclose(six[:, EGEMAPS_NAMES.index("loudness_sma3_amean")], expected,
                               rtol=1e-5)


def test_steps_past_the_end_of_the_audio():
    signal = concatenated([5, 6])  # 7.5 s
    duration = signal.size / RATE
    times = np.arange(0, duration + 4.0, 0.25)
    features = egemaps_functionals(signal, RATE, times, 4.0)
    beyond = times - 2.0 > duration  # the window's middle lies after the audio
    assert np.isnan(features[beyond]).all() and np.isfinite(features[~beyond]).all()
    # Just past the end: the last full window.
    last = np.flatnonzero(~beyond)[-1]
    np.testing.assert_array_equal(features[last], features[np.flatnonzero(times <= duration
                                                                          - 0.06)[-1]])


def test_audio_shorter_than_one_window_is_a_clear_error():
    signal = load_audio(SPEECH / "01.wav")  # 1.5 s
    with pytest.raises(AvstanError, match=r"01\.wav: the audio is 1\.\d+ s long, shorter "
                                          r"than one 4 s eGeMAPS window"):
        egemaps_functionals(signal, RATE, np.arange(6) / 4, 4.0,
                            source=str(SPEECH / "01.wav"))


# ------------------------------------------------------------------------------ standardisation


@pytest.fixture(scope="module")
def split_features():
    """Features of utterances 00–11 (training, 31 s) and 12–19 (held out, 15 s)."""
    out = []
    for ids in (range(12), range(12, 20)):
        signal = concatenated(ids)
        out.append(egemaps_functionals(signal, RATE, np.arange(signal.size // RATE * 4) / 4))
    return out


def test_robust_standardisation_survives_features_that_explode_on_unseen_speech(
        split_features):
    train, held_out = split_features
    plain = np.abs((held_out - train.mean(0)) / train.std(0))
    worst = int(plain.max(0).argmax())
    center, scale = fit_standardisation(train)
    robust = standardise(held_out, center, scale, clip=5.0)
    clipped = np.mean(np.abs((held_out - center) / scale) > 5.0)
    print(f"\nplain z on held-out speech: max |z| {plain.max():.0f} ({EGEMAPS_NAMES[worst]}); "
          f"robust: max |z| {np.abs(robust).max():.1f}, {clipped:.1%} of values clipped")
    assert plain.max() > 50 and "stddevNorm" in EGEMAPS_NAMES[worst]
    assert np.abs(robust).max() <= 5.0
    assert clipped < 0.05  # the clip catches outliers, not the bulk of the values


def test_standardise_matches_the_formula():
    rng = np.random.default_rng(1)
    features = rng.normal(3.0, 2.0, (50, 4))
    features[3, 1] = 1e5
    features[7, 2] = np.nan
    center, scale = np.array([1.0, -2.0, 0.5, 0.0]), np.array([2.0, 0.5, 1.0, 4.0])
    out = standardise(features, center, scale, clip=3.0)
    for row in range(50):
        for column in range(4):
            value = features[row, column]
            z = 0.0 if np.isnan(value) else (value - center[column]) / scale[column]
            assert out[row, column] == pytest.approx(min(3.0, max(-3.0, z)), abs=1e-5)
    assert out.dtype == np.float32


def test_fit_standardisation_statistics():
    rng = np.random.default_rng(2)
    normal = rng.normal(10.0, 3.0, 20000)
    mostly_zero = np.where(np.arange(20000) % 10 == 0, rng.normal(0, 1, 20000), 0.0)
    features = np.stack([normal, mostly_zero, np.full(20000, 7.0)], axis=1)
    features[:100] = np.nan  # rows without audio are ignored
    features[100:110, 0] = 1e6  # outliers do not move the statistics
    center, scale = fit_standardisation(features)
    kept = features[100:]
    assert center[0] == pytest.approx(np.median(kept[:, 0]))
    assert center[0] == pytest.approx(10.0, abs=0.1) and scale[0] == pytest.approx(3.0, rel=0.03)
    # Zero interquartile range: the standard deviation; a constant: scale 1.
    assert scale[1] == pytest.approx(np.std(kept[:, 1]), rel=1e-5)
    assert center[2] == 7.0 and scale[2] == 1.0
    with pytest.raises(AvstanError, match="no finite value"):
        fit_standardisation(np.full((5, 2), np.nan))


def test_per_recording_standardisation_matches_a_numpy_formula():
    rng = np.random.default_rng(3)
    features = rng.normal(5.0, 2.0, size=(200, 4)) * np.array([1.0, 10.0, 0.1, 1.0])
    features[7, 0] = 1e5  # one exploding window: clipped, and the median ignores it
    features[9, 2] = np.nan  # a step without audio: 0
    out = standardise_per_recording(features, clip=5.0)
    # Independent: median and IQR / 1.349 per column, by numpy directly.
    median = np.nanmedian(features, axis=0)
    q1, q3 = np.nanpercentile(features, 25, axis=0), np.nanpercentile(features, 75, axis=0)
    expected = np.clip((features - median) / ((q3 - q1) / 1.349), -5.0, 5.0)
    expected[9, 2] = 0.0
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    assert out[7, 0] == 5.0 and out.dtype == np.float32
    # A speaker's level goes away: the same speech, louder and higher, standardises the same.
    np.testing.assert_allclose(standardise_per_recording(features * 3.0 + 7.0), out,
                               rtol=1e-3, atol=1e-3)


def test_the_audio_of_two_mpeg_ts_files_joined_with_cat_follows_one_timeline(tmp_path):
    """Issue 32 §4: the clock of a joined MPEG-TS restarts; the video is followed as one
    timeline (test_video), and its sound must be the two halves back to back, as the
    video's steps are, not the first half alone or the halves overlaid."""
    part = tmp_path / "part.ts"
    with av.open(str(part), "w", format="mpegts") as output:
        stream = output.add_stream("aac", rate=RATE, layout="mono")
        for piece in np.array_split(load_audio(SPEECH / "00.wav"), 40):
            frame = av.AudioFrame.from_ndarray(piece[None].astype(np.float32), format="fltp",
                                               layout="mono")
            frame.sample_rate = RATE
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    joined = tmp_path / "joined.ts"
    joined.write_bytes(part.read_bytes() * 2)
    alone, both = load_audio(part), load_audio(joined)
    assert abs(len(both) - 2 * len(alone)) <= 1024  # one AAC frame at most
    np.testing.assert_allclose(both[:len(alone)], alone, atol=1e-4)
    # the second half is the file again, at the same place: not shifted by a frame
    second = both[len(alone):2 * len(alone)]
    assert np.mean((second - alone) ** 2) < 1e-3 * np.mean(alone ** 2)
