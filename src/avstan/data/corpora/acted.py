"""What the acted, categorical corpora (RAVDESS, CREMA-D) share: the one table that maps
an emotion category to a valence/arousal point, intensity, speaker-independent splits, and
the constant label track of an utterance.

The category → (valence, arousal) table is a circumplex (Russell 1980) read off for the
categories of the acted corpora; it is the ONLY place these numbers live:

=========  =======  =======  ==========================================================
category   valence  arousal  source
=========  =======  =======  ==========================================================
anger      -0.6     0.8      given (issue 15)
fear       -0.6     0.6      given
disgust    -0.6     0.3      given
happiness   0.8     0.5      given
sadness    -0.7    -0.5      given
neutral     0.0     0.0      given
calm        0.4    -0.5      chosen: pleasant and low arousal ("relaxed, serene")
surprise    0.2     0.7      chosen: high arousal, valence slightly positive (RAVDESS's
                             surprised statements are mostly of the pleased kind)
contempt   -0.5     0.2      chosen: unpleasant, mildly aroused, between disgust and
                             neutral (MEAD and AffectNet have it; the same point as the
                             FER reference of issue 30 used)
=========  =======  =======  ==========================================================

Intensity scales the point away from neutral: both coordinates are multiplied by the
intensity's factor and clipped to [-1, 1] (neutral stays at 0, 0). RAVDESS normal 1.0,
strong 1.25; CREMA-D low 0.75, medium 1.0, high 1.25, unspecified (XX) 1.0. A "strong"
anger is thus (-0.75, 1.0) and a "low" sadness (-0.525, -0.375).

Splits are by speaker (no speaker in two partitions): each reader has a fixed default
rule, and ``split.csv`` (``speaker,partition`` or ``recording,partition`` lines) replaces
it. Every speaker found must then be listed, and a split that leaves train, devel or test
without a speaker is refused (train and devel are needed to train, test to score).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from avstan.data.corpora.base import LabelTrack, RecordingSource
from avstan.data.corpora.common import SPLIT_FILE, finish, read_split
from avstan.errors import AvstanError

CIRCUMPLEX: dict[str, tuple[float, float]] = {
    "anger": (-0.6, 0.8),
    "fear": (-0.6, 0.6),
    "disgust": (-0.6, 0.3),
    "happiness": (0.8, 0.5),
    "sadness": (-0.7, -0.5),
    "neutral": (0.0, 0.0),
    "calm": (0.4, -0.5),
    "surprise": (0.2, 0.7),
    "contempt": (-0.5, 0.2),
}
LABEL_RATE = 10.0  # Hz: the label track written for an utterance (and a continuous recording)
PARTITIONS = ("train", "devel", "test")
MAX_NAMED = 5  # file names listed in one warning before "and N more"


def emotion_point(category: str, intensity: float = 1.0) -> tuple[float, float]:
    """(valence, arousal) of ``category`` at ``intensity`` (the table's point times the
    factor, clipped to [-1, 1])."""
    valence, arousal = CIRCUMPLEX[category]
    return (float(np.clip(valence * intensity, -1.0, 1.0)),
            float(np.clip(arousal * intensity, -1.0, 1.0)))


def utterance(name: str, partition: str, media: Path, speaker: str, category: str,
              intensity: float, audio: Path | None = None) -> RecordingSource:
    """One utterance as a recording with a constant label (``extra`` keeps what the
    continuous builder needs: speaker, category, intensity, point)."""
    extra: dict = {"speaker": speaker, "category": category, "intensity": intensity,
                   "point": emotion_point(category, intensity)}
    if audio is not None:
        extra["audio"] = audio
    return RecordingSource(name=name, partition=partition, media=media,
                           read_labels=read_constant_labels, extra=extra)


def media_seconds(path: Path) -> float:
    """Duration of a media file from its header (PyAV; nothing is decoded)."""
    import av

    try:
        with av.open(str(path)) as container:
            if container.duration:
                return container.duration / 1e6
            for stream in container.streams:
                if stream.duration and stream.time_base:
                    return float(stream.duration * stream.time_base)
    except (av.FFmpegError, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise AvstanError(f"{path}: cannot open the file to read its duration ({reason}); "
                          "check the file") from None
    raise AvstanError(f"{path}: the file does not state its duration; re-encode it")


def constant_track(seconds: float, point: tuple[float, float], source: str,
                   rate: float = LABEL_RATE) -> LabelTrack:
    """The utterance's one label at ``k / rate`` for every k up to ``seconds``, and at
    ``seconds`` itself, so the track covers the whole utterance."""
    times = np.arange(int(np.floor(seconds * rate + 1e-9)) + 1) / rate
    if seconds > times[-1] + 1e-9:
        times = np.append(times, seconds)
    return LabelTrack(times=times, values=np.tile(np.asarray(point, np.float64),
                                                  (len(times), 1)), source=source)


def read_constant_labels(recording: RecordingSource) -> LabelTrack:
    """The utterance's category point over its whole duration, at 10 Hz."""
    path = Path(recording.extra.get("audio") or recording.media)
    return constant_track(media_seconds(path), recording.extra["point"],
                          f"{recording.media} ({recording.extra['category']})")


