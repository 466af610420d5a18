"""Face detection, 68-point landmarks and alignment (the papers' preprocessing).

* **Detection**: a detector of :mod:`avstan.data.detectors` (YuNet by default, dlib's
  HOG detector as an option), run on a copy of the frame reduced by an integer factor to
  about ``detect_width`` pixels (detection cost grows with the pixel count), then the box
  is scaled back. Boxes are in the convention dlib's shape model was trained on.
* **Tracking**: when several faces are found, the one whose centre is nearest to the
  previous step's face is followed (the largest on the first step, or after a step with no
  face), so the crop does not jump between people. While a face is followed, the search
  runs first in a region around its last box (``roi_growth`` times its size, resized so the
  face is about ``roi_face_width`` pixels wide; both per detector); only when nothing is
  found there is the whole frame searched again.
* **Landmarks**: dlib's 68-point shape predictor at full resolution, on the scaled-back
  box. Both models come from the ``face-recognition-models`` package (nothing is
  downloaded at run time).
* **Following the landmarks** (``redetect_every`` = k > 1): the face search costs several
  times the landmark fit, so between searches the 68 points are fitted directly in a box
  predicted from the previous step's points (placed relative to them as the last detector
  box was). The search runs again on every k-th step, on any step after one without a
  face, and whenever the fit looks wrong (:func:`plausible_follow`: the points' spread
  changed by more than a quarter, their centre jumped by more than half the spread, or
  they run out of the frame; or :func:`crop_similarity`: the new crop does not look like
  the previous step's, as after a cut or an occlusion). Once the face is gone (a search
  finds none), it is therefore reported missing at most k - 1 steps late; k = 1 searches
  every step, exactly as without following.
* **Alignment**: a similarity transform (rotation, uniform scale, translation) that maps
  the two eye centres (means of landmarks 36–41 and 42–47) and the nose tip (landmark 30)
  onto fixed template positions by least squares, then an S×S RGB crop with bilinear
  sampling. The template is in units of S, so one template serves every crop size; it is
  stored with each recording.
* **The detector's own points** (YuNet gives the eye centres and nose tip): on a search
  step the 68-point fit is checked against them (:func:`anchor_disagreement`, RMS in units
  of the eye distance); when they disagree by more than ``MAX_ANCHOR_DISAGREEMENT`` the fit
  is implausible (a turned or half-hidden face the shape model failed on) and the crop is
  aligned from the detector's points instead (``AlignedFace.anchors == "detector"``), and
  the next step searches again rather than follow the failed fit.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from avstan.data.detectors import DEFAULT_DETECTOR, SEARCH_SETTINGS, Detection, make_detector
from avstan.errors import AvstanError

# (x, y) in units of the crop size: left eye centre, right eye centre, nose tip.
# Leaves room above the brows and below the mouth for a 68-landmark face.
DEFAULT_TEMPLATE = ((0.34, 0.36), (0.66, 0.36), (0.50, 0.56))
# prepare's default: search for the face every 4th step (once a second at 4 steps/s) and
# follow its landmarks in between.
DEFAULT_REDETECT_EVERY = 4
# The search near the last face (per detector, in detectors.SEARCH_SETTINGS): for HOG a
# region 1.5 times the face's box, resized so the face is about 100 px wide (HOG finds
# faces down to ~80 px; a little above keeps it reliable). On the real test clips: 1.5 and
# 100 px find the face in the same steps as 2 and an integer reduction to >= 90 px did, at
# 0.6 of the cost.
# The 68-point fit is refused for the detector's points when their anchors differ by more
# than this many eye distances (RMS). On the hand-labelled faces of faces-wild a fit from
# the labelled box differs from YuNet's points by 0.13 (median), 0.37 at most.
MAX_ANCHOR_DISAGREEMENT = 0.5
# A followed fit is refused (and the face searched for) when, against the previous step's
# points, their spread changes by more than this factor, their centre moves more than
# this many spreads, or more than this fraction of the points lies outside the frame.
# Consecutive steps at 4 steps/s of the real test clips stay within 0.95-1.07 and 0.32.
FOLLOW_MAX_SCALE_CHANGE = 1.25
FOLLOW_MAX_SHIFT = 0.5
FOLLOW_MAX_OUTSIDE = 0.1
# ... or when its crop correlates less than this with the previous step's crop
# (consecutive faces of the real clips: >= 0.78; a cut from a face to the sky: -0.09).
FOLLOW_MIN_SIMILARITY = 0.5
THUMBNAIL_SIZE = 24
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


def anchor_disagreement(landmarks: np.ndarray, points: np.ndarray) -> float:
    """RMS distance between the anchors of 68 ``landmarks`` and a detector's five
    ``points`` (5, 2) (eye centres and nose tip, the first three), in units of the
    distance between the detector's eye centres."""
    eyes = float(np.linalg.norm(points[1] - points[0]))
    if eyes <= 0:
        return float("inf")
    difference = anchor_points(landmarks) - points[:3]
    return float(np.sqrt(np.mean(np.sum(difference ** 2, axis=1)))) / eyes


