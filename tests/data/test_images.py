"""Face images through the face stage (align_image), into an image store (prepare_images),
and scored raw by evaluate."""

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import map_coordinates

from avstan.data.corpora.images import ImageSource
from avstan.data.faces import DEFAULT_TEMPLATE, warp_crop
from avstan.data.images import (
    FAILED_FILE,
    IMAGE_MODEL_SMOOTHING,
    align_image,
    crop_with_margin,
    is_image_store,
    prepare_images,
)
from avstan.data.prepare import PrepareConfig, make_aligner
from avstan.data.store import ALIGNED_FROM, ANCHOR_CODES, Recording, RecordingStore
from avstan.data.video import sample_video
from avstan.evaluation.evaluate import evaluate_model_file
from avstan.models import create_model
from avstan.models.model_file import TrainedModel

MEDIA = Path(__file__).parent / "media"
CROP = 48
TEMPLATE_PIXELS = np.array(DEFAULT_TEMPLATE) * (CROP - 1)  # eye centres, nose tip
# the largest hand-labelled face of the group photo (faces_wild_boxes.csv): 52×53 px
PHOTO_FACE = (274, 181, 326, 234)


@pytest.fixture(scope="module")
def aligner():
    return make_aligner(PrepareConfig(crop_size=CROP, redetect_every=1))


def fer_like(image: np.ndarray, box, margin: float = 0.2) -> np.ndarray:
    """The face in ``box`` (left, top, right, bottom) with ``margin`` of its size around it,
    as FER2013 stores faces: 48×48 grey, here replicated to 3 channels."""
    left, top, right, bottom = box
    width, height = right - left, bottom - top
    face = Image.fromarray(image).crop((int(left - margin * width), int(top - margin * height),
                                        int(right + margin * width),
                                        int(bottom + margin * height)))
    grey = np.asarray(face.convert("L").resize((48, 48), Image.Resampling.BICUBIC))
    return np.repeat(grey[:, :, None], 3, axis=2)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.asarray(Image.open(MEDIA / "2008_002470.jpg").convert("RGB"))


@pytest.fixture(scope="module")
def photo_face(photo) -> np.ndarray:
    return fer_like(photo, PHOTO_FACE)


@pytest.fixture(scope="module")
def video_face(aligner) -> np.ndarray:
    frame = next(iter(sample_video(MEDIA / "single_face.mp4"))).image
    box = aligner.detect(frame)
    assert box is not None
    return fer_like(frame, box)


def anchors_of(landmarks: np.ndarray) -> np.ndarray:
    """Eye centres (means of points 36-41 and 42-47) and nose tip (30): (3, 2)."""
    return np.stack([landmarks[36:42].mean(0), landmarks[42:48].mean(0), landmarks[30]])


