"""AVEC 2017 (SEWA): video, audio and a label file per recording.

::

    video/Train_01.avi      Train_NN, Devel_NN, Test_NN (.avi or .mp4)
    audio/Train_01.wav      optional, kept in extra["audio"]
    labels/Train_01.csv     Instance_name;frameTime;Arousal;Valence;Liking, one row per 100 ms

Files are found anywhere under the root; a label file must sit in a folder named
``labels`` (the AVEC package has feature files with the same names elsewhere). Label
files may use ``;`` or ``,`` and may have a header (columns found by name: frameTime or
time, Arousal, Valence); without one the columns are name, time, arousal, valence,
liking. Partition from the name: Train → train, Devel (or Dev) → devel, Test → test.
Labels must be complete: an empty or NaN value is an error.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from avstan.data.corpora.base import AUDIO_SUFFIXES, VIDEO_SUFFIXES, LabelTrack, RecordingSource
from avstan.data.corpora.common import (
    check_folder,
    finish,
    index_by_name,
    is_video,
    parse_number,
    read_lines,
    walk_files,
)
from avstan.errors import AvstanError

NAME_PATTERN = re.compile(r"^(train|devel|dev|test)_\d+$", re.IGNORECASE)
# Detection is case-sensitive so that RECOLA's train_1 / dev_1 are not taken for SEWA.
DETECT_PATTERN = re.compile(r"^(Train|Devel|Test)_\d+$")
PARTITION_OF_PREFIX = {"train": "train", "devel": "devel", "dev": "devel", "test": "test"}
HEADERLESS_COLUMNS = ("name", "time", "arousal", "valence", "liking")
EXPECTED = ("videos named Train_NN, Devel_NN or Test_NN (e.g. video/Train_01.avi) with "
            "labels/Train_01.csv (name;time;arousal;valence;liking) and optional "
            "audio/Train_01.wav")


def _is_label_file(path: Path) -> bool:
    return path.suffix.lower() == ".csv" and path.parent.name.lower() == "labels"


def looks_like(root: Path) -> bool:
    """A SEWA-named label file in ``labels/`` or a SEWA-named video."""
    for path in walk_files(root, (".csv",) + VIDEO_SUFFIXES):
        if DETECT_PATTERN.match(path.stem) and (_is_label_file(path) or is_video(path)):
            return True
    return False


def find_recordings(root: Path) -> list[RecordingSource]:
    """The recordings under ``root``, sorted by name (layout: the module docstring)."""
    root = check_folder(root)
    videos, audios, labels = [], [], []
    for path in walk_files(root, (".csv",) + VIDEO_SUFFIXES + AUDIO_SUFFIXES):
        if path.suffix.lower() == ".csv":
            if _is_label_file(path) and NAME_PATTERN.match(path.stem):
                labels.append(path)
        elif NAME_PATTERN.match(path.stem):
            (videos if is_video(path) else audios).append(path)
        elif is_video(path):
            raise AvstanError(f"{path}: not an AVEC 2017 recording name (Train_NN, Devel_NN "
                              "or Test_NN); rename it, move it out, or use the generic layout")

    video_of = index_by_name(videos)
    audio_of = index_by_name(audios)
    labels_of = index_by_name(labels)
    recordings = []
    for name, video in video_of.items():
        extra: dict = {}
        if name in labels_of:
            extra["labels"] = labels_of[name]
        if name in audio_of:
            extra["audio"] = audio_of[name]
        recordings.append(RecordingSource(
            name=name, partition=PARTITION_OF_PREFIX[name.split("_")[0].lower()], media=video,
            read_labels=read_labels if name in labels_of else None, extra=extra))
    return finish(recordings, root, "avec2017", EXPECTED)


def read_labels(recording: RecordingSource) -> LabelTrack:
    """Arousal and valence at 100 ms from ``extra["labels"]`` (liking is not used)."""
    path = Path(recording.extra["labels"])
    rows = [(number, line) for number, line in enumerate(read_lines(path), 1) if line.strip()]
    if not rows:
        raise AvstanError(f"{path}: empty label file")
    separator = ";" if ";" in rows[0][1] else ","
    header = [field.strip().strip("'\"").lower() for field in rows[0][1].split(separator)]
    if {"frametime", "time", "arousal", "valence"} & set(header):
        time_name = "frametime" if "frametime" in header else "time"
        if time_name not in header or "arousal" not in header or "valence" not in header:
            raise AvstanError(f"{path}: the header needs frameTime, Arousal and Valence "
                              f"columns, got {rows[0][1].strip()!r}")
        columns = header
        rows = rows[1:]
    else:
        columns, time_name = list(HEADERLESS_COLUMNS), "time"
    time_column, valence_column, arousal_column = (
        columns.index(time_name), columns.index("valence"), columns.index("arousal"))
    times, values = [], []
    for number, line in rows:
        fields = line.split(separator)
        if len(fields) != len(columns):
            raise AvstanError(f"{path}, line {number}: {len(fields)} values, expected "
                              f"{len(columns)} ({separator.join(columns)})")
        where = f"{path}, line {number}"
        times.append(parse_number(fields[time_column], where))
        values.append((parse_number(fields[valence_column], where),
                       parse_number(fields[arousal_column], where)))
    return LabelTrack(times=np.asarray(times, dtype=np.float64),
                      values=np.asarray(values, dtype=np.float64).reshape(-1, 2),
                      source=str(path))