def warn_skipped(root: Path, skipped: list[Path], scheme: str) -> None:
    """One warning naming the media files whose names do not follow the corpus's scheme."""
    if not skipped:
        return
    names = [str(path.relative_to(root)) for path in skipped]
    listed = ", ".join(names[:MAX_NAMED])
    if len(names) > MAX_NAMED:
        listed += f" and {len(names) - MAX_NAMED} more"
    warnings.warn(f"{root}: skipped {len(names)} file(s) whose names do not follow {scheme}: "
                  f"{listed}; rename them or move them out", stacklevel=3)


def warn_empty_folders(root: Path, folders: Iterable[Path], what: str) -> None:
    """One warning naming speaker folders that hold no media file."""
    empty = sorted(str(folder.relative_to(root)) for folder in folders)
    if empty:
        warnings.warn(f"{root}: {len(empty)} empty {what} folder(s), no media file in "
                      f"{', '.join(empty)}; skipped (was the download complete?)", stacklevel=3)


def speaker_partitions(root: Path, speakers: Iterable[str], default_rule,
                       recordings: Iterable[RecordingSource] = ()) -> dict[str, str]:
    """``{speaker: partition}``: from ``split.csv`` when it exists (lines may name a
    speaker, or a recording, which puts that recording's speaker there), else
    ``default_rule(speaker)``. A speaker missing from ``split.csv``, a speaker given two
    partitions, or a partition the default rule leaves empty raise AvstanError naming the
    file; a partition ``split.csv`` leaves empty is a warning (a fold trained without devel,
    a corpus kept for testing only)."""
    speakers = sorted(set(speakers))
    split = read_split(root)
    path = Path(root) / SPLIT_FILE
    if split is None:
        partitions = {speaker: default_rule(speaker) for speaker in speakers}
        where = f"{root}: the default speaker split"
    else:
        speaker_of = {r.name: r.extra["speaker"] for r in recordings}
        partitions = {}
        for name, partition in split.items():
            speaker = name if name in speakers else speaker_of.get(name)
            if speaker is None:
                continue  # a speaker or file not in this folder
            if partitions.setdefault(speaker, partition) != partition:
                raise AvstanError(f"{path}: speaker {speaker} is put in both "
                                  f"{partitions[speaker]} and {partition}; the split must be "
                                  "by speaker")
        missing = [speaker for speaker in speakers if speaker not in partitions]
        if missing:
            raise AvstanError(f"{path}: no line for speaker(s) {', '.join(missing)}; add "
                              f"'{missing[0]},train' (or devel, test)")
        where = str(path)
    empty = [p for p in PARTITIONS if p not in partitions.values()]
    if empty and split is None:
        raise AvstanError(f"{where} leaves the {empty[0]} partition without a speaker "
                          f"(speakers found: {', '.join(speakers)}); write {path.name} "
                          "with one 'speaker,partition' line per speaker")
    if empty:  # chosen in split.csv: e.g. a fold with no devel, or a test-only corpus
        warnings.warn(f"{path} leaves the {' and '.join(empty)} partition"
                      f"{'s' if len(empty) > 1 else ''} without a speaker"
                      + ("; train it with --set training.keep=last_epoch"
                         if "devel" in empty and "train" not in empty else ""), stacklevel=2)
    return partitions


def finish_by_speaker(recordings: list[RecordingSource], root: Path, layout: str,
                      expected: str, default_rule) -> list[RecordingSource]:
    """Every utterance put in its speaker's partition (:func:`speaker_partitions`), then the
    checks every reader ends with (``common.finish``): what an acted corpus's reader ends
    with."""
    if recordings:
        partitions = speaker_partitions(root, [r.extra["speaker"] for r in recordings],
                                        default_rule, recordings)
        for recording in recordings:
            recording.partition = partitions[recording.extra["speaker"]]
    return finish(recordings, root, layout, expected)