def landmark_frame(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre (2,) and spread (RMS distance from the centre) of landmarks (68, 2)."""
    centre = landmarks.mean(0)
    return centre, float(np.sqrt(np.mean(np.sum((landmarks - centre) ** 2, axis=1))))


def box_in_landmark_units(box: tuple[float, float, float, float], landmarks: np.ndarray
                          ) -> np.ndarray:
    """Where a detector ``box`` lies relative to the landmarks fitted in it: (4,) = centre
    offset (x, y) and size (width, height), in units of the landmarks' spread."""
    centre, spread = landmark_frame(landmarks)
    left, top, right, bottom = box
    return np.array([(left + right) / 2 - centre[0], (top + bottom) / 2 - centre[1],
                     right - left, bottom - top]) / spread


def box_from_landmarks(landmarks: np.ndarray, placement: np.ndarray
                       ) -> tuple[float, float, float, float]:
    """The box (left, top, right, bottom) placed relative to ``landmarks`` (68, 2) as
    ``placement`` (from :func:`box_in_landmark_units`) says: the inverse of that function."""
    centre, spread = landmark_frame(landmarks)
    x, y = centre + placement[:2] * spread
    half_width, half_height = placement[2:] * spread / 2
    return (float(x - half_width), float(y - half_height), float(x + half_width),
            float(y + half_height))


def plausible_follow(landmarks: np.ndarray, previous: np.ndarray,
                     image_size: tuple[int, int]) -> bool:
    """Whether a fit in a predicted box (``landmarks`` (68, 2)) can be kept without a face
    search: against the ``previous`` step's points its spread and centre changed little,
    and it lies in the frame of ``image_size`` (height, width). See the FOLLOW_* limits."""
    centre, spread = landmark_frame(landmarks)
    previous_centre, previous_spread = landmark_frame(previous)
    if previous_spread <= 0 or not (1 / FOLLOW_MAX_SCALE_CHANGE
                                    <= spread / previous_spread <= FOLLOW_MAX_SCALE_CHANGE):
        return False
    if np.linalg.norm(centre - previous_centre) > FOLLOW_MAX_SHIFT * previous_spread:
        return False
    height, width = image_size
    outside = ((landmarks[:, 0] < 0) | (landmarks[:, 0] > width - 1)
               | (landmarks[:, 1] < 0) | (landmarks[:, 1] > height - 1))
    return bool(outside.mean() <= FOLLOW_MAX_OUTSIDE)


def thumbnail(crop: np.ndarray) -> np.ndarray:
    """A crop (S, S, 3) as a small grey image (THUMBNAIL_SIZE²,) with zero mean and unit
    norm, for :func:`crop_similarity`."""
    grey = np.asarray(Image.fromarray(crop).convert("L").resize(
        (THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.BOX), np.float64).ravel()
    grey -= grey.mean()
    norm = np.linalg.norm(grey)
    return grey / norm if norm > 0 else grey


def crop_similarity(thumbnail_a: np.ndarray, thumbnail_b: np.ndarray) -> float:
    """Normalised correlation of two :func:`thumbnail` s, in [-1, 1] (0 for a flat one)."""
    return float(thumbnail_a @ thumbnail_b)


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
    # Only the part of the frame that the crop samples goes to PIL (handing it a whole frame
    # cost more than the warp itself): the crop square's corners mapped back, plus 2 pixels
    # for the bilinear neighbours. Shifting by whole pixels leaves every sample as it was.
    corners = apply_transform(inverse, np.array([[0.0, 0], [size, 0], [0, size], [size, size]]))
    height, width = image.shape[:2]
    x0, y0 = np.clip(np.floor(corners.min(0)).astype(int) - 2, 0, [width, height])
    x1, y1 = np.clip(np.ceil(corners.max(0)).astype(int) + 3, 0, [width, height])
    if x1 <= x0 or y1 <= y0:  # the crop lies wholly outside the frame
        return np.zeros((size, size, 3), np.uint8)
    shifted = inverse - [[0, 0, x0], [0, 0, y0]]
    # PIL samples the input at inverse(x + 0.5, y + 0.5) - 0.5 for output pixel centres;
    # our coordinates put pixel centres at integers, as dlib's landmarks do.
    crop = Image.fromarray(image[y0:y1, x0:x1]).transform(
        (size, size), Image.Transform.AFFINE, data=tuple(shifted.ravel()),
        resample=Image.Resampling.BILINEAR)
    return np.asarray(crop)


@dataclass
class AlignedFace:
    crop: np.ndarray  # (S, S, 3) uint8
    landmarks: np.ndarray  # (68, 2) float32, in crop pixels
    box: tuple[float, float, float, float]  # (left, top, right, bottom) in the frame
    matrix: np.ndarray | None = None  # (2, 3) frame pixels (x, y, 1) → crop pixels
    followed: bool = False  # fitted in a box predicted from the previous step, no search
    # what the crop was aligned from: "landmarks" (the 68-point fit), "detector" (its five
    # points, the fit being implausible) or "corpus" (the corpus's own landmarks)
    anchors: str = "landmarks"


class FaceAligner:
    """Detect, track, fit landmarks and align faces, step after step of one recording."""

    def __init__(self, crop_size: int = 96, template=DEFAULT_TEMPLATE,
                 detect_width: int | None = None, upsample: int = 0,
                 search_near_previous: bool = True, redetect_every: int = 1,
                 detector: str = DEFAULT_DETECTOR) -> None:
        import dlib

        if redetect_every < 1:
            raise ValueError(f"redetect_every must be at least 1, got {redetect_every}")

        self.detector = make_detector(detector, upsample)
        settings = SEARCH_SETTINGS[detector]
        self.roi_growth = settings["roi_growth"]
        self.roi_face_width = settings["roi_face_width"]
        self.predictor = dlib.shape_predictor(
            str(model_file("shape_predictor_68_face_landmarks.dat")))
        self._dlib = dlib
        self.crop_size = crop_size
        self.template = np.asarray(template, dtype=np.float64)
        self.detect_width = detect_width or settings["detect_width"]
        self.upsample = upsample
        self.search_near_previous = search_near_previous
        self.redetect_every = redetect_every
        self.previous_centre: np.ndarray | None = None
        self.previous_box: tuple[float, float, float, float] | None = None
        self.previous_landmarks: np.ndarray | None = None  # (68, 2) frame pixels
        self.box_placement: np.ndarray | None = None  # last detector box, landmark units
        self.previous_thumbnail: np.ndarray | None = None
        self.steps_since_search = 0
        self.prefer = "largest"

    @property
    def detector_name(self) -> str:
        return self.detector.name

    def reset(self, prefer: str = "largest") -> None:
        """Forget the tracked face (call between recordings). ``prefer`` picks the face to
        start from when there is none to follow: "largest", or "left"/"right" for corpora
        that annotate one of two people per video (Aff-Wild2's ``_left``/``_right`` files)."""
        if prefer not in ("largest", "left", "right"):
            raise ValueError(f"prefer must be largest, left or right, got {prefer!r}")
        self.previous_centre = None
        self.previous_box = None
        self.previous_landmarks = None
        self.box_placement = None
        self.previous_thumbnail = None
        self.steps_since_search = 0
        self.prefer = prefer

    def candidates(self, image: np.ndarray, factor: int | None = None,
                   offset: tuple[int, int] = (0, 0)) -> list[tuple[float, float, float, float]]:
        """Every face box (left, top, right, bottom) in full-resolution pixels of the frame
        ``image`` was cut from at ``offset`` (x, y); searched on a copy reduced by
        ``factor`` (default: to about ``detect_width`` pixels wide)."""
        return [d.box for d in self.detections(image, factor, offset)]

    def detections(self, image: np.ndarray, factor: int | None = None,
                   offset: tuple[int, int] = (0, 0)) -> list[Detection]:
        """As :meth:`candidates`, with each detection's score and points."""
        width = image.shape[1]
        factor = factor or max(1, round(width / self.detect_width))
        # An integer box-filter reduction: several times cheaper than a resize.
        small = image if factor == 1 else np.asarray(Image.fromarray(image).reduce(factor))
        return self._search(image, small, offset)

    def _search(self, image: np.ndarray, small: np.ndarray, offset: tuple[int, int]
                ) -> list[Detection]:
        """Detections in ``small`` (a reduced copy of ``image``), in the pixels of the
        frame ``image`` was cut from at ``offset``."""
        scale_x = image.shape[1] / small.shape[1]
        scale_y = image.shape[0] / small.shape[0]
        return [d.scaled(scale_x, scale_y, offset) for d in self.detector(small)]

    def candidates_near(self, image: np.ndarray, box: tuple[float, float, float, float]
                        ) -> list[tuple[float, float, float, float]]:
        """Face boxes in the region around ``box`` (``roi_growth`` times its size), searched
        on a copy resized so that the face is about ``roi_face_width`` pixels wide (never
        enlarged)."""
        return [d.box for d in self.detections_near(image, box)]

    def detections_near(self, image: np.ndarray, box: tuple[float, float, float, float]
                        ) -> list[Detection]:
        """As :meth:`candidates_near`, with each detection's score and points."""
        left, top, right, bottom = box
        width, height = right - left, bottom - top
        margin_x = width * (self.roi_growth - 1) / 2
        margin_y = height * (self.roi_growth - 1) / 2
        x0, y0 = max(0, int(left - margin_x)), max(0, int(top - margin_y))
        x1 = min(image.shape[1], int(right + margin_x))
        y1 = min(image.shape[0], int(bottom + margin_y))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return []
        region = np.ascontiguousarray(image[y0:y1, x0:x1])
        scale = self.roi_face_width / width
        if scale >= 1:
            return self._search(region, region, (x0, y0))
        size = (max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale)))
        small = np.asarray(Image.fromarray(region).resize(size, Image.Resampling.BILINEAR))
        return self._search(region, small, (x0, y0))

    def choose(self, boxes: list[tuple[float, float, float, float]]
               ) -> tuple[float, float, float, float] | None:
        """Tracking: the box nearest the previous face, or the largest without one."""
        index = self.choose_index(boxes)
        return None if index is None else boxes[index]

    def choose_index(self, boxes: list[tuple[float, float, float, float]]) -> int | None:
        """Index of the box :meth:`choose` picks; None when there is none."""
        if not boxes:
            return None
        centres = np.array([((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in boxes])
        if self.previous_centre is None and self.prefer == "left":
            return int(np.argmin(centres[:, 0]))
        if self.previous_centre is None and self.prefer == "right":
            return int(np.argmax(centres[:, 0]))
        if self.previous_centre is None:
            return int(np.argmax([(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]))
        return int(np.argmin(np.linalg.norm(centres - self.previous_centre, axis=1)))

    def detect(self, image: np.ndarray) -> tuple[float, float, float, float] | None:
        """The tracked face's box in full-resolution pixels, or None."""
        return self.choose(self.candidates(image))

    def find(self, image: np.ndarray) -> Detection | None:
        """The tracked face's detection: near the last face first, then the whole frame."""
        nearby = (self.detections_near(image, self.previous_box)
                  if self.search_near_previous and self.previous_box is not None else [])
        found = nearby or self.detections(image)
        index = self.choose_index([d.box for d in found])
        return None if index is None else found[index]

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

    def follow(self, image: np.ndarray) -> AlignedFace | None:
        """Fit the landmarks in the box predicted from the previous step's points, without a
        face search; None when a search is due (every ``redetect_every``-th step, or no face
        to follow) or the fit looks wrong."""
        if (self.redetect_every == 1 or self.previous_landmarks is None
                or self.box_placement is None
                or self.steps_since_search + 1 >= self.redetect_every):
            return None
        box = box_from_landmarks(self.previous_landmarks, self.box_placement)
        points = self.landmarks(image, box)
        if not plausible_follow(points, self.previous_landmarks, image.shape[:2]):
            return None
        matrix = self.alignment_matrix(points)
        crop = warp_crop(image, matrix, self.crop_size)
        small = thumbnail(crop)
        if crop_similarity(small, self.previous_thumbnail) < FOLLOW_MIN_SIMILARITY:
            return None
        self.steps_since_search += 1
        self.previous_thumbnail = small
        return self._remember(box, points, crop, matrix, followed=True)

    def __call__(self, image: np.ndarray) -> AlignedFace | None:
        """Detect (or follow), fit and align the face of one frame; None when there is none."""
        image = np.ascontiguousarray(image)
        followed = self.follow(image)
        if followed is not None:
            return followed
        detection = self.find(image)
        if detection is None:
            self.previous_centre = self.previous_box = self.previous_landmarks = None
            return None
        box = detection.box
        points, matrix, anchors = self.fit_detection(image, detection)
        crop = warp_crop(image, matrix, self.crop_size)
        if self.redetect_every > 1:  # what the next steps follow from
            # a failed fit is not followed: the next step searches again
            self.box_placement = (box_in_landmark_units(box, points) if anchors == "landmarks"
                                  else None)
            self.previous_thumbnail = thumbnail(crop)
            self.steps_since_search = 0
        return self._remember(box, points, crop, matrix, anchors=anchors)

    def fit_detection(self, image: np.ndarray, detection: Detection
                      ) -> tuple[np.ndarray, np.ndarray, str]:
        """The 68 points (68, 2) fitted in a detection's box, the alignment matrix (2, 3)
        and what it aligns from: the fit ("landmarks"), or the detector's own points
        ("detector") when the fit strays from them by more than MAX_ANCHOR_DISAGREEMENT."""
        points = self.landmarks(image, detection.box)
        if (detection.points is not None
                and anchor_disagreement(points, detection.points) > MAX_ANCHOR_DISAGREEMENT):
            return points, similarity_transform(detection.points[:3],
                                                self.template * (self.crop_size - 1)), "detector"
        return points, self.alignment_matrix(points), "landmarks"

    def align_given(self, image: np.ndarray, landmarks: np.ndarray) -> AlignedFace:
        """Align from landmarks given for this frame (a corpus's own, (68, 2) frame pixels)
        instead of detecting: ``anchors == "corpus"``. The face is remembered for tracking;
        a following step without given landmarks searches for the face near it."""
        image = np.ascontiguousarray(image)
        points = np.asarray(landmarks, dtype=np.float64)
        matrix = self.alignment_matrix(points)
        crop = warp_crop(image, matrix, self.crop_size)
        left, top = points.min(0)
        right, bottom = points.max(0)
        self.box_placement = None  # nothing to follow from: the next step searches
        self.steps_since_search = 0
        return self._remember((float(left), float(top), float(right), float(bottom)), points,
                              crop, matrix, anchors="corpus")

    def _remember(self, box: tuple[float, float, float, float], points: np.ndarray,
                  crop: np.ndarray, matrix: np.ndarray, followed: bool = False,
                  anchors: str = "landmarks") -> AlignedFace:
        """Keep this step's face for the next step; the AlignedFace."""
        self.previous_box = box
        self.previous_centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        self.previous_landmarks = points
        crop_points = apply_transform(matrix, points)
        return AlignedFace(crop, crop_points.astype(np.float32), box, matrix, followed, anchors)
