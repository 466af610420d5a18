"""Sound read as it comes: causal eGeMAPS equal to the one pass, and both tracks of one
container demuxed together."""

from pathlib import Path

import av
import numpy as np
import pytest

from avstan.data.audio import (
    SAMPLE_RATE,
    STREAM_CONTEXT,
    STREAM_LOOKAHEAD,
    StreamingFunctionals,
    egemaps_functionals,
    load_audio,
)
from avstan.data.streaming import AudioSamples, demux_media
from avstan.data.video import SampledFrame, sample_video

SPEECH = Path(__file__).parent / "speech"
MEDIA = Path(__file__).parent / "media"


@pytest.mark.parametrize("window, step_rate, cut, longer", [
    (1.0, 4.0, 1234, 0.0), (2.0, 3.0, 0, 0.0),
    (4.0, 4.0, 0, 3.0),  # steps 3 s past the end of the sound, as a video's can be
])
def test_features_as_the_sound_comes_equal_one_pass_over_the_whole(window, step_rate, cut,
                                                                   longer):
    signal = np.concatenate([load_audio(SPEECH / f"0{i}.wav") for i in range(3)])[:-cut or None]
    steps = int(np.ceil((signal.size / SAMPLE_RATE + longer) * step_rate + 0.5))
    times = np.arange(steps) / step_rate
    expected = egemaps_functionals(signal, SAMPLE_RATE, times, window)
    streaming = StreamingFunctionals(window)
    rng = np.random.default_rng(0)
    got, position, step, most_kept = [], 0, 0, 0
    while position < signal.size:
        size = int(rng.integers(100, 3000))
        streaming.append(signal[position:position + size])
        position = min(position + size, signal.size)
        ready = []
        while step < steps and streaming.ready(times[step]):
            # Causal up to the lookahead: ready only once the sound reaches it.
            needed = (max(times[step], window) + STREAM_LOOKAHEAD) * SAMPLE_RATE
            assert needed - size < position and position >= needed - 1
            ready.append(step)
            step += 1
        got.append(streaming.features(times[ready]))
        most_kept = max(most_kept, streaming.kept.size)
    assert step < steps  # the last steps wait for the end of the sound
    got.append(streaming.finish(times[step:]))
    got = np.concatenate(got)
    assert got.shape == expected.shape == (steps, 88)
    np.testing.assert_array_equal(got, expected)  # bit for bit, NaN rows included
    assert np.isnan(expected).all(axis=1).any() == (longer > window / 2)
    bound = (window + STREAM_CONTEXT + STREAM_LOOKAHEAD + 1 / step_rate) * SAMPLE_RATE + 3000
    assert most_kept <= bound < signal.size  # bounded: not the whole sound


def test_demux_yields_the_frames_and_the_sound_of_offline(tmp_path):
    source = MEDIA / "single_face.mp4"
    with av.open(str(source)) as container:
        items = list(demux_media(container, source, 4.0))
    frames = [item for item in items if isinstance(item, SampledFrame)]
    sound = np.concatenate([item.samples for item in items if isinstance(item, AudioSamples)])
    offline = list(sample_video(source))
    assert [f.step for f in frames] == [f.step for f in offline] == list(range(10))
    for streamed, expected in zip(frames, offline, strict=True):
        np.testing.assert_array_equal(streamed.image, expected.image)
    np.testing.assert_array_equal(np.clip(sound, -1, 1), load_audio(source))
    # Interleaved as the container holds them, not one track after the other.
    kinds = [isinstance(item, SampledFrame) for item in items]
    last_frame, last_sound = len(kinds) - 1 - kinds[::-1].index(True), \
        len(kinds) - 1 - kinds[::-1].index(False)
    assert kinds.index(False) < last_frame and kinds.index(True) < last_sound
    assert 0 < sum(kinds[:len(kinds) // 2]) < sum(kinds)


def test_one_step_at_a_time_off_the_lld_grid_equals_one_pass():
    """The worst case for the lookahead: every step its own openSMILE call, 3 steps/s (steps
    off the 10 ms frame grid), 2 s windows. With 0.1 s after a step, 2 of these 61 steps
    differed in the pitch-based functionals (the Viterbi smoother looks 0.4 s ahead)."""
    signal = np.concatenate([load_audio(SPEECH / f"0{i}.wav") for i in range(8)])
    window, step_rate = 2.0, 3.0
    times = np.arange(int(signal.size / SAMPLE_RATE * step_rate)) / step_rate
    expected = egemaps_functionals(signal, SAMPLE_RATE, times, window)
    streaming = StreamingFunctionals(window)
    got, position = [], 0
    for time in times:
        while not streaming.ready(time) and position < signal.size:
            streaming.append(signal[position:position + 800])
            position += 800
        if not streaming.ready(time):
            break
        got.append(streaming.features(np.array([time])))
    got.append(streaming.finish(times[len(got):]))
    np.testing.assert_array_equal(np.concatenate(got), expected)
