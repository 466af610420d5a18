"""Every person in a video: face tracks with a stable identity, one recording per person.

``prepare`` and the default ``predict`` follow one face (the largest, then the nearest);
``predict --all-faces`` uses :func:`prepare_people` instead:

* **Detection** on every step, on the whole frame (the aligner's detector, reduced copy).
* **Identity**: each face gets dlib's 128-d face descriptor (``dlib_face_recognition_
  resnet_model_v1.dat`` from ``face-recognition-models``, computed from the 68-point fit).
  A face joins the track whose descriptor (the mean of the track's last
  ``DESCRIPTOR_MEMORY`` faces) is nearest, if nearer than ``SAME_PERSON_DISTANCE`` (dlib's
  own threshold for "same person", 0.6); a track seen on the previous step is preferred by
  its box overlap (``distance - OVERLAP_BONUS · IoU``), so a face that moves is kept and a
  person who leaves and comes back (or reappears after a cut) gets their identity back. A
  face near no track starts a new person. Two faces of one step never join the same track.
* **Alignment** per face as ``FaceAligner`` aligns (``FaceAligner.fit_detection``: the
  68-point fit from the detector's box, the detector's five points when the fit is
  implausible).
* **People**: tracks seen on fewer than ``MIN_PERSON_STEPS`` steps are dropped (a passing
  false detection); the rest are numbered 1, 2, … in order of first appearance (left to
  right on the same step). Each becomes a :class:`Person`: a Recording (steps where the
  person is not seen are ``face_found`` False, holding the nearest crop, as prepare does)
  and the person's box per step (NaN where absent) for the overlay.
* **Memory**: with a ``spool_folder`` every crop goes to one ``data.spool.RowSpool`` there
  as it is made, and each person's frames read it (``RemappedRows``), so a long video
  costs only its per-step arrays (landmarks, matrices, boxes) in memory. The people then
  share that one file: ``close_frames()`` on any of them closes it, so call it when all
  are done.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avstan.data.detectors import Detection
from avstan.data.faces import FaceAligner, apply_transform, model_file, warp_crop
from avstan.data.spool import RowSpool, nearest_found
from avstan.data.store import ANCHOR_CODES, Recording
from avstan.data.video import SampledFrame
from avstan.errors import AvstanError

SAME_PERSON_DISTANCE = 0.6  # dlib: descriptors nearer than this are one person
OVERLAP_BONUS = 0.3  # a track seen on the previous step wins by its box overlap
DESCRIPTOR_MEMORY = 8  # a track's descriptor: the mean of its last this many faces
MIN_PERSON_STEPS = 3  # tracks seen on fewer steps are dropped


@dataclass
class Person:
    number: int  # 1, 2, … in order of first appearance
    recording: Recording
    boxes: np.ndarray  # (N, 4) left, top, right, bottom in frame pixels; NaN where absent


@dataclass
class _Track:
    # the last DESCRIPTOR_MEMORY faces' descriptors (older ones are never read again)
    descriptors: deque = field(default_factory=lambda: deque(maxlen=DESCRIPTOR_MEMORY))
    last_box: tuple[float, float, float, float] | None = None
    last_step: int = -10
    # step → (crop or its spool row, points, box, matrix, anchors code)
    faces: dict[int, tuple] = field(default_factory=dict)

    def descriptor(self) -> np.ndarray:
        return np.mean(self.descriptors, axis=0)


def box_iou(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height
    return width * height / union if union > 0 else 0.0


class FaceDescriber:
    """dlib's 128-d face descriptor of a face given its 68-point fit."""

    def __init__(self) -> None:
        import dlib

        self._dlib = dlib
        self._model = dlib.face_recognition_model_v1(
            str(model_file("dlib_face_recognition_resnet_model_v1.dat")))

    def __call__(self, image: np.ndarray, box, points: np.ndarray) -> np.ndarray:
        rect = self._dlib.rectangle(*(int(round(v)) for v in box))
        parts = [self._dlib.point(int(round(x)), int(round(y))) for x, y in points]
        shape = self._dlib.full_object_detection(rect, parts)
        return np.asarray(self._model.compute_face_descriptor(image, shape), np.float64)


def assign(descriptors: list[np.ndarray], boxes: list, tracks: list[_Track], step: int
           ) -> list[int | None]:
    """For each face of one step, the index of the track it joins (None: a new person):
    greedy on ``distance - OVERLAP_BONUS · IoU`` (IoU only against tracks seen on the
    previous step), pairs at ``SAME_PERSON_DISTANCE`` or farther never joined."""
    pairs = []
    for face, (descriptor, box) in enumerate(zip(descriptors, boxes, strict=True)):
        for index, track in enumerate(tracks):
            distance = float(np.linalg.norm(descriptor - track.descriptor()))
            if distance >= SAME_PERSON_DISTANCE:
                continue
            overlap = box_iou(box, track.last_box) if track.last_step == step - 1 else 0.0
            pairs.append((distance - OVERLAP_BONUS * overlap, face, index))
    chosen: list[int | None] = [None] * len(descriptors)
    taken = set()
    for _, face, index in sorted(pairs):
        if chosen[face] is None and index not in taken:
            chosen[face] = index
            taken.add(index)
    return chosen


