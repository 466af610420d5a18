"""Aff-Wild2, valence-arousal track: one annotation file per video, one line per frame.

::

    annotations/VA_Estimation_Challenge/Train_Set/<video>.txt        → train
    annotations/VA_Estimation_Challenge/Validation_Set/<video>.txt   → devel
    annotations/VA_Estimation_Challenge/<other folder>/<video>.txt   → test
    videos/<video>.mp4 (or .avi, any folder under the root)

An annotation file is a ``.txt`` file anywhere under the root whose first line is
``valence,arousal`` (so the expression and action-unit annotations of the same package
are not taken for it); then one ``valence,arousal`` line per video frame, ``-5`` where a
frame is not annotated (→ NaN). The recordings are the annotated videos: Aff-Wild2 holds
many videos annotated only for other tasks, so a video without a VA file is not listed,
and an annotation file whose video is missing is skipped. Where two people in one video
are annotated separately (``<video>_left.txt``, ``<video>_right.txt``), both use
``<video>.mp4`` and ``extra["subject"]`` says which one.

Label times are frame_index / frame rate; the rate is read from the video's container
header with PyAV when the labels are read (no frame is decoded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avstan.data.corpora.base import VIDEO_SUFFIXES, LabelTrack, RecordingSource
from avstan.data.corpora.common import (
    check_folder,
    finish,
    index_by_name,
    parse_number,
    read_lines,
    walk_files,
)
from avstan.errors import AvstanError

HEADER = "valence,arousal"
NOT_ANNOTATED = -5.0
SUBJECTS = ("left", "right")
EXPECTED = ("annotation files whose first line is 'valence,arousal' (e.g. "
            "annotations/VA_Estimation_Challenge/Train_Set/<video>.txt) and the videos "
            "(e.g. videos/<video>.mp4)")


def _first_line(path: Path) -> str:
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as file:
            return file.readline()
    except OSError:
        return ""


def _is_annotation(path: Path) -> bool:
    return _first_line(path).strip().lower().replace(" ", "") == HEADER


def partition_of_folder(folder: str) -> str:
    """Train_Set → train, Validation_Set → devel, anything else → test."""
    folder = folder.lower()
    if folder.startswith("train"):
        return "train"
    if folder.startswith(("val", "dev")):
        return "devel"
    return "test"


def looks_like(root: Path) -> bool:
    return any(_is_annotation(path) for path in walk_files(root, (".txt",)))


def find_recordings(root: Path) -> list[RecordingSource]:
    """The recordings under ``root``, sorted by name (layout: the module docstring)."""
    root = check_folder(root)
    annotations = [path for path in walk_files(root, (".txt",)) if _is_annotation(path)]
    annotation_of = index_by_name(annotations, lambda path: path.stem)
    video_of = index_by_name(walk_files(root, VIDEO_SUFFIXES), lambda path: path.stem)
    recordings = []
    for name, annotation in annotation_of.items():
        extra: dict = {"labels": annotation}
        video = video_of.get(name)
        base, _, subject = name.rpartition("_")
        if video is None and subject.lower() in SUBJECTS and base in video_of:
            video = video_of[base]
            extra["subject"] = subject.lower()
        if video is None:
            continue  # annotated video not in this folder
        recordings.append(RecordingSource(
            name=name, partition=partition_of_folder(annotation.parent.name), media=video,
            read_labels=read_labels, extra=extra))
    return finish(recordings, root, "affwild2", EXPECTED)


def video_frame_rate(path: Path) -> float:
    """Frames per second from the container header (PyAV; nothing is decoded)."""
    try:
        import av
    except ImportError:
        raise AvstanError(f"{path}: reading Aff-Wild2 labels needs the video's frame rate, "
                          "which needs PyAV; install it with 'pip install av'") from None
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise AvstanError(f"{path}: has no video stream; check the file")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    except (av.FFmpegError, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise AvstanError(f"{path}: cannot open the video to read its frame rate ({reason}); "
                          "check the file") from None
    if not rate or float(rate) <= 0:
        raise AvstanError(f"{path}: the video does not state its frame rate; re-encode it "
                          "with a constant frame rate")
    return float(rate)


def read_annotation(path: Path) -> np.ndarray:
    """(frames, 2) valence, arousal per video frame; -5 (not annotated) → NaN."""
    path = Path(path)
    lines = read_lines(path)
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines or lines[0].strip().lower().replace(" ", "") != HEADER:
        raise AvstanError(f"{path}: the first line must be '{HEADER}'")
    values = []
    for number, line in enumerate(lines[1:], 2):
        fields = line.split(",")
        if len(fields) != 2:
            raise AvstanError(f"{path}, line {number}: {len(fields)} values, expected 2 "
                              "(valence,arousal; one line per frame, -5 if not annotated)")
        values.append([parse_number(field, f"{path}, line {number}") for field in fields])
    array = np.asarray(values, dtype=np.float64).reshape(-1, 2)
    array[array == NOT_ANNOTATED] = np.nan
    return array


def read_labels(recording: RecordingSource) -> LabelTrack:
    """Per-frame valence and arousal at times frame_index / frame rate of the video."""
    values = read_annotation(recording.extra["labels"])
    rate = video_frame_rate(recording.media)
    times = np.arange(len(values), dtype=np.float64) / rate
    return LabelTrack(times=times, values=values, source=str(recording.extra["labels"]))
