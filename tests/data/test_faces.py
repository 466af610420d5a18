"""Face alignment maths against an independent solver, and dlib on real clips."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import avstan.data.faces as faces
from avstan.data.corpora.base import RecordingSource
from avstan.data.detectors import Detection
from avstan.data.faces import (
    DEFAULT_TEMPLATE,
    FaceAligner,
    anchor_points,
    box_from_landmarks,
    box_in_landmark_units,
    crop_similarity,
    landmark_frame,
    plausible_follow,
    similarity_transform,
    thumbnail,
    warp_crop,
)
from avstan.data.prepare import PrepareConfig, fill_missing_frames, prepare_recording
from avstan.data.video import sample_video
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


def box_overlap(a, b):
    """Intersection over union of two (left, top, right, bottom) boxes."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return width * height / (area - width * height)


@pytest.mark.parametrize("name", ["single_face.mp4", "moving_face.mp4"])
def test_search_near_the_last_face_finds_the_box_a_whole_frame_search_finds(aligner, name):
    """The cheap search (a region 1.5x the face, resized so the face is ~100 px) returns the
    whole-frame detector's face, wherever the previous step's box puts the region."""
    compared = 0
    frames = [s.image for s in sample_video(MEDIA / name)]
    for previous, image in zip(frames, frames[1:], strict=False):
        reference, last = aligner.detect(image), aligner.detect(previous)
        if reference is None or last is None:
            continue
        near = aligner.candidates_near(image, last)
        assert len(near) == 1
        # HOG's scale pyramid alone moves a box by up to ~15 % between searches at two
        # resolutions of the same frame, so the boxes must overlap, not coincide.
        assert box_overlap(near[0], reference) >= 0.5
        compared += 1
    assert compared >= len(frames) // 2


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
    boxes = [[(0, 0, 40, 40), (100, 100, 200, 200)],  # largest first
             [(110, 105, 150, 145), (0, 0, 60, 60)],  # the small one near the last face
             []]
    calls = iter(boxes)
    monkeypatch.setattr(aligner, "detector", lambda image: [
        Detection(box, 1.0) for box in next(calls)])
    image = np.zeros((240, 320, 3), np.uint8)
    aligner.reset()
    assert aligner.detect(image) == (100, 100, 200, 200)
    aligner.previous_centre = np.array([150.0, 150.0])
    assert aligner.detect(image) == (110, 105, 150, 145)
    assert aligner.detect(image) is None


def test_left_and_right_subjects_start_from_that_side(aligner, monkeypatch):
    boxes = [(200, 10, 260, 70), (10, 10, 120, 120)]
    monkeypatch.setattr(aligner, "detector", lambda image: [Detection(b, 1.0) for b in boxes])
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


def whole_frame_warp(image, matrix, size):
    """The warp as PIL does it on the whole frame (warp_crop hands it only a window)."""
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    return np.asarray(Image.fromarray(image).transform(
        (size, size), Image.Transform.AFFINE, data=tuple(inverse.ravel()),
        resample=Image.Resampling.BILINEAR))


def test_warp_crop_equals_warping_the_whole_frame_also_past_its_edges():
    rng = np.random.default_rng(1)
    outside = 0
    for _ in range(300):
        height, width = rng.integers(20, 300, 2)
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        size = int(rng.integers(8, 100))
        # eyes and nose anywhere from well outside the frame to well inside it
        matrix = similarity_transform(rng.uniform(-0.6, 1.6, (3, 2)) * [width, height],
                                      rng.uniform(0, 1, (3, 2)) * size)
        crop = warp_crop(image, matrix, size)
        np.testing.assert_array_equal(crop, whole_frame_warp(image, matrix, size))
        outside += not crop.any()
    assert outside > 5  # crops wholly outside the frame (all black) were among them


def test_box_placement_round_trip_and_moves_with_the_landmarks():
    rng = np.random.default_rng(2)
    points = rng.uniform(100, 200, (68, 2))
    box = (90.0, 80.0, 230.0, 215.0)
    placement = box_in_landmark_units(box, points)
    np.testing.assert_allclose(box_from_landmarks(points, placement), box, atol=1e-9)
    # The face moved by (30, -10) and grew by 10 % around its centre: so does the box.
    centre, _ = landmark_frame(points)
    moved = (points - centre) * 1.1 + centre + [30, -10]
    expected = (np.array(box) - np.tile(centre, 2)) * 1.1 + np.tile(centre + [30, -10], 2)
    np.testing.assert_allclose(box_from_landmarks(moved, placement), expected, atol=1e-9)


def test_plausible_follow_refuses_jumps_size_changes_and_faces_leaving_the_frame():
    rng = np.random.default_rng(3)
    previous = rng.normal(0, 20, (68, 2)) + [320, 180]
    _, spread = landmark_frame(previous)
    size = (360, 640)
    assert plausible_follow(previous + [0.3 * spread, 0], previous, size)
    assert plausible_follow((previous - [320, 180]) * 1.2 + [320, 180], previous, size)
    assert not plausible_follow(previous + [0.6 * spread, 0], previous, size)
    assert not plausible_follow((previous - [320, 180]) * 1.3 + [320, 180], previous, size)
    assert not plausible_follow((previous - [320, 180]) / 1.3 + [320, 180], previous, size)
    near_edge = previous + [640 - 320 - 10, 0]  # the right third of the points past x = 639
    assert not plausible_follow(near_edge, near_edge, size)


