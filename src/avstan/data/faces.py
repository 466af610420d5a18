"""Face detection, 68-point landmarks and alignment (the papers' preprocessing).

* **Detection**: dlib's frontal HOG detector, run on a copy of the frame reduced by an
  integer factor to about ``detect_width`` pixels (detection cost grows with the pixel
  count; faces in face-to-camera corpora are large), then the box is scaled back.
* **Tracking**: when several faces are found, the one whose centre is nearest to the
  previous step's face is followed (the largest on the first step, or after a step with no
  face), so the crop does not jump between people. While a face is followed, the search
  runs first in a region around its last box (twice its size, reduced so the face is about
  ``ROI_FACE_WIDTH`` pixels wide); only when nothing is found there is the whole frame
  searched again.
* **Landmarks**: dlib's 68-point shape predictor at full resolution, on the scaled-back
  box. Both models come from the ``face-recognition-models`` package (nothing is
  downloaded at run time).
* **Alignment**: a similarity transform (rotation, uniform scale, translation) that maps
  the two eye centres (means of landmarks 36–41 and 42–47) and the nose tip (landmark 30)
  onto fixed template positions by least squares, then an S×S RGB crop with bilinear
  sampling. The template is in units of S, so one template serves every crop size; it is
  stored with each recording.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from avstan.errors import AvstanError

# (x, y) in units of the crop size: left eye centre, right eye centre, nose tip.
# Leaves room above the brows and below the mouth for a 68-landmark face.
DEFAULT_TEMPLATE = ((0.34, 0.36), (0.66, 0.36), (0.50, 0.56))
ROI_FACE_WIDTH = 90  # HOG finds faces down to ~80 px; a little above keeps it reliable
LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)
NOSE_TIP = 30


def model_file(name: str) -> Path:
    """Path of a dlib model shipped by the ``face-recognition-models`` package.

    Located with importlib rather than imported: importing that package needs
    ``pkg_resources``, which recent setuptools no longer ship.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise AvstanError("the face-recognition-models package is missing; "
                          "install avstan's dependencies (pip install -e .)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise AvstanError(f"{path}: dlib model missing from face-recognition-models; "
                          "reinstall that package")
    return path


def anchor_points(landmarks: np.ndarray) -> np.ndarray:
    """Left eye centre, right eye centre and nose tip (3, 2) from 68 landmarks (68, 2)."""
    return np.stack([landmarks[LEFT_EYE].mean(0), landmarks[RIGHT_EYE].mean(0),
                     landmarks[NOSE_TIP]])


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares similarity (2, 3) mapping points ``source`` (K, 2) onto ``target``.

    In complex numbers z = x + iy the map is z ↦ a·z + b, with a = s·e^{iθ}; least squares
    gives a = Σ (t - t̄)·conj(s - s̄) / Σ |s - s̄|², b = t̄ - a·s̄.
    """
    s = source[:, 0] + 1j * source[:, 1]
    t = target[:, 0] + 1j * target[:, 1]
    s_mean, t_mean = s.mean(), t.mean()
    denominator = np.sum(np.abs(s - s_mean) ** 2)
    if denominator == 0:
        raise ValueError("degenerate landmarks: all anchor points coincide")
    a = np.sum((t - t_mean) * np.conj(s - s_mean)) / denominator
    b = t_mean - a * s_mean
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to points (K, 2)."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp_crop(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The (size, size, 3) uint8 crop of ``image`` under ``matrix`` (image → crop coordinates),
    bilinear; outside the image is black."""
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    # PIL samples the input at inverse(x + 0.5, y + 0.5) - 0.5 for output pixel centres;
    # our coordinates put pixel centres at integers, as dlib's landmarks do.
    crop = Image.fromarray(image).transform(
        (size, size), Image.Transform.AFFINE, data=tuple(inverse.ravel()),
        resample=Image.Resampling.BILINEAR)
    return np.asarray(crop)


@dataclass
class AlignedFace:
    crop: np.ndarray  # (S, S, 3) uint8
    landmarks: np.ndarray  # (68, 2) float32, in crop pixels
    box: tuple[float, float, float, float]  # (left, top, right, bottom) in the frame
    matrix: np.ndarray | None = None  # (2, 3) frame pixels (x, y, 1) → crop pixels


