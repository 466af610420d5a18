"""Face alignment maths against an independent solver, and dlib on real clips."""

from pathlib import Path

import numpy as np
import pytest

from avstan.data.corpora.base import RecordingSource
from avstan.data.faces import (
    DEFAULT_TEMPLATE,
    FaceAligner,
    anchor_points,
    similarity_transform,
    warp_crop,
)
from avstan.data.prepare import PrepareConfig, fill_missing_frames, prepare_recording
from avstan.errors import AvstanError

MEDIA = Path(__file__).parent / "media"


def lstsq_similarity(source, target):
    """The same fit as a linear least-squares problem in (a, b, tx, ty):
    x' = a x - b y + tx, y' = b x + a y + ty."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(source, target, strict=True):
        rows += [[x, -y, 1, 0], [y, x, 0, 1]]
        rhs += [u, v]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def test_similarity_matches_a_linear_least_squares_solver():
    rng = np.random.default_rng(0)
    for _ in range(5):
        source = rng.uniform(0, 100, (3, 2))
        target = rng.uniform(0, 50, (3, 2))
        np.testing.assert_allclose(similarity_transform(source, target),
                                   lstsq_similarity(source, target), atol=1e-9)


def test_exact_similarity_is_recovered_and_warp_moves_pixels_accordingly():
    angle, scale, shift = 0.3, 0.5, np.array([5.0, -3.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    source = np.array([[20.0, 30.0], [60.0, 32.0], [41.0, 55.0]])
    matrix = similarity_transform(source, source @ rotation.T + shift)
    np.testing.assert_allclose(matrix[:, :2], rotation, atol=1e-12)
    image = np.zeros((80, 80, 3), np.uint8)
    image[40, 50] = 255  # one bright pixel
    crop = warp_crop(image, similarity_transform(np.array([[40.0, 40], [60, 40], [50, 50]]),
                                                 np.array([[10.0, 10], [30, 10], [20, 20]])), 32)
    y, x = np.unravel_index(crop[..., 0].argmax(), crop.shape[:2])
    assert (x, y) == (20, 10)  # (50, 40) maps to (20, 10)


def test_anchor_points_are_eye_centres_and_nose_tip():
    landmarks = np.arange(136, dtype=float).reshape(68, 2)
    anchors = anchor_points(landmarks)
    np.testing.assert_allclose(anchors[0], landmarks[36:42].mean(0))
    np.testing.assert_allclose(anchors[2], landmarks[30])


@pytest.fixture(scope="module")
def aligner():
    return FaceAligner(crop_size=64)


def test_single_face_clip_is_found_and_aligned_to_the_template(aligner):
    recording = prepare_recording(RecordingSource("single", "train", media=MEDIA /
                                                  "single_face.mp4"),
                                  PrepareConfig(crop_size=64), aligner=aligner)
    assert recording.face_found.mean() >= 0.9
    assert recording.frames.shape == (10, 64, 64, 3)
    anchors = np.stack([anchor_points(lm) for lm in recording.landmarks[recording.face_found]])
    np.testing.assert_allclose(anchors.mean(0), np.array(DEFAULT_TEMPLATE) * 63, atol=1.5)
    assert np.isnan(recording.labels).all()  # a plain video has no labels
    assert recording.alignment_template == [list(p) for p in DEFAULT_TEMPLATE]


def test_face_that_leaves_is_missing_at_the_end_with_the_last_crop_held(aligner):
    recording = prepare_recording(RecordingSource("leaves", "train",
                                                  media=MEDIA / "face_noface.mov"),
                                  PrepareConfig(crop_size=64), aligner=aligner)
    found = recording.face_found
    first_missing = int(np.argmin(found))
    assert found[:first_missing].all() and not found[first_missing:].any()
    assert 5 <= first_missing <= 20
    np.testing.assert_array_equal(recording.frames[-1], recording.frames[first_missing - 1])
    assert np.isnan(recording.landmarks[~found]).all()


def test_no_face_is_reported_not_stored(aligner):
    with pytest.raises(AvstanError, match="no_face.mp4: no face found in any of its 17 steps"):
        prepare_recording(RecordingSource("none", "train", media=MEDIA / "no_face.mp4"),
                          PrepareConfig(crop_size=64), aligner=aligner)


def test_tracking_follows_the_face_nearest_to_the_previous_one(aligner, monkeypatch):
    import dlib

    boxes = [[(0, 0, 40, 40), (100, 100, 200, 200)],  # largest first
             [(110, 105, 150, 145), (0, 0, 60, 60)],  # the small one near the last face
             []]
    calls = iter(boxes)
    monkeypatch.setattr(aligner, "detector", lambda image, upsample: [
        dlib.rectangle(*box) for box in next(calls)])
    image = np.zeros((240, 320, 3), np.uint8)
    aligner.reset()
    assert aligner.detect(image) == (100, 100, 200, 200)
    aligner.previous_centre = np.array([150.0, 150.0])
    assert aligner.detect(image) == (110, 105, 150, 145)
    assert aligner.detect(image) is None


def test_left_and_right_subjects_start_from_that_side(aligner, monkeypatch):
    import dlib

    boxes = [(200, 10, 260, 70), (10, 10, 120, 120)]
    monkeypatch.setattr(aligner, "detector",
                        lambda image, upsample: [dlib.rectangle(*b) for b in boxes])
    image = np.zeros((240, 320, 3), np.uint8)
    aligner.reset("left")
    assert aligner.detect(image) == (10, 10, 120, 120)
    aligner.reset("right")
    assert aligner.detect(image) == (200, 10, 260, 70)
    aligner.reset()
    assert aligner.detect(image) == (10, 10, 120, 120)  # the largest


def test_fill_missing_frames_takes_the_nearest_found():
    frames = [None, np.full((2, 2, 3), 1), None, None, np.full((2, 2, 3), 4), None]
    filled = fill_missing_frames(frames)
    assert [int(f[0, 0, 0]) for f in filled] == [1, 1, 1, 4, 4, 4]


def test_alignment_matrices_map_source_landmarks_and_pixels_onto_the_crop(aligner, monkeypatch):
    fitted = []  # (frame, landmarks in frame pixels) of every step with a face, in order
    fit = aligner.landmarks

    def spy(image, box):
        points = fit(image, box)
        fitted.append((image.copy(), points))
        return points

    monkeypatch.setattr(aligner, "landmarks", spy)
    recording = prepare_recording(RecordingSource("leaves", "train",
                                                  media=MEDIA / "face_noface.mov"),
                                  PrepareConfig(crop_size=64), aligner=aligner)
    matrices, found = recording.alignment_matrices, recording.face_found
    assert matrices.shape == (recording.num_steps, 2, 3) and matrices.dtype == np.float32
    assert np.isnan(matrices[~found]).all() and np.isfinite(matrices[found]).all()
    assert len(fitted) == found.sum() >= 5
    for step, (frame, points) in zip(np.flatnonzero(found), fitted, strict=True):
        matrix = matrices[step].astype(np.float64)
        mapped = points @ matrix[:, :2].T + matrix[:, 2]  # (x, y, 1) → crop pixels
        np.testing.assert_allclose(mapped, recording.landmarks[step], atol=1e-2)
        # The stored matrix is the one the crop was cut with (float32 rounding aside).
        difference = np.abs(warp_crop(frame, matrix, 64).astype(int)
                            - recording.frames[step].astype(int))
        assert np.mean(difference) < 0.5 and np.percentile(difference, 99) <= 2