def _align(aligner: FaceAligner, image: np.ndarray, detection: Detection):
    """(crop, landmarks in crop pixels, frame landmarks, matrix, anchors code) of a face."""
    points, matrix, anchors = aligner.fit_detection(image, detection)
    crop = warp_crop(image, matrix, aligner.crop_size)
    crop_points = apply_transform(matrix, points)
    return crop, crop_points.astype(np.float32), points, matrix, ANCHOR_CODES[anchors]


def prepare_people(samples: Iterable[SampledFrame], aligner: FaceAligner, name: str,
                   step_rate: float, where: str = "", describer: FaceDescriber | None = None,
                   spool_folder: Path | None = None) -> list[Person]:
    """One :class:`Person` per person seen (module docstring); AvstanError when nobody is.
    With ``spool_folder`` the crops stay on disk there (module docstring, "Memory")."""
    describer = describer or FaceDescriber()
    crop_shape = (aligner.crop_size, aligner.crop_size, 3)
    spool = None if spool_folder is None else RowSpool(crop_shape, np.uint8, spool_folder)
    try:
        return _follow_people(samples, aligner, name, step_rate, where, describer, spool)
    except BaseException:
        if spool is not None:
            spool.close()
        raise


def _follow_people(samples, aligner, name, step_rate, where, describer, spool
                   ) -> list[Person]:
    """:func:`prepare_people` with its spool (or None: the crops held in memory)."""
    tracks: list[_Track] = []
    ticks, frame_times = [], []
    for step, sample in enumerate(samples):
        ticks.append(sample.tick)
        frame_times.append(sample.time)
        image = np.ascontiguousarray(sample.image)
        detections = aligner.detections(image)
        aligned = [_align(aligner, image, d) for d in detections]
        descriptors = [describer(image, d.box, a[2]) for d, a in zip(detections, aligned,
                                                                      strict=True)]
        joined = assign(descriptors, [d.box for d in detections], tracks, step)
        for detection, face, descriptor, index in zip(detections, aligned, descriptors,
                                                      joined, strict=True):
            if index is None:
                tracks.append(_Track())
                index = len(tracks) - 1
            track = tracks[index]
            track.descriptors.append(descriptor)
            track.last_box, track.last_step = detection.box, step
            crop = face[0]
            if spool is not None:
                spool.append(crop)
                crop = len(spool) - 1
            track.faces[step] = (crop, face[1], detection.box, face[3], face[4])
    steps = len(ticks)
    kept = [t for t in tracks if len(t.faces) >= MIN_PERSON_STEPS]
    if not kept:
        raise AvstanError(f"{where or name}: no face found on {MIN_PERSON_STEPS} or more of its "
                          f"{steps} steps; check that the video shows a face")
    kept.sort(key=lambda t: (min(t.faces), t.faces[min(t.faces)][2][0]))
    people = []
    times = np.asarray(ticks, np.float64)
    for number, track in enumerate(kept, start=1):
        present = sorted(track.faces)
        found = np.zeros(steps, bool)
        found[present] = True
        nearest = nearest_found(found)
        landmarks = np.full((steps, 68, 2), np.nan, np.float32)
        matrices = np.full((steps, 2, 3), np.nan, np.float32)
        boxes = np.full((steps, 4), np.nan, np.float64)
        aligned_from = np.zeros(steps, np.uint8)
        for step in present:
            crop, points, box, matrix, code = track.faces[step]
            landmarks[step], matrices[step], boxes[step] = points, matrix, box
            aligned_from[step] = code
        if spool is None:
            frames = np.stack([track.faces[int(s)][0] for s in nearest])
        else:
            rows = np.zeros(steps, np.int64)
            rows[present] = [track.faces[step][0] for step in present]
            frames = spool.remapped(rows[nearest])
        recording = Recording(
            name=f"{name}.person{number}", frames=frames, times=times, face_found=found,
            labels=np.full((steps, 2), np.nan, np.float32), step_rate=step_rate,
            partition="test", source=where, landmarks=landmarks,
            frame_times=np.asarray(frame_times), alignment_matrices=matrices,
            alignment_template=[list(p) for p in aligner.template.tolist()],
            aligned_from=aligned_from, face_detector=aligner.detector_name)
        people.append(Person(number, recording, boxes))
    return people
