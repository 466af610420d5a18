"""AFEW-VA: a folder of numbered frames per clip with a JSON file of per-frame labels.

::

    001/00000.png, 001/00001.png, …       the clip's frames at 25 fps
    001/001.json                          {"frames": {"00000": {"valence": v, "arousal": a,
                                                                "landmarks": [[x, y], …]}, …}}
    split.csv                             optional: recording,partition

A clip is a folder (anywhere under the root) holding ``<folder name>.json`` and at least
one frame image; the JSON's per-frame ``landmarks`` (68 points in frame pixels) are the
corpus's own, which ``prepare`` aligns from by default (``--landmarks corpus``); the
recording name is the folder name. Values are on AFEW-VA's -10..10 scale and are divided
by 10; a frame without a value is NaN. Label times are
frame number / 25 (frame ``00000`` at 0 s). AFEW-VA has no official partitions: without
``split.csv`` every clip is train; with it, every clip must be listed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from avstan.data.corpora.base import LabelTrack, LandmarkTrack, RecordingSource
from avstan.data.corpora.common import (
    check_folder,
    finish,
    read_split,
    split_partition,
    walk_files,
    warn_unused_split_lines,
)
from avstan.errors import AvstanError

FRAME_RATE = 25.0
SCALE = 10.0  # AFEW-VA labels are integers in [-10, 10]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
DIMENSIONS = ("valence", "arousal")
EXPECTED = ("a folder per clip holding numbered frames (001/00000.png …) and its labels "
            "001/001.json, with an optional split.csv")


def _clip_files(root: Path) -> list[Path]:
    """The ``<clip>/<clip>.json`` files whose folder holds frame images."""
    return [path for path in walk_files(root, (".json",))
            if path.stem == path.parent.name and any(
                frame.suffix.lower() in IMAGE_SUFFIXES for frame in path.parent.iterdir())]


def looks_like(root: Path) -> bool:
    return bool(_clip_files(root))


def find_recordings(root: Path) -> list[RecordingSource]:
    """The recordings under ``root``, sorted by name (layout: the module docstring)."""
    root = check_folder(root)
    split = read_split(root)
    recordings = [
        RecordingSource(name=path.stem, partition=split_partition(split, path.stem, root),
                        frames_dir=path.parent, frame_rate=FRAME_RATE, read_labels=read_labels,
                        extra={"labels": path}, read_landmarks=read_landmarks)
        for path in _clip_files(root)]
    warn_unused_split_lines(split, recordings, root)
    return finish(recordings, root, "afewva", EXPECTED)


def _frames(recording: RecordingSource) -> tuple[Path, dict]:
    """The clip's JSON file and its ``frames`` object."""
    path = Path(recording.extra["labels"])
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AvstanError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno}); fix the "
                          "file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AvstanError(f"{path}: cannot read the file ({exc.__class__.__name__})") from None
    frames = data.get("frames") if isinstance(data, dict) else None
    if not isinstance(frames, dict) or not frames:
        raise AvstanError(f"{path}: no \"frames\" object with per-frame labels; expected "
                          "AFEW-VA's {\"frames\": {\"00000\": {\"valence\": …, \"arousal\": …}}}")
    return path, frames


def read_landmarks(recording: RecordingSource) -> LandmarkTrack:
    """The 68 points per frame that AFEW-VA ships, at frame number / 25 s (frames without
    a ``landmarks`` entry are left out: prepare detects the face there)."""
    path, frames = _frames(recording)
    times, points = [], []
    for key, entry in frames.items():
        landmarks = entry.get("landmarks") if isinstance(entry, dict) else None
        if landmarks is None:
            continue
        try:
            array = np.asarray(landmarks, dtype=np.float64)
            index = int(key)
        except (TypeError, ValueError):
            raise AvstanError(f"{path}: frame {key}: landmarks are not 68 [x, y] numbers; fix "
                              "the file or prepare with --landmarks detect") from None
        if array.shape != (68, 2):
            raise AvstanError(f"{path}: frame {key}: {array.shape[0] if array.ndim else 0} "
                              "landmarks, expected 68 [x, y] points; fix the file or prepare "
                              "with --landmarks detect")
        times.append(index / FRAME_RATE)
        points.append(array)
    order = np.argsort(times)
    return LandmarkTrack(np.asarray(times, np.float64)[order],
                         np.asarray(points, np.float64).reshape(-1, 68, 2)[order], str(path))


def read_labels(recording: RecordingSource) -> LabelTrack:
    """Valence and arousal per frame (÷10), at frame number / 25 s."""
    path, frames = _frames(recording)
    rows = []
    for key, entry in frames.items():
        try:
            index = int(key)
        except ValueError:
            raise AvstanError(f"{path}: frame key '{key}' is not a frame number") from None
        if not isinstance(entry, dict):
            raise AvstanError(f"{path}: frame {key} is not an object with valence and arousal")
        row = [float(index)]
        for dimension in DIMENSIONS:
            value = entry.get(dimension)
            if value is None:
                row.append(math.nan)
            elif isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise AvstanError(f"{path}: frame {key}: {dimension} {value!r} is not a "
                                  "number; fix the file")
            else:
                row.append(value / SCALE)
        rows.append(row)
    table = np.asarray(sorted(rows), dtype=np.float64)
    if len(np.unique(table[:, 0])) != len(table):
        raise AvstanError(f"{path}: a frame number appears twice (e.g. '1' and '00001')")
    return LabelTrack(times=table[:, 0] / FRAME_RATE, values=table[:, 1:], source=str(path))