def resample(grey: np.ndarray, matrix: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The crop ``matrix`` (image px → crop px) describes, sampled bilinearly by scipy from
    ``grey`` (H, W), and where its pixels come from inside the image (1 px from the edge)."""
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))
    ys, xs = np.mgrid[0:size, 0:size]
    source = inverse @ np.stack([xs.ravel(), ys.ravel(), np.ones(size * size)])
    values = map_coordinates(grey.astype(np.float64), [source[1], source[0]], order=1)
    height, width = grey.shape
    inside = ((source[0] >= 1) & (source[0] <= width - 2)
              & (source[1] >= 1) & (source[1] <= height - 2))
    return values.reshape(size, size), inside.reshape(size, size)


@pytest.mark.parametrize("which", ["photo_face", "video_face"])
def test_a_small_grey_face_is_aligned_and_its_matrix_describes_the_crop(which, aligner,
                                                                        request):
    image = request.getfixturevalue(which)
    face = align_image(aligner, image)
    assert face.anchors in ("landmarks", "detector")
    assert face.crop.shape == (CROP, CROP, 3) and face.crop.dtype == np.uint8
    assert face.landmarks.shape == (68, 2) and face.matrix.shape == (2, 3)
    if face.anchors == "landmarks":
        np.testing.assert_allclose(anchors_of(face.landmarks), TEMPLATE_PIXELS, atol=2.0)
    # The matrix is in the image's own pixels (not the upscaled canvas the detector saw):
    # sampling the 48-px image through it gives the crop, up to the upscaling's blur.
    reference, inside = resample(image[:, :, 0], face.matrix.astype(np.float64), CROP)
    assert inside.mean() > 0.5
    error = np.abs(reference - face.crop[:, :, 0])[inside].mean()
    assert error < 4.0  # measured 1.6 and 1.5; the matrix shifted by 1.5 px: 14.5 and 16
    shifted = face.matrix.astype(np.float64) + [[0, 0, 1.5], [0, 0, 0]]
    wrong, wrong_inside = resample(image[:, :, 0], shifted, CROP)
    assert np.abs(wrong - face.crop[:, :, 0])[inside & wrong_inside].mean() > 2 * error


def test_an_image_without_a_face_is_fitted_in_its_frame(aligner):
    flat = np.full((48, 48, 3), 128, np.uint8)
    face = align_image(aligner, flat)
    assert face.anchors == "frame"
    assert face.crop.shape == (CROP, CROP, 3) and face.crop.dtype == np.uint8
    assert np.isfinite(face.matrix).all() and face.landmarks.shape == (68, 2)
    assert (face.crop == 128).all()  # nothing black comes in from outside the image


def test_crop_with_margin_fills_past_the_edge_with_edge_colours():
    canvas = np.full((160, 160, 3), 90, np.uint8)
    # a crop of 48 px covering 240 canvas px around the canvas centre: it reaches past
    # every edge by 40 px
    zoom_out = np.array([[0.2, 0.0, 24 - 0.2 * 80], [0.0, 0.2, 24 - 0.2 * 80]])
    assert (crop_with_margin(canvas, zoom_out, 48) == 90).all()
    assert (warp_crop(canvas, zoom_out, 48)[0, 0] == 0).all()  # the plain warp: black


def similarity(scale: float, angle: float, shift) -> np.ndarray:
    """(3, 3): x ↦ scale · R(angle) x + shift."""
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, shift[0]], [s, c, shift[1]], [0.0, 0.0, 1.0]])


def test_corpus_landmarks_are_used_as_given(aligner):
    # A known transform from crop pixels to the image's pixels; the landmarks are placed so
    # that their eye centres and nose tip are the template under it: the alignment must
    # find its inverse exactly.
    crop_to_image = similarity(0.8, 0.15, (20.0, 8.0))
    expected = np.linalg.inv(crop_to_image)[:2]
    rng = np.random.default_rng(0)
    landmarks = rng.uniform([10, 10], [70, 50], (68, 2))
    anchors = (crop_to_image @ np.c_[TEMPLATE_PIXELS, np.ones(3)].T).T[:, :2]
    ring = np.array([[-3, 0], [-1.5, -1.2], [1.5, -1.2], [3, 0], [1.5, 1.2], [-1.5, 1.2]])
    landmarks[36:42] = anchors[0] + ring
    landmarks[42:48] = anchors[1] + ring
    landmarks[30] = anchors[2]
    # a bright blob at the image point of crop pixel (30, 20)
    target = np.array([30.0, 20.0])
    blob_at = crop_to_image[:2] @ [*target, 1.0]
    ys, xs = np.mgrid[0:60, 0:80]
    blob = 150 * np.exp(-((xs - blob_at[0]) ** 2 + (ys - blob_at[1]) ** 2) / (2 * 2.5 ** 2))
    image = np.repeat((60 + blob).astype(np.uint8)[:, :, None], 3, axis=2)  # 80 × 60 px

    face = align_image(aligner, image, landmarks)
    assert face.anchors == "corpus"
    np.testing.assert_allclose(face.matrix, expected, atol=1e-4)
    np.testing.assert_allclose(anchors_of(face.landmarks), TEMPLATE_PIXELS, atol=1e-3)
    np.testing.assert_allclose(face.landmarks, landmarks @ expected[:, :2].T + expected[:, 2],
                               atol=1e-3)
    weight = np.clip(face.crop[:, :, 0].astype(np.float64) - 60, 0, None)
    weight[weight < 20] = 0
    cy, cx = np.mgrid[0:CROP, 0:CROP]
    centre = np.array([(weight * cx).sum(), (weight * cy).sum()]) / weight.sum()
    np.testing.assert_allclose(centre, target, atol=0.75)


# --- prepare_images ---------------------------------------------------------------------

def save(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def source(name, partition, path, valence, arousal, expression) -> ImageSource:
    return ImageSource(name=name, partition=partition, path=path, pixels=None,
                       valence=valence, arousal=arousal, expression=expression)


@pytest.fixture
def image_sources(tmp_path, photo, photo_face) -> list[ImageSource]:
    folder = tmp_path / "corpus"
    grey = photo_face[:, :, 0]
    brighter = np.clip(grey.astype(np.int16) + 40, 0, 255).astype(np.uint8)
    colour = np.asarray(Image.fromarray(photo).crop((45, 145, 107, 210)).resize((64, 64)))
    broken = save(folder / "broken.png", colour)
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])
    return [
        source("train/face", "train", save(folder / "face.png", grey), 0.5, 0.25, 1),
        source("train/mirror", "train", save(folder / "mirror.png", grey[:, ::-1].copy()),
               -0.5, 0.75, 6),
        source("train/colour", "train", save(folder / "colour.png", colour), 0.125, -0.5, -1),
        source("train/broken", "train", broken, 0.0, 0.0, 0),
        source("devel/bright", "devel", save(folder / "bright.png", brighter), -0.25, 0.5, 3),
    ]


def h5_times(root: Path) -> dict[str, int]:
    return {path.name: path.stat().st_mtime_ns for path in root.glob("*.h5")}


def test_prepare_images_stores_shards_and_resumes(image_sources, aligner, tmp_path):
    output = tmp_path / "store"
    config = PrepareConfig(crop_size=CROP, redetect_every=1)
    summary = prepare_images(image_sources, output, config, corpus="test", workers=1,
                             progress=False, shard_size=2)
    assert sorted(summary.prepared) == ["devel-0000", "train-0000", "train-0001"]
    assert summary.skipped == [] and summary.failed_shards == []
    assert [name for name, _ in summary.failed_images] == ["train/broken"]
    with open(output / FAILED_FILE, newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["image", "reason"] and [row[0] for row in rows[1:]] == ["train/broken"]
    assert any(line.startswith("crops aligned from: ") for line in summary.lines())
    assert summary.partitions == {"train": 3, "devel": 1}

    store = RecordingStore.open(output)
    assert store.attrs["kind"] == "images" and is_image_store(store.attrs)
    assert store.names() == ["devel-0000", "train-0000", "train-0001"]
    by_name = {s.name: s for s in image_sources}
    expected = {"train-0000": ["train/face", "train/mirror"], "train-0001": ["train/colour"],
                "devel-0000": ["devel/bright"]}
    for shard, names in expected.items():
        recording = store.load(shard)
        kept = [by_name[n] for n in names]
        assert recording.partition == kept[0].partition
        assert [n.decode() for n in recording.image_names] == names
        np.testing.assert_array_equal(recording.labels,
                                      np.array([[s.valence, s.arousal] for s in kept],
                                               np.float32))
        assert recording.expressions.tolist() == [s.expression for s in kept]
        assert recording.frames.shape == (len(names), CROP, CROP, 3)
        assert recording.alignment_matrices.shape == (len(names), 2, 3)
        allowed = {ANCHOR_CODES[a] for a in ("landmarks", "detector", "frame")}
        assert set(recording.aligned_from.tolist()) <= allowed
    # the stored crop is the face stage's crop of the image as read from its file
    first = store.load("train-0000")
    np.testing.assert_array_equal(first.frames[0],
                                  align_image(aligner, by_name["train/face"].read()).crop)
    assert ALIGNED_FROM[first.aligned_from[0]] in ("68-point fit", "detector's points")

    before = h5_times(output)
    again = prepare_images(image_sources, output, config, corpus="test", workers=1,
                           progress=False, shard_size=2)
    assert sorted(again.skipped) == ["devel-0000", "train-0000", "train-0001"]
    assert again.prepared == [] and h5_times(output) == before

    renamed = [replace(s, name="train/mirrored") if s.name == "train/mirror" else s
               for s in image_sources]
    third = prepare_images(renamed, output, config, corpus="test", workers=1,
                           progress=False, shard_size=2)
    assert third.prepared == ["train-0000"]
    assert sorted(third.skipped) == ["devel-0000", "train-0001"]
    after = h5_times(output)
    assert {k: v for k, v in after.items() if k != "train-0000.h5"} == \
        {k: v for k, v in before.items() if k != "train-0000.h5"}
    names = RecordingStore.open(output).load("train-0000").image_names
    assert [n.decode() for n in names] == ["train/face", "train/mirrored"]


@pytest.mark.parametrize("landmarks", ["corpus", "detect"])
def test_corpus_landmarks_in_prepare(landmarks, photo_face, tmp_path):
    path = save(tmp_path / "face.png", photo_face[:, :, 0])
    given = np.random.default_rng(3).uniform(5, 43, (68, 2)).astype(np.float32)
    sources = [replace(source("train/given", "train", path, 0.1, 0.2, 1), landmarks=given),
               replace(source("train/zeros", "train", path, 0.3, 0.4, 2),
                       landmarks=np.zeros((68, 2), np.float32))]
    config = PrepareConfig(crop_size=CROP, redetect_every=1, landmarks=landmarks)
    summary = prepare_images(sources, tmp_path / "store", config, workers=1, progress=False)
    recording = RecordingStore.open(tmp_path / "store").load("train-0000")
    stored = [n.decode() for n in recording.image_names]
    if landmarks == "corpus":
        # a landmark file whose anchors coincide is one failed image, not a crashed run
        assert stored == ["train/given"]
        assert recording.aligned_from.tolist() == [ANCHOR_CODES["corpus"]]
        assert [name for name, _ in summary.failed_images] == ["train/zeros"]
        assert "landmark" in summary.failed_images[0][1]
    else:  # --landmarks detect: the corpus's points are ignored, the face is searched for
        assert stored == ["train/given", "train/zeros"] and summary.failed_images == []
        assert ANCHOR_CODES["corpus"] not in recording.aligned_from.tolist()


# --- evaluate on an image store ------------------------------------------------------------

def tiny_store(root: Path, **attrs) -> Path:
    store = RecordingStore.create(root, corpus="tiny-images", crop_size=16, step_rate=1.0,
                                  **attrs)
    rng = np.random.default_rng(5)
    for number in range(2):
        steps = 12
        store.add(Recording(
            name=f"test-{number:04d}", frames=rng.integers(0, 256, (steps, 16, 16, 3), np.uint8),
            times=np.arange(steps, dtype=np.float64), face_found=np.ones(steps, bool),
            labels=rng.uniform(-1, 1, (steps, 2)).astype(np.float32), step_rate=1.0,
            partition="test", expressions=rng.integers(0, 8, steps)))
    return root


def test_evaluate_scores_an_image_store_raw_only(tmp_path):
    torch.manual_seed(0)
    network = create_model("frame2d", crop_size=16, clip_length=1, channels=[4, 8],
                           fc_hidden=8)
    targets = ("valence", "arousal")
    model_path = TrainedModel(network, targets, 1.0, {"trained_on": "images"}) \
        .with_postprocessing({t: dict(IMAGE_MODEL_SMOOTHING) for t in targets}) \
        .save(tmp_path / "model.pt")
    images = evaluate_model_file(model_path, tiny_store(tmp_path / "images", kind="images"),
                                 "test", progress=False)
    assert images.postprocessed_scores is None and images.postprocessing is None
    # the control: the same recordings in a store of videos get the model's chain
    videos = evaluate_model_file(model_path, tiny_store(tmp_path / "videos"), "test",
                                 progress=False)
    assert videos.postprocessed_scores is not None
    assert videos.postprocessing["valence"].median_window == 5
    assert images.scores == videos.scores


def test_evaluate_applies_a_fitted_chain_to_images_without_its_median(tmp_path):
    torch.manual_seed(0)
    network = create_model("frame2d", crop_size=16, clip_length=1, channels=[4, 8],
                           fc_hidden=8)
    targets = ("valence", "arousal")
    fitted = {"median_window": 5, "centre_offset": 0.1, "scale_factor": 2.0,
              "scale_reference": 0.05, "devel_ccc_raw": 0.3, "devel_ccc": 0.4}
    model_path = TrainedModel(network, targets, 1.0, {"trained_on": "images"}) \
        .with_postprocessing({t: dict(fitted) for t in targets}).save(tmp_path / "model.pt")
    images = evaluate_model_file(model_path, tiny_store(tmp_path / "images", kind="images"),
                                 "test", progress=False)
    assert images.postprocessing["valence"].median_window == 1
    for raw, processed in zip(images.recordings, images.postprocessed, strict=True):
        # each image on its own: centred, then scaled about the reference, not smoothed
        expected = 0.05 + (raw.prediction + 0.1 - 0.05) * 2.0
        np.testing.assert_allclose(processed, expected, rtol=1e-6, atol=1e-7)
    # on a store of videos the same file's chain smooths first
    videos = evaluate_model_file(model_path, tiny_store(tmp_path / "videos"), "test",
                                 progress=False)
    assert videos.postprocessing["valence"].median_window == 5
    assert not np.allclose(videos.postprocessed[0], images.postprocessed[0])
