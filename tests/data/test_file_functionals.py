"""A file's eGeMAPS functionals in bounded memory: decoded in chunks, computed a batch of
steps at a time, equal bit for bit to the one pass over the whole signal
(``egemaps_functionals(load_audio(path), ...)``, the independent implementation)."""

import tracemalloc
import wave
from pathlib import Path

import numpy as np
import pytest

from avstan.data.audio import (
    SAMPLE_RATE,
    NoAudioError,
    audio_chunks,
    egemaps_functionals,
    file_functionals,
    file_functionals_every_step,
    load_audio,
)
from avstan.errors import AvstanError

SPEECH = Path(__file__).parent / "speech"
MEDIA = Path(__file__).parent / "media"


def write_wav(path: Path, samples: np.ndarray) -> Path:
    """``samples (L,)`` in [-1, 1] as 16-bit mono PCM at 16 kHz."""
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(SAMPLE_RATE)
        handle.writeframes(np.round(np.asarray(samples) * 32767).astype("<i2").tobytes())
    return path


def speech(ids) -> np.ndarray:
    return np.concatenate([load_audio(SPEECH / f"{i:02d}.wav") for i in ids])


@pytest.fixture(scope="module")
def talk(tmp_path_factory) -> Path:
    """Utterances 00–07 (20 s of real speech, as in test_streaming) as one wav."""
    return write_wav(tmp_path_factory.mktemp("talk") / "talk.wav", speech(range(8)))


def test_chunks_are_the_wave_modules_samples_in_pieces_of_the_size_asked():
    path = SPEECH / "05.wav"
    chunks = list(audio_chunks(path, chunk_seconds=0.37))
    with wave.open(str(path)) as handle:
        expected = np.frombuffer(handle.readframes(handle.getnframes()), "<i2") / 32768.0
    sizes = [chunk.size for chunk in chunks]
    assert len(chunks) > 3 and set(sizes[:-1]) == {int(0.37 * SAMPLE_RATE)}
    assert 0 < sizes[-1] <= sizes[0] and all(chunk.dtype == np.float32 for chunk in chunks)
    np.testing.assert_allclose(np.concatenate(chunks), expected, atol=1e-7)


@pytest.mark.parametrize("window, step_rate, jitter, past_end", [
    (4.0, 4.0, 0.0, 0.0),
    (2.0, 3.0, 0.0, 0.0),  # 3 steps/s: windows 1 LLD frame apart
    (4.0, 4.0, 0.013, 0.0),  # steps off the 10 ms grid
    (4.0, 4.0, 0.0, 3.0),  # steps 3 s past the end of the sound: NaN rows, last window
])
def test_a_file_in_batches_equals_one_pass_over_the_whole_signal(talk, window, step_rate,
                                                                  jitter, past_end):
    signal = load_audio(talk)
    steps = int(np.ceil((signal.size / SAMPLE_RATE + past_end) * step_rate + 0.5))
    times = np.arange(steps) / step_rate + jitter
    expected = egemaps_functionals(signal, SAMPLE_RATE, times, window, source=str(talk))
    # Batches of 3 s: several openSMILE calls, steps before one window in the first.
    got = file_functionals(talk, times, window, batch_seconds=3.0)
    assert got.shape == (steps, 88) and got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)  # bit for bit, NaN rows included
    assert np.isnan(expected).all(axis=1).any() == (past_end > window / 2)
    assert np.isfinite(expected[: int(window * step_rate)]).all()


def test_steps_produced_as_the_audio_arrives_are_those_of_its_duration(talk):
    signal = load_audio(talk)
    steps = int(np.ceil(signal.size / SAMPLE_RATE * 4.0 + 0.5))
    times, features = file_functionals_every_step(talk, 4.0, 2.0, batch_seconds=5.0)
    np.testing.assert_array_equal(times, np.arange(steps) / 4.0)
    np.testing.assert_array_equal(features,
                                  egemaps_functionals(signal, SAMPLE_RATE, times, 2.0))


def traced_peak(compute):
    """(what ``compute()`` returns, the peak of memory traced while it ran: numpy's and
    Python's allocations, not openSMILE's own)."""
    tracemalloc.start()
    try:
        result = compute()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_long_file_equals_one_pass_in_memory_that_does_not_grow_with_it(tmp_path):
    """About 2.5 minutes of speech (utterances 00–39, then 00–19 again) and its first half:
    the one pass holds the whole signal, file_functionals about one batch of it, the same
    for both lengths."""
    signal = speech([*range(40), *range(20)])
    long = write_wav(tmp_path / "long.wav", signal)
    short = write_wav(tmp_path / "short.wav", signal[: signal.size // 2])
    signal = load_audio(long)
    seconds = signal.size / SAMPLE_RATE
    assert seconds > 150
    times = np.arange(int(seconds * 4)) / 4
    expected = egemaps_functionals(signal, SAMPLE_RATE, times, 4.0)
    del signal
    got, peak = traced_peak(lambda: file_functionals(long, times, 4.0))  # 60 s batches
    np.testing.assert_array_equal(got, expected)
    batch = 10.0  # smaller batches, to see memory flat against the file's length
    half, half_peak = traced_peak(lambda: file_functionals(short, times[: times.size // 2],
                                                           4.0, batch_seconds=batch))
    _, long_peak = traced_peak(lambda: file_functionals(long, times, 4.0, batch_seconds=batch))
    samples = seconds * SAMPLE_RATE * 4  # bytes of the whole signal
    assert long_peak < 1.2 * half_peak + got.nbytes - half.nbytes
    assert long_peak < samples  # less than the whole signal alone
    print(f"\n{seconds:.0f} s, signal {samples / 2**20:.1f} MiB; traced peak: 60 s batches "
          f"{peak / 2**20:.1f} MiB, {batch:g} s batches {long_peak / 2**20:.1f} MiB "
          f"({half_peak / 2**20:.1f} MiB for half the file)")


def test_audio_shorter_than_one_window_names_the_file():
    short = SPEECH / "01.wav"  # 1.5 s
    for times in (np.arange(6) / 4, np.zeros(0)):
        with pytest.raises(AvstanError, match=r"01\.wav: the audio is 1\.\d+ s long, "
                                              r"shorter than one 4 s eGeMAPS window"):
            file_functionals(short, times, 4.0)
    with pytest.raises(AvstanError, match=r"01\.wav: the audio is 1\.\d+ s long"):
        file_functionals_every_step(short, 4.0, 4.0)


def test_a_file_found_bad_at_its_end_gives_no_features(tmp_path):
    """The checks that need the whole file (silence, a wav missing bytes) come after the
    batches computed on the way; they still raise, as load_audio does."""
    silent = write_wav(tmp_path / "silent.wav", np.zeros(12 * SAMPLE_RATE))
    with pytest.raises(NoAudioError, match=r"silent\.wav: the audio track is silent"):
        file_functionals(silent, np.arange(40) / 4, 2.0, batch_seconds=2.0)
    whole = write_wav(tmp_path / "whole.wav", speech(range(4))).read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole[: len(whole) // 3 * 2])  # a whole number of samples
    assert load_audio(tmp_path / "whole.wav").size > 6 * SAMPLE_RATE
    for compute in (load_audio, lambda path: file_functionals(path, np.arange(20) / 4, 2.0,
                                                               batch_seconds=1.0)):
        with pytest.raises(AvstanError, match=r"cut\.wav: truncated wav file: \d+ bytes"):
            compute(cut)
    with pytest.raises(AvstanError, match="file not found"):
        file_functionals(tmp_path / "absent.wav", np.arange(4) / 4)
