"""The attention overlay MP4: maps warped back into the frame, the right step per frame."""

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from avstan.apply.overlay import draw_values, warp_to_frame, write_overlay_video
from avstan.data.corpora.base import RecordingSource
from avstan.data.faces import similarity_transform
from avstan.data.prepare import PrepareConfig, prepare_recording

MEDIA = Path(__file__).parents[1] / "data" / "media"
CROP = 32
SPOTS = ((6, 8), (24, 22))  # (x, y) in crop pixels: even steps look at one, odd at the other


def to_frame(matrix, point):
    """Frame pixel of a crop point: the inverse of the (2, 3) frame → crop matrix."""
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))
    return (inverse @ [point[0], point[1], 1.0])[:2]


def test_warp_sends_each_crop_point_to_its_frame_pixel():
    matrix = similarity_transform(np.array([[80.0, 60], [120, 70], [95, 100]]),
                                  np.array([[10.0, 11], [21, 11], [16, 18]]))
    for point in [(5, 5), (20, 12), (27, 25)]:
        crop_map = np.zeros((CROP, CROP), np.float32)
        crop_map[point[1], point[0]] = 1.0
        frame_map = warp_to_frame(crop_map, matrix, 200, 150)
        ys, xs = np.nonzero(frame_map > 0.9 * frame_map.max())  # the peak's plateau
        np.testing.assert_allclose((xs.mean(), ys.mean()), to_frame(matrix, point), atol=0.6)
    assert warp_to_frame(np.ones((CROP, CROP), np.float32), matrix, 200, 150)[0, 0] == 0


def test_value_bars_grow_right_for_positive_and_left_for_negative():
    image = Image.new("RGB", (320, 180))
    draw_values(image, 1.0, [1.0, -1.0], ["valence", "arousal"], True)
    pixels = np.asarray(image).astype(int)
    green = (pixels[..., 1] > 150) & (pixels[..., 0] < 120)
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 120)
    assert green.any() and red.any()
    green_rows, green_cols = np.nonzero(green)
    red_rows, red_cols = np.nonzero(red)
    assert green_rows.max() < red_rows.min()  # valence above arousal
    assert green_cols.min() > red_cols.max() - 2  # positive right of the centre, negative left


def test_a_label_is_written_on_a_line_under_the_bars():
    def white_rows(label):
        image = Image.new("RGB", (320, 180))
        draw_values(image, 1.0, [1.0, -1.0], ["valence", "arousal"], True, label)
        pixels = np.asarray(image).astype(int)
        red = (pixels[..., 0] > 200) & (pixels[..., 1] < 120)
        white = (pixels > 200).all(axis=-1)
        return np.nonzero(white)[0], np.nonzero(red)[0]

    labelled, red = white_rows("happiness 0.74")
    plain, red_plain = white_rows(None)
    # the label's text lies below the arousal bar; without one no text is there, and the
    # bars keep their order and shape (the panel only grows upwards)
    assert (labelled > red.max()).any() and not (plain > red_plain.max()).any()
    assert red.max() - red.min() == red_plain.max() - red_plain.min()


@pytest.fixture(scope="module")
def recording():
    return prepare_recording(RecordingSource("single", "test", media=MEDIA / "single_face.mp4"),
                             PrepareConfig(crop_size=CROP))


def decode(path):
    with av.open(str(path)) as container:
        kinds = sorted((s.type, s.codec_context.name) for s in container.streams)
        video = container.streams.video[0]
        frames = [(float(f.time), f.to_ndarray(format="rgb24"))
                  for f in container.decode(video)]
    return kinds, frames


def test_overlay_video_shows_each_frames_latest_step(recording, tmp_path):
    steps = recording.num_steps
    attention = np.full((steps, CROP, CROP), 1e-4, np.float32)
    for step in range(steps):
        x, y = SPOTS[step % 2]
        attention[step, y - 2:y + 3, x - 2:x + 3] = 1.0
    attention /= attention.sum(axis=(1, 2), keepdims=True)
    values = np.stack([np.linspace(-1, 1, steps), np.linspace(1, -1, steps)], axis=1)
    annotated = write_overlay_video(MEDIA / "single_face.mp4", tmp_path / "a.mp4",
                                    recording.times, values, ("valence", "arousal"),
                                    recording.face_found, attention,
                                    recording.alignment_matrices)
    plain = write_overlay_video(MEDIA / "single_face.mp4", tmp_path / "p.mp4",
                                recording.times, annotate=False)
    kinds, frames = decode(annotated)
    _, plain_frames = decode(plain)
    _, source = decode(MEDIA / "single_face.mp4")
    assert kinds == [("audio", "aac"), ("video", "h264")]
    assert len(frames) == len(plain_frames) == len(source) == 72
    np.testing.assert_allclose([t for t, _ in frames], [t - source[0][0] for t, _ in source],
                               atol=2e-3)  # the video's own timestamps
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "p.mp4"]  # no temporary

    checked = 0
    for (time, image), (_, reference) in zip(frames, plain_frames, strict=True):
        step = int(np.searchsorted(recording.times, time + 1e-6, side="right")) - 1
        if not recording.face_found[step]:
            continue
        change = np.abs(image.astype(int) - reference.astype(int)).sum(-1)
        hot, cold = (to_frame(recording.alignment_matrices[step], SPOTS[k])
                     for k in (step % 2, 1 - step % 2))
        at = [change[int(round(p[1])) - 1:int(round(p[1])) + 2,
                     int(round(p[0])) - 1:int(round(p[0])) + 2].mean() for p in (hot, cold)]
        assert at[0] > at[1] + 20, (time, step, at)
        assert change[:40, -60:].mean() < 6  # outside the face: untouched but for coding noise
        checked += 1
    assert checked >= 60
    bottom_left = np.abs(frames[30][1][-30:, :120].astype(int) - plain_frames[30][1][-30:, :120])
    assert bottom_left.mean() > 20  # the values panel

    # a label per step (predict: the expression read) is drawn on each frame's panel
    labelled = write_overlay_video(MEDIA / "single_face.mp4", tmp_path / "l.mp4",
                                   recording.times, values, ("valence", "arousal"),
                                   recording.face_found,
                                   labels=[f"step {k}" for k in range(steps)])
    unlabelled = write_overlay_video(MEDIA / "single_face.mp4", tmp_path / "u.mp4",
                                     recording.times, values, ("valence", "arousal"),
                                     recording.face_found)
    _, with_label = decode(labelled)
    _, without = decode(unlabelled)
    panel = np.abs(with_label[30][1][-30:, :120].astype(int) - without[30][1][-30:, :120])
    assert panel.mean() > 5