def test_crop_similarity_is_a_normalised_correlation():
    rng = np.random.default_rng(4)
    crop = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    assert crop_similarity(thumbnail(crop), thumbnail(crop)) == pytest.approx(1.0)
    brighter = np.clip(crop.astype(int) // 2 + 60, 0, 255).astype(np.uint8)
    assert crop_similarity(thumbnail(crop), thumbnail(brighter)) > 0.99  # gain and offset
    assert crop_similarity(thumbnail(crop), thumbnail(255 - crop)) < -0.99
    assert crop_similarity(thumbnail(crop), thumbnail(np.zeros_like(crop))) == 0.0


@pytest.fixture(scope="module")
def searching():
    return FaceAligner(crop_size=96)  # redetect_every = 1: the face searched every step


@pytest.fixture(scope="module")
def searched(searching):
    """The recording of a test clip with a search every step (prepared once per module)."""
    done = {}

    def get(name):
        if name not in done:
            done[name] = prepared(name, searching)
        return done[name]
    return get


@pytest.fixture(scope="module")
def following():
    return FaceAligner(crop_size=96, redetect_every=4)


def prepared(name, aligner):
    return prepare_recording(RecordingSource(name, "train", media=MEDIA / name),
                             PrepareConfig(crop_size=96), aligner=aligner)


def rms_in_crop_pixels(reference, other):
    """Per step found in both: RMS distance (crop pixels of ``reference``) between the
    landmarks of ``other`` and ``reference``, both mapped through ``reference``'s
    alignment."""
    rms = []
    for step in np.flatnonzero(reference.face_found & other.face_found):
        matrix = other.alignment_matrices[step].astype(np.float64)
        inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
        in_frame = other.landmarks[step] @ inverse[:, :2].T + inverse[:, 2]
        mapped = in_frame @ reference.alignment_matrices[step, :, :2].T.astype(np.float64) \
            + reference.alignment_matrices[step, :, 2]
        rms.append(np.sqrt(np.mean(np.sum((mapped - reference.landmarks[step]) ** 2, 1))))
    return np.array(rms)


@pytest.mark.parametrize("name", ["moving_face.mp4", "single_face.mp4", "face_noface.mov"])
def test_followed_landmarks_agree_with_a_search_every_step(searched, following, name):
    reference, followed = searched(name), prepared(name, following)
    np.testing.assert_array_equal(followed.face_found, reference.face_found)
    rms = rms_in_crop_pixels(reference, followed)
    assert len(rms) == reference.face_found.sum() >= 10
    # Measured (S = 96): mean 1.3 / max 4.1 px on moving_face (its worst steps have a hand
    # over the face, where a full-resolution search differs as much: mean 1.3, max 3.9),
    # mean 0.4 / max 1.0 on the others.
    assert rms.mean() < 1.6 and rms.max() < 5.0


def test_the_face_is_searched_every_kth_step_and_after_each_step_without_one(following):
    frames = [s.image for s in sample_video(MEDIA / "single_face.mp4")]
    following.reset()
    found = [following(image) for image in frames + [np.zeros_like(frames[0])] + frames[:3]]
    searched = [not face.followed for face in found if face is not None]
    assert searched == [True, False, False, False] * 2 + [True, False] + [True, False, False]
    assert found[10] is None


@pytest.mark.parametrize("redetect_every", [4, 8])
def test_a_face_cut_away_is_missed_at_most_k_minus_1_steps_late(monkeypatch, searched,
                                                               following, redetect_every):
    """face_noface.mov cuts from a face to the sky at step 10. The crop comparison catches
    that at once; without it, the search every k steps still does within k - 1."""
    monkeypatch.setattr(following, "redetect_every", redetect_every)
    reference = searched("face_noface.mov").face_found
    first_missing = int(np.argmin(reference))
    assert first_missing == 10 and not reference[first_missing:].any()
    np.testing.assert_array_equal(prepared("face_noface.mov", following).face_found,
                                  reference)

    monkeypatch.setattr(faces, "FOLLOW_MIN_SIMILARITY", -2.0)  # crops never compared
    found = prepared("face_noface.mov", following).face_found
    late = int(np.argmin(found)) - first_missing
    assert 0 < late <= redetect_every - 1  # followed onto the sky, then searched
    assert found[:first_missing].all() and not found[first_missing + late:].any()


def test_following_never_finds_a_face_where_there_is_none(following):
    with pytest.raises(AvstanError, match="no face found in any of its 17 steps"):
        prepared("no_face.mp4", following)


def test_redetect_every_1_searches_every_step_as_before(monkeypatch):
    searches = []
    aligner = FaceAligner(crop_size=96)
    for name in ("detections_near", "detections"):
        method = getattr(aligner, name)
        monkeypatch.setattr(aligner, name, lambda *a, _m=method, _n=name: (
            searches.append(_n), _m(*a))[1])
    recording = prepared("moving_face.mp4", aligner)
    # one search per step: near the last face from step 1 on (found there every time)
    assert searches == ["detections"] + ["detections_near"] * (recording.num_steps - 1)
    assert recording.face_found.all()
