"""Any folder of media files, with optional labels next to each and an optional split.

::

    session1/clip.mp4          a video or audio file (any depth) → recording session1__clip
    session1/clip.csv          optional labels: header time,valence,arousal, one row per sample
    session1/clip.wav          optional: an audio file beside a video goes to extra["audio"]
    split.csv                  optional: recording,partition (train, devel/dev/validation, test)

The recording name is the path below the root without suffix, ``/`` → ``__``. Labels:
times in seconds; either value column may be left out, and an empty cell or ``nan``
means "not annotated" (NaN); other columns are ignored; ``;`` also works as separator.
A label file without a media file is ignored, with a warning naming it (and saying so when
it holds one value per media file, which is not a label format read here); a media file
without one has no labels.
Without ``split.csv`` every recording is train; with it, every recording must be listed
(``session1__clip`` or ``session1/clip``).
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

from avstan.data.corpora.base import AUDIO_SUFFIXES, VIDEO_SUFFIXES, LabelTrack, RecordingSource
from avstan.data.corpora.common import (
    SPLIT_FILE,
    check_folder,
    finish,
    media_files,
    parse_number,
    read_lines,
    read_split,
    split_partition,
    video_and_audio,
    walk_files,
    warn_unused_split_lines,
)
from avstan.errors import AvstanError

DIMENSIONS = ("valence", "arousal")
EXPECTED = ("video or audio files (" + ", ".join(VIDEO_SUFFIXES + AUDIO_SUFFIXES) + ") with "
            "optional <name>.csv labels (time,valence,arousal) and split.csv")


def recording_name(media: Path, root: Path) -> str:
    return "__".join(media.relative_to(root).with_suffix("").parts)


def looks_like(root: Path) -> bool:
    return bool(media_files(root))


def find_recordings(root: Path) -> list[RecordingSource]:
    """The recordings under ``root``, sorted by name (layout: the module docstring)."""
    root = check_folder(root)
    split = read_split(root)
    by_name: dict[str, list[Path]] = defaultdict(list)
    for path in media_files(root):
        by_name[recording_name(path, root)].append(path)
    recordings = []
    for name, paths in by_name.items():
        video, audio = video_and_audio(name, paths)
        media = video or audio
        extra: dict = {}
        if video and audio:
            extra["audio"] = audio
        labels = media.with_suffix(".csv")
        if labels.is_file():
            extra["labels"] = labels
        recordings.append(RecordingSource(
            name=name, partition=split_partition(split, name, root), media=media,
            read_labels=read_labels if "labels" in extra else None, extra=extra))
    warn_unused_split_lines(split, recordings, root)
    warn_orphan_label_files(root, {r.extra["labels"] for r in recordings if "labels" in r.extra})
    return finish(recordings, root, "generic", EXPECTED)


def warn_orphan_label_files(root: Path, used: set[Path]) -> None:
    """Warn about .csv files that are no recording's labels (they are ignored): one warning
    naming them; files of one ``<media file>,<value>`` row per recording (a whole-file label,
    as a speech corpus gives) are said to be in a format avstan does not read."""
    orphans = [path for path in walk_files(root, (".csv",))
               if path not in used and path != root / SPLIT_FILE]
    if not orphans:
        return
    per_file = [path for path in orphans if _names_media_files(path)]
    others = [path for path in orphans if path not in per_file]
    if per_file:
        warnings.warn(f"{', '.join(map(str, per_file))}: one value per media file is not a "
                      "label format avstan reads, so these are ignored; give each recording "
                      "a <name>.csv beside it with time,valence,arousal rows (for one value "
                      "per file: two rows, at 0 and at its end)", stacklevel=3)
    if others:
        warnings.warn(f"{', '.join(map(str, others))}: no video or audio file of the same "
                      "name, so these labels are ignored", stacklevel=3)


def _names_media_files(path: Path) -> bool:
    """Whether a CSV's first cell names a media file (``00.wav,0.7``)."""
    try:
        lines = [line for line in read_lines(path)[:3] if line.strip()]
    except AvstanError:
        return False
    first = [line.replace(";", ",").split(",")[0].strip().lower() for line in lines]
    return any(cell.endswith(VIDEO_SUFFIXES + AUDIO_SUFFIXES) for cell in first)


def read_labels(recording: RecordingSource) -> LabelTrack:
    """``time,valence,arousal`` rows (seconds; values in [-1, 1]; empty or nan → NaN)."""
    path = Path(recording.extra["labels"])
    rows = [(number, line) for number, line in enumerate(read_lines(path), 1) if line.strip()]
    if not rows:
        raise AvstanError(f"{path}: empty label file; write a header 'time,valence,arousal' "
                          "and one row per sample")
    separator = ";" if ";" in rows[0][1] else ","
    header = [field.strip().strip("'\"").lower() for field in rows[0][1].split(separator)]
    if "time" not in header or not set(DIMENSIONS) & set(header):
        raise AvstanError(f"{path}: the first line must be a header naming the columns, "
                          "'time,valence,arousal' (either value column may be left out)")
    value_columns = [header.index(d) if d in header else None for d in DIMENSIONS]
    time_column = header.index("time")
    times, values = [], []
    for number, line in rows[1:]:
        fields = line.split(separator)
        if len(fields) != len(header):
            raise AvstanError(f"{path}, line {number}: {len(fields)} values, expected "
                              f"{len(header)} ({separator.join(header)})")
        where = f"{path}, line {number}"
        times.append(parse_number(fields[time_column], where))
        values.append([np.nan if column is None else
                       parse_number(fields[column], where, missing_is_nan=True)
                       for column in value_columns])
    return LabelTrack(times=np.asarray(times, dtype=np.float64),
                      values=np.asarray(values, dtype=np.float64).reshape(-1, 2),
                      source=str(path))
