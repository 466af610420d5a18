"""MEAD (Wang et al. 2020, "MEAD: a large-scale audio-visual dataset for emotional talking-
face generation"): actors speaking sentences in eight emotions at three intensities.

::

    M030_front_angry_level3_001.mp4    one clip (any folder below the root)
    split.csv                          optional: speaker,partition (M030,train)

A file name is ``<actor>_<view>_<emotion>_level<k>_<n>``: actor (``M`` or ``W`` and three
digits), camera view (``front``, ``left_30``, …; every view is read), emotion (angry,
contempt, disgusted, fear, happy, neutral, sad, surprised), intensity level 1–3, and the
take. The layout also takes MEAD's own folder form, ``<actor>/video/<view>/<emotion>/
level_<k>/<n>.mp4``. A media file whose name follows neither scheme is skipped (one
warning names them all); an emotion MEAD does not have is an error.

Each clip is a recording with one label, its emotion's point in the circumplex table of
:mod:`avstan.data.corpora.acted` scaled by level (1 ×0.75, 2 ×1, 3 ×1.25, as CREMA-D's
low / medium / high). Default split by actor number: up to 30 train, 31–35 devel, 36 and
above test (MEAD's 48 actors about 60/15/25 %); ``split.csv`` replaces it, as it must for a
subset of the corpus (every partition needs an actor), e.g. one fold of a
leave-one-actor-out study.
"""

from __future__ import annotations

import re
from pathlib import Path

from avstan.data.corpora.acted import finish_by_speaker, utterance, warn_skipped
from avstan.data.corpora.base import RecordingSource
from avstan.data.corpora.common import check_folder, media_files, video_and_audio
from avstan.errors import AvstanError

NAME_PATTERN = re.compile(
    r"^([MW]\d{3})_([a-z]+(?:_\d+)?)_([A-Za-z]+)_level_?(\d)_(\d{3})$")
FOLDER_PATTERN = re.compile(r"^(\d{3})$")
EMOTIONS = {"angry": "anger", "contempt": "contempt", "disgusted": "disgust",
            "fear": "fear", "happy": "happiness", "neutral": "neutral", "sad": "sadness",
            "surprised": "surprise"}
LEVELS = {"1": 0.75, "2": 1.0, "3": 1.25}
SCHEME = "MEAD's <actor>_<view>_<emotion>_level<k>_<n> (e.g. M030_front_angry_level3_001.mp4)"
EXPECTED = "MEAD clips named like M030_front_angry_level3_001.mp4"


def default_partition(speaker: str) -> str:
    """Actor numbers up to 30 train, 31–35 devel, 36 and above test."""
    number = int(speaker[1:])
    return "train" if number <= 30 else "devel" if number <= 35 else "test"


def clip_fields(path: Path) -> tuple[str, str, str, str, str] | None:
    """(actor, view, emotion, level, take) from a clip's name, or from MEAD's folder form
    ``<actor>/video/<view>/<emotion>/level_<k>/<n>.mp4``; None when neither fits."""
    match = NAME_PATTERN.match(path.stem)
    if match:
        return match.groups()
    parts = path.parts
    if (FOLDER_PATTERN.match(path.stem) and len(parts) >= 6 and parts[-5] == "video"
            and re.match(r"^[MW]\d{3}$", parts[-6]) and re.match(r"^level_\d$", parts[-2])):
        return parts[-6], parts[-4], parts[-3], parts[-2][-1], path.stem
    return None


def looks_like(root: Path) -> bool:
    return any(clip_fields(path) is not None for path in media_files(root))


def parse_name(path: Path) -> dict | None:
    """The fields of a MEAD clip; None when its name does not follow the scheme;
    AvstanError naming the file for an emotion or level MEAD does not have."""
    fields = clip_fields(path)
    if fields is None:
        return None
    actor, view, emotion, level, take = fields
    if emotion.lower() not in EMOTIONS:
        raise AvstanError(f"{path}: unknown emotion {emotion!r}; MEAD has "
                          f"{', '.join(EMOTIONS)}; fix the name or move the file out")
    if level not in LEVELS:
        raise AvstanError(f"{path}: unknown intensity level {level}; MEAD has levels 1-3")
    return {"name": f"{actor}_{view}_{emotion.lower()}_level{level}_{take}",
            "speaker": actor, "category": EMOTIONS[emotion.lower()],
            "intensity": LEVELS[level]}


def find_recordings(root: Path) -> list[RecordingSource]:
    """The clips under ``root``, sorted by name (layout: the module docstring)."""
    root = check_folder(root)
    skipped, grouped, fields_of = [], {}, {}
    for path in media_files(root):
        fields = parse_name(path)
        if fields is None:
            skipped.append(path)
            continue
        grouped.setdefault(fields["name"], []).append(path)
        fields_of[fields["name"]] = fields
    warn_skipped(root, skipped, SCHEME)
    recordings = []
    for name, paths in grouped.items():
        video, audio = video_and_audio(name, paths)
        fields = fields_of[name]
        recordings.append(utterance(name, "", video or audio, fields["speaker"],
                                    fields["category"], fields["intensity"],
                                    audio=audio if video else None))
    return finish_by_speaker(recordings, root, "mead", EXPECTED, default_partition)
