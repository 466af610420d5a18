"""CREMA-D (Cao et al. 2014): acted sentences, one category per file.

::

    AudioWAV/1001_DFA_ANG_XX.wav       audio
    VideoFlash/1001_DFA_ANG_XX.flv     audio-visual (FLV, VP6)
    split.csv                          optional: speaker,partition (1001,train)

A file name is ``AAAA_SSS_EEE_LL``: actor (1001–1091), sentence (three letters), emotion
(ANG anger, DIS disgust, FEA fear, HAP happiness, NEU neutral, SAD sadness) and level (LO
low, MD medium, HI high, XX unspecified). Files are found anywhere under the root. A wav
and a video of one name are one recording (the video, with the wav as its audio, as in the
generic layout). A media file whose name does not follow the scheme is skipped (one
warning names them all); a name with an emotion or level code CREMA-D does not have is an
error. An empty ``AudioWAV`` or ``VideoFlash`` folder is skipped with a warning.

Each utterance is a recording with one label, its category's point in the circumplex
table of :mod:`avstan.data.corpora.acted` scaled by level (LO ×0.75, MD and XX ×1, HI
×1.25). Default split by actor: 1001–1073 train, 1074–1082 devel, 1083 and above test
(about 80/10/10 %); ``split.csv`` replaces it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from avstan.data.corpora.acted import (
    finish_by_speaker,
    utterance,
    warn_empty_folders,
    warn_skipped,
)
from avstan.data.corpora.base import RecordingSource
from avstan.data.corpora.common import check_folder, media_files, video_and_audio
from avstan.errors import AvstanError

NAME_PATTERN = re.compile(r"^(\d{4})_([A-Za-z0-9]{3})_([A-Za-z]{3})_([A-Za-z]{2})$")
MEDIA_FOLDERS = ("AudioWAV", "VideoFlash", "AudioMP3")
EMOTIONS = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happiness",
            "NEU": "neutral", "SAD": "sadness"}
LEVELS = {"LO": 0.75, "MD": 1.0, "HI": 1.25, "XX": 1.0}
SCHEME = "CREMA-D's AAAA_SSS_EEE_LL (e.g. 1001_DFA_ANG_XX.wav)"
EXPECTED = "AudioWAV/AAAA_SSS_EEE_LL.wav or VideoFlash/AAAA_SSS_EEE_LL.flv files"


def default_partition(speaker: str) -> str:
    """Actors 1001–1073 train, 1074–1082 devel, 1083 and above test."""
    number = int(speaker)
    return "train" if number <= 1073 else "devel" if number <= 1082 else "test"


def looks_like(root: Path) -> bool:
    return any(NAME_PATTERN.match(path.stem) for path in media_files(root))


def parse_name(path: Path) -> dict | None:
    """The fields of a CREMA-D name; None when it does not follow the scheme; AvstanError
    naming the file for an emotion or level code the scheme does not have."""
    match = NAME_PATTERN.match(path.stem)
    if match is None:
        return None
    actor, _, emotion, level = match.groups()
    for code, table, field in ((emotion, EMOTIONS, "emotion"), (level, LEVELS, "level")):
        if code.upper() not in table:
            raise AvstanError(f"{path}: unknown {field} code {code}; CREMA-D has "
                              f"{', '.join(table)}; fix the name or move the file out")
    return {"speaker": actor, "category": EMOTIONS[emotion.upper()],
            "intensity": LEVELS[level.upper()]}


def find_recordings(root: Path) -> list[RecordingSource]:
    """The utterances under ``root``, sorted by name (layout: the module docstring)."""
    root = check_folder(root)
    files = media_files(root)
    skipped = []
    by_name: dict[str, list[Path]] = defaultdict(list)
    fields_of: dict[str, dict] = {}
    for path in files:
        fields = parse_name(path)
        if fields is None:
            skipped.append(path)
            continue
        by_name[path.stem].append(path)
        fields_of[path.stem] = fields
    warn_skipped(root, skipped, SCHEME)
    holding = {path.parent for path in files}
    warn_empty_folders(root, [folder for folder in root.rglob("*") if folder.is_dir()
                              and folder.name in MEDIA_FOLDERS and folder not in holding],
                       "media")
    recordings = []
    for name, paths in by_name.items():
        video, audio = video_and_audio(name, paths)
        fields = fields_of[name]
        recording = utterance(name, "", video or audio, fields["speaker"],
                              fields["category"], fields["intensity"],
                              audio=audio if video else None)
        recording.extra["has_audio"] = True
        recordings.append(recording)
    return finish_by_speaker(recordings, root, "cremad", EXPECTED, default_partition)
