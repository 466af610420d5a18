"""RECOLA in the AVEC 2015/2016 layout.

::

    recordings_video/train_1.mp4                  train_N, dev_N, test_N (.mp4 or .avi)
    recordings_audio/train_1.wav                  optional, kept in extra["audio"]
    ratings_gold_standard/arousal/train_1.arff    gold standard, one value per 40 ms
    ratings_gold_standard/valence/train_1.arff

Files are found anywhere under the root (the folder names above are the AVEC ones; only
the ``arousal``/``valence`` parent folder of an ARFF file matters). The partition comes
from the name: ``train_N`` → train, ``dev_N`` → devel, ``test_N`` → test. A recording
without gold standard (the test partition) has no labels; one with a single dimension
has the other as NaN. The gold standard must be complete: a missing or NaN value is an
error, not a gap.
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

NAME_PATTERN = re.compile(r"^(train|dev|devel|test)_\d+$", re.IGNORECASE)
PARTITION_OF_PREFIX = {"train": "train", "dev": "devel", "devel": "devel", "test": "test"}
DIMENSIONS = ("valence", "arousal")  # the column order of LabelTrack.values
EXPECTED = ("videos named train_N, dev_N or test_N (e.g. recordings_video/train_1.mp4) with "
            "ARFF gold standards ratings_gold_standard/arousal/train_1.arff and "
            "ratings_gold_standard/valence/train_1.arff")


def _gold_standard_dimension(path: Path) -> str | None:
    dimension = path.parent.name.lower()
    if path.suffix.lower() == ".arff" and dimension in DIMENSIONS \
            and NAME_PATTERN.match(path.stem):
        return dimension
    return None


def looks_like(root: Path) -> bool:
    """An ARFF gold standard in an arousal/valence folder, or AVEC's recordings_video."""
    for path in walk_files(root, (".arff",) + VIDEO_SUFFIXES):
        if _gold_standard_dimension(path) or (
                path.parent.name == "recordings_video" and NAME_PATTERN.match(path.stem)):
            return True
    return False


def find_recordings(root: Path) -> list[RecordingSource]:
    """The recordings under ``root``, sorted by name (layout: the module docstring)."""
    root = check_folder(root)
    videos, audios = [], []
    gold: dict[str, list[Path]] = {dimension: [] for dimension in DIMENSIONS}
    for path in walk_files(root, (".arff",) + VIDEO_SUFFIXES + AUDIO_SUFFIXES):
        dimension = _gold_standard_dimension(path)
        if dimension:
            gold[dimension].append(path)
        elif path.suffix.lower() == ".arff":
            continue  # features and other ARFF files of the AVEC package
        elif NAME_PATTERN.match(path.stem):
            (videos if is_video(path) else audios).append(path)
        elif is_video(path):
            raise AvstanError(f"{path}: not a RECOLA recording name (train_N, dev_N or "
                              "test_N); rename it, move it out, or use the generic layout")

    video_of = index_by_name(videos)
    audio_of = index_by_name(audios)
    gold_of = {dimension: index_by_name(paths) for dimension, paths in gold.items()}
    recordings = []
    for name, video in video_of.items():
        extra: dict = {d: gold_of[d][name] for d in DIMENSIONS if name in gold_of[d]}
        has_labels = bool(extra)
        if name in audio_of:
            extra["audio"] = audio_of[name]
        prefix = name.split("_")[0].lower()
        recordings.append(RecordingSource(
            name=name, partition=PARTITION_OF_PREFIX[prefix], media=video,
            read_labels=read_labels if has_labels else None, extra=extra))
    return finish(recordings, root, "recola", EXPECTED)


def read_gold_standard_arff(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(times, values)`` from an AVEC gold-standard ARFF: the ``frameTime`` attribute
    (seconds) and the ``GoldStandard`` attribute (else the last one)."""
    path = Path(path)
    lines = read_lines(path)
    attributes: list[str] = []
    data_line = None
    for number, line in enumerate(lines, 1):
        text = line.strip()
        lower = text.lower()
        if not text or text.startswith("%") or lower.startswith("@relation"):
            continue
        if lower.startswith("@attribute"):
            parts = text.split(None, 2)
            if len(parts) < 3:
                raise AvstanError(f"{path}, line {number}: an @attribute needs a name and a "
                                  "type")
            attributes.append(parts[1].strip("'\"").lower())
        elif lower.startswith("@data"):
            data_line = number
            break
        else:
            raise AvstanError(f"{path}, line {number}: expected @relation, @attribute or "
                              "@data before the data; is this an ARFF file?")
    if data_line is None:
        raise AvstanError(f"{path}: no @data section; expected an AVEC gold-standard ARFF")
    if "frametime" not in attributes:
        raise AvstanError(f"{path}: no frameTime attribute; expected the AVEC gold-standard "
                          "attributes Instance_name, frameTime, GoldStandard")
    time_column = attributes.index("frametime")
    value_column = attributes.index("goldstandard") if "goldstandard" in attributes \
        else len(attributes) - 1
    times, values = [], []
    for number, line in enumerate(lines[data_line:], data_line + 1):
        text = line.strip()
        if not text or text.startswith("%"):
            continue
        fields = text.split(",")
        if len(fields) != len(attributes):
            raise AvstanError(f"{path}, line {number}: {len(fields)} values, expected "
                              f"{len(attributes)} (one per @attribute)")
        where = f"{path}, line {number}"
        times.append(parse_number(fields[time_column], where))
        values.append(parse_number(fields[value_column], where))
    return np.asarray(times, dtype=np.float64), np.asarray(values, dtype=np.float64)


def read_labels(recording: RecordingSource) -> LabelTrack:
    """Valence and arousal gold standards at 40 ms; a missing dimension is NaN."""
    read = {d: read_gold_standard_arff(recording.extra[d])
            for d in DIMENSIONS if d in recording.extra}
    if not read:
        raise AvstanError(f"{recording.name}: no gold-standard file to read")
    first = next(iter(read))
    times = read[first][0]
    for dimension, (other_times, _) in read.items():
        if other_times.shape != times.shape or not np.allclose(other_times, times, atol=1e-6):
            raise AvstanError(f"{recording.extra[dimension]}: frame times differ from "
                              f"{recording.extra[first]} ({len(other_times)} vs {len(times)} "
                              "rows); the two gold standards must share one timeline")
    values = np.full((len(times), len(DIMENSIONS)), np.nan)
    for column, dimension in enumerate(DIMENSIONS):
        if dimension in read:
            values[:, column] = read[dimension][1]
    source = " and ".join(str(recording.extra[d]) for d in read)
    return LabelTrack(times=times, values=values, source=source)
