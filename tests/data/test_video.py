"""Streaming decoding and step sampling, on made-up timestamps and real clips."""

from pathlib import Path

import av
import numpy as np
import pytest

from avstan.data.video import sample_image_folder, sample_ticks, sample_video
from avstan.errors import AvstanError

MEDIA = Path(__file__).parent / "media"


def nearest_by_loop(times, rate):
    times = np.asarray(times) - times[0]
    chosen, step = [], 0
    while step / rate - times[-1] < 0.5 / rate:
        distances = np.abs(times - step / rate)
        chosen.append(int(np.flatnonzero(distances == distances.min())[0]))
        step += 1
    return chosen


@pytest.mark.parametrize("seed", range(4))
def test_each_tick_takes_the_nearest_frame_even_at_variable_frame_rate(seed):
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.uniform(0.01, 0.2, 80)) + 3.0  # VFR, not starting at 0
    result = list(sample_ticks(((t, i) for i, t in enumerate(times)), 4.0))
    assert [item for *_, item in result] == nearest_by_loop(times, 4.0)
    assert [step for step, *_ in result] == list(range(len(result)))
    ticks = np.array([tick for _, tick, *_ in result])
    np.testing.assert_allclose(np.diff(ticks), 0.25)


def test_slow_video_repeats_frames_and_duplicate_timestamps_are_skipped():
    result = list(sample_ticks([(0.0, "a"), (0.0, "dup"), (1.0, "b")], 4.0))
    assert [item for *_, item in result] == ["a", "a", "a", "b", "b"]


def test_real_clip_timestamps():
    frames = list(sample_video(MEDIA / "single_face.mp4", 4.0))
    assert len(frames) == 10  # 2.4 s at 4 steps/s: ticks 0 … 2.25
    assert frames[0].image.shape == (360, 640, 3) and frames[0].image.dtype == np.uint8
    for frame in frames:
        assert abs(frame.time - frame.tick) <= 1 / 60 + 1e-6  # 30 fps: within half a frame


def test_hevc_mov_decodes():
    frames = list(sample_video(MEDIA / "face_noface.mov", 4.0))
    assert len(frames) == 26 and frames[-1].image.shape == (540, 960, 3)


def test_bad_media_is_one_clear_line(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    with pytest.raises(AvstanError, match="notes.mp4: not a readable media file"):
        list(sample_video(text))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes((MEDIA / "single_face.mp4").read_bytes()[:20000])
    with pytest.raises(AvstanError, match="truncated.mp4"):
        list(sample_video(truncated))
    with pytest.raises(AvstanError, match="file not found"):
        list(sample_video(tmp_path / "missing.mp4"))


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "speech.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1600), np.int16), format="s16",
                                           layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
    with pytest.raises(AvstanError, match="speech.wav: has no video stream"):
        list(sample_video(path))


def test_image_folder(tmp_path):
    from PIL import Image

    for index in range(25):
        Image.fromarray(np.full((8, 8, 3), index, np.uint8)).save(tmp_path / f"{index:05d}.png")
    frames = list(sample_image_folder(tmp_path, frame_rate=25.0, step_rate=4.0))
    assert [int(f.image[0, 0, 0]) for f in frames] == [0, 6, 12, 19, 24]
    with pytest.raises(AvstanError, match="no image frames"):
        list(sample_image_folder(tmp_path / "empty", 25.0))


def test_prefetched_keeps_order_and_hands_errors_over():
    from avstan.data.video import prefetched

    assert list(prefetched(iter(range(50)), size=3)) == list(range(50))

    def failing():
        yield 1
        raise AvstanError("broken.mp4: cannot decode")

    got = []
    with pytest.raises(AvstanError, match="broken.mp4"):
        for item in prefetched(failing()):
            got.append(item)
    assert got == [1]
    early = prefetched(iter(range(1000)), size=2)
    assert next(early) == 0
    early.close()  # the consumer stops early: the producer thread ends


def index_first_copy(source: Path, target: Path) -> Path:
    """A stream copy of ``source``'s video with the MP4 index (moov) at the start, so a
    truncated copy still declares the whole duration."""
    from tests.conftest import one_track_copy

    return one_track_copy(source, target, {"movflags": "faststart"})


def test_a_truncated_mp4_is_sampled_as_far_as_it_goes_and_reported(tmp_path):
    """Issue 18 item 11: such a file used to be stored as a complete, shorter recording
    without a word."""
    whole = index_first_copy(MEDIA / "moving_face.mp4", tmp_path / "whole.mp4")  # 9.0 s
    report: list[str] = []
    assert len(list(sample_video(whole, 4.0, report))) == 37 and report == []
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    steps = list(sample_video(cut, 4.0, report))
    assert 8 < len(steps) < 30
    assert len(report) == 1
    assert report[0].startswith(f"{cut}: the video ends early: frames up to ")
    assert "of the 9.01 s its header declares" in report[0]
    with pytest.warns(UserWarning, match="the video ends early"):
        list(sample_video(cut, 4.0))  # without a report list: a warning


def test_timestamps_that_start_again_are_followed_as_one_timeline(tmp_path):
    """Issue 32 §4: two MPEG-TS files joined with cat (the clock restarts): the second
    half was dropped without a word."""
    import warnings

    from tests.conftest import one_track_copy

    part = one_track_copy(MEDIA / "single_face.mp4", tmp_path / "part.ts")
    joined = tmp_path / "joined.ts"
    joined.write_bytes(part.read_bytes() * 2)
    alone = list(sample_video(part, 4.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        both = list(sample_video(joined, 4.0))
    assert abs(len(both) - 2 * len(alone)) <= 1
    times = [s.time for s in both]
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    assert any("timestamps start again 1 time(s)" in str(w.message) for w in caught)
