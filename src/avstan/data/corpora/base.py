"""What a corpus reader returns: recordings to prepare, and their labels at native rate.

A reader is one small module with one job: find the recordings of a corpus on disk (with
their partition) and read their labels. It knows nothing about faces, models or the store.
Everything here is picklable (paths, strings, module-level functions), so the preparation
can run recordings in a process pool.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avstan.errors import AvstanError

# MPEG transport streams (.ts, .mts, .m2ts) are what cameras, TV and screen recorders write
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv",
                  ".ts", ".mts", ".m2ts")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac")


@dataclass
class LabelTrack:
    """Labels at the corpus's own rate: ``times`` (M,) seconds, ``values`` (M, 2) valence
    and arousal in [-1, 1], NaN where a dimension is not annotated."""

    times: np.ndarray
    values: np.ndarray
    source: str  # the file(s) the labels came from, for messages

    def validate(self) -> None:
        """One AvstanError naming the file for anything that cannot be right."""
        times = np.asarray(self.times, dtype=np.float64)
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != 2 or times.shape != (values.shape[0],):
            raise AvstanError(f"{self.source}: labels must be one time and two values per "
                              f"row, got times {times.shape} and values {values.shape}")
        if len(times) == 0:
            raise AvstanError(f"{self.source}: no label rows; check the file")
        if not np.isfinite(times).all() or np.any(np.diff(times) <= 0):
            raise AvstanError(f"{self.source}: label times must be finite and increasing")
        infinite = np.argwhere(np.isinf(values))
        if infinite.size:
            raise AvstanError(f"{self.source}: label value {values[tuple(infinite[0])]:g} at "
                              f"time {times[infinite[0][0]]:g} s; a label is a number in "
                              "[-1, 1], or empty (NaN) where it is not known")
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            raise AvstanError(f"{self.source}: no valence or arousal value in the file")
        if finite.min() < -1.0 - 1e-6 or finite.max() > 1.0 + 1e-6:
            raise AvstanError(f"{self.source}: label values outside [-1, 1] "
                              f"(min {finite.min():.3g}, max {finite.max():.3g}); fix the "
                              "file or its scale")


@dataclass
class LandmarkTrack:
    """A corpus's own 68-point landmarks: ``times`` (K,) seconds of the frames that have
    them, ``points`` (K, 68, 2) in the frame's pixels (x, y)."""

    times: np.ndarray
    points: np.ndarray
    source: str

    def validate(self) -> None:
        times = np.asarray(self.times, dtype=np.float64)
        points = np.asarray(self.points, dtype=np.float64)
        if points.ndim != 3 or points.shape[1:] != (68, 2) or times.shape != (len(points),):
            raise AvstanError(f"{self.source}: landmarks must be 68 (x, y) points per frame, "
                              f"got {points.shape[1:] if points.ndim == 3 else points.shape}")
        if not np.isfinite(points).all() or not np.isfinite(times).all():
            raise AvstanError(f"{self.source}: landmarks must be finite numbers; fix the "
                              "file or prepare with --landmarks detect")

    def at(self, time: float, tolerance: float = 1e-3) -> np.ndarray | None:
        """The points (68, 2) of the frame at ``time`` (within ``tolerance`` s), or None."""
        if not len(self.times):
            return None
        index = int(np.argmin(np.abs(self.times - time)))
        return self.points[index] if abs(self.times[index] - time) <= tolerance else None


@dataclass
class RecordingSource:
    """One recording of a corpus, before preparation.

    Exactly one of ``media`` (a video or audio file) and ``frames_dir`` (a folder of
    numbered images, with ``frame_rate``) is set. ``read_labels`` is a module-level
    function of the reader, called with this object; None when the corpus has no labels
    for it (a test partition, a plain folder of videos).
    """

    name: str
    partition: str
    media: Path | None = None
    frames_dir: Path | None = None
    frame_rate: float | None = None
    read_labels: Callable[[RecordingSource], LabelTrack] | None = None
    extra: dict = field(default_factory=dict)  # reader-specific paths (label files, audio)
    # the corpus's own 68-point landmarks (AFEW-VA ships them), None when it has none
    read_landmarks: Callable[[RecordingSource], LandmarkTrack] | None = None

    def labels(self) -> LabelTrack | None:
        if self.read_labels is None:
            return None
        track = self.read_labels(self)
        track.validate()
        return track

    def corpus_landmarks(self) -> LandmarkTrack | None:
        """The corpus's landmarks for this recording (None when it ships none)."""
        if self.read_landmarks is None:
            return None
        track = self.read_landmarks(self)
        track.validate()
        return track


def resample_labels(track: LabelTrack, step_times: np.ndarray) -> np.ndarray:
    """Labels on the step timeline (N, 2) by linear interpolation of each dimension between
    its annotated samples; NaN before the first and after the last annotated sample (and
    across gaps, where a dimension is NaN on either side)."""
    step_times = np.asarray(step_times, dtype=np.float64)
    out = np.full((len(step_times), 2), np.nan, dtype=np.float32)
    for column in range(2):
        values = np.asarray(track.values[:, column], dtype=np.float64)
        known = np.isfinite(values)
        if not known.any():
            continue
        times = np.asarray(track.times, dtype=np.float64)
        interpolated = np.interp(step_times, times[known], values[known])
        inside = (step_times >= times[known][0]) & (step_times <= times[known][-1])
        # A step between two samples of which one is unknown stays unknown.
        right = np.clip(np.searchsorted(times, step_times, side="left"), 0, len(times) - 1)
        left = np.clip(right - 1, 0, len(times) - 1)
        exact = np.isclose(times[right], step_times)
        bracket_known = known[right] & (known[left] | exact)
        out[:, column] = np.where(inside & bracket_known, interpolated, np.nan)
    return out