class FaceAligner:
    """Detect, track, fit landmarks and align faces, step after step of one recording."""

    def __init__(self, crop_size: int = 96, template=DEFAULT_TEMPLATE, detect_width: int = 320,
                 upsample: int = 0, search_near_previous: bool = True) -> None:
        import dlib

        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(
            str(model_file("shape_predictor_68_face_landmarks.dat")))
        self._dlib = dlib
        self.crop_size = crop_size
        self.template = np.asarray(template, dtype=np.float64)
        self.detect_width = detect_width
        self.upsample = upsample
        self.search_near_previous = search_near_previous
        self.previous_centre: np.ndarray | None = None
        self.previous_box: tuple[float, float, float, float] | None = None
        self.prefer = "largest"

    def reset(self, prefer: str = "largest") -> None:
        """Forget the tracked face (call between recordings). ``prefer`` picks the face to
        start from when there is none to follow: "largest", or "left"/"right" for corpora
        that annotate one of two people per video (Aff-Wild2's ``_left``/``_right`` files)."""
        if prefer not in ("largest", "left", "right"):
            raise ValueError(f"prefer must be largest, left or right, got {prefer!r}")
        self.previous_centre = None
        self.previous_box = None
        self.prefer = prefer

    def candidates(self, image: np.ndarray, factor: int | None = None,
                   offset: tuple[int, int] = (0, 0)) -> list[tuple[float, float, float, float]]:
        """Every face box (left, top, right, bottom) in full-resolution pixels of the frame
        ``image`` was cut from at ``offset`` (x, y); searched on a copy reduced by
        ``factor`` (default: to about ``detect_width`` pixels wide)."""
        width = image.shape[1]
        factor = factor or max(1, round(width / self.detect_width))
        # An integer box-filter reduction: several times cheaper than a resize.
        small = image if factor == 1 else np.asarray(Image.fromarray(image).reduce(factor))
        scale_x = width / small.shape[1]
        scale_y = image.shape[0] / small.shape[0]
        x0, y0 = offset
        return [(x0 + r.left() * scale_x, y0 + r.top() * scale_y, x0 + r.right() * scale_x,
                 y0 + r.bottom() * scale_y) for r in self.detector(small, self.upsample)]

    def candidates_near(self, image: np.ndarray, box: tuple[float, float, float, float]
                        ) -> list[tuple[float, float, float, float]]:
        """Face boxes in the region around ``box`` (twice its size), searched at the scale
        that makes the face about ROI_FACE_WIDTH pixels wide."""
        left, top, right, bottom = box
        width, height = right - left, bottom - top
        x0, y0 = max(0, int(left - width / 2)), max(0, int(top - height / 2))
        x1 = min(image.shape[1], int(right + width / 2))
        y1 = min(image.shape[0], int(bottom + height / 2))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return []
        factor = max(1, int(width // ROI_FACE_WIDTH))
        return self.candidates(np.ascontiguousarray(image[y0:y1, x0:x1]), factor, (x0, y0))

    def choose(self, boxes: list[tuple[float, float, float, float]]
               ) -> tuple[float, float, float, float] | None:
        """Tracking: the box nearest the previous face, or the largest without one."""
        if not boxes:
            return None
        centres = np.array([((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in boxes])
        if self.previous_centre is None and self.prefer == "left":
            chosen = int(np.argmin(centres[:, 0]))
        elif self.previous_centre is None and self.prefer == "right":
            chosen = int(np.argmax(centres[:, 0]))
        elif self.previous_centre is None:
            chosen = int(np.argmax([(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]))
        else:
            chosen = int(np.argmin(np.linalg.norm(centres - self.previous_centre, axis=1)))
        return boxes[chosen]

    def detect(self, image: np.ndarray) -> tuple[float, float, float, float] | None:
        """The tracked face's box in full-resolution pixels, or None."""
        return self.choose(self.candidates(image))

    def landmarks(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """68 landmarks (68, 2) float64 in full-resolution pixels."""
        rect = self._dlib.rectangle(*(int(round(v)) for v in box))
        shape = self.predictor(image, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def alignment_matrix(self, landmarks: np.ndarray) -> np.ndarray:
        """The similarity (2, 3) from frame pixels to crop pixels for 68 landmarks."""
        return similarity_transform(anchor_points(landmarks),
                                    self.template * (self.crop_size - 1))

    def align(self, image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Crop (S, S, 3) and the landmarks in crop pixels (68, 2)."""
        matrix = self.alignment_matrix(landmarks)
        return warp_crop(image, matrix, self.crop_size), apply_transform(matrix, landmarks)

    def __call__(self, image: np.ndarray) -> AlignedFace | None:
        """Detect, track, fit and align the face of one frame; None when there is none."""
        image = np.ascontiguousarray(image)
        nearby = (self.candidates_near(image, self.previous_box)
                  if self.search_near_previous and self.previous_box is not None else [])
        box = self.choose(nearby) if nearby else self.detect(image)
        if box is None:
            self.previous_centre = self.previous_box = None
            return None
        self.previous_box = box
        self.previous_centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        points = self.landmarks(image, box)
        matrix = self.alignment_matrix(points)
        crop = warp_crop(image, matrix, self.crop_size)
        crop_points = apply_transform(matrix, points)
        return AlignedFace(crop, crop_points.astype(np.float32), box, matrix)
