"""RAVDESS (Livingstone & Russo 2018): acted utterances, one category per file.

::

    Actor_01/03-01-05-02-01-01-01.wav     audio only (.wav, or .flac as in ../shared/data)
    Actor_01/01-01-05-02-01-01-01.mp4     audio-visual
    Actor_01/02-01-05-02-01-01-01.mp4     video only
    split.csv                             optional: speaker,partition (Actor_01,train)

A file name is ``MM-VV-EE-II-SS-RR-AA``: modality (01 audio-visual, 02 video only, 03 audio
only), vocal channel (01 speech, 02 song), emotion (01 neutral, 02 calm, 03 happy, 04 sad,
05 angry, 06 fearful, 07 disgust, 08 surprised), intensity (01 normal, 02 strong),
statement, repetition, actor. Files are found anywhere under the root; the speaker is
``Actor_AA`` from the name. A media file whose name does not follow the scheme is skipped
(one warning names them all); a name that follows it with a code RAVDESS does not have
(emotion 09, intensity 03) is an error, since a mislabelled file must not vanish quietly.
An ``Actor_NN`` folder without media files is skipped with a warning.

Each utterance is a recording with one label, its category's point in the circumplex
table of :mod:`avstan.data.corpora.acted` scaled by intensity (strong ×1.25). Default
split by actor: 01–18 train, 19–20 devel, 21–24 test (devel and test hold both sexes:
odd actors are male, even female); ``split.csv`` replaces it.
"""

from __future__ import annotations

import re
from pathlib import Path

from avstan.data.corpora.acted import (
    finish_by_speaker,
    utterance,
    warn_empty_folders,
    warn_skipped,
)
from avstan.data.corpora.base import RecordingSource
from avstan.data.corpora.common import check_folder, media_files
from avstan.errors import AvstanError

NAME_PATTERN = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
SPEAKER_FOLDER = re.compile(r"^Actor_\d+$", re.IGNORECASE)
MODALITIES = {"01": "audio-visual", "02": "video only", "03": "audio only"}
VOCAL_CHANNELS = {"01": "speech", "02": "song"}
EMOTIONS = {"01": "neutral", "02": "calm", "03": "happiness", "04": "sadness", "05": "anger",
            "06": "fear", "07": "disgust", "08": "surprise"}
INTENSITIES = {"01": 1.0, "02": 1.25}  # normal, strong
SCHEME = "RAVDESS's MM-VV-EE-II-SS-RR-AA (e.g. 03-01-05-02-01-01-12.wav)"
EXPECTED = "Actor_NN folders of files named MM-VV-EE-II-SS-RR-AA (.wav, .flac or .mp4)"


def default_partition(speaker: str) -> str:
    """Actors 01–18 train, 19–20 devel, 21 and above test."""
    number = int(speaker.rpartition("_")[2])
    return "train" if number <= 18 else "devel" if number <= 20 else "test"


def looks_like(root: Path) -> bool:
    return any(NAME_PATTERN.match(path.stem) for path in media_files(root))


def parse_name(path: Path) -> dict | None:
    """The fields of a RAVDESS name; None when it does not follow the scheme; AvstanError
    naming the file for a code the scheme does not have."""
    match = NAME_PATTERN.match(path.stem)
    if match is None:
        return None
    modality, channel, emotion, intensity, _, _, actor = match.groups()
    for code, table, field in ((modality, MODALITIES, "modality"),
                               (channel, VOCAL_CHANNELS, "vocal channel"),
                               (emotion, EMOTIONS, "emotion"),
                               (intensity, INTENSITIES, "intensity")):
        if code not in table:
            known = ", ".join(f"{k} {v}" for k, v in table.items())
            raise AvstanError(f"{path}: unknown {field} code {code}; RAVDESS has {known}; "
                              "fix the name or move the file out")
    return {"modality": modality, "category": EMOTIONS[emotion],
            "intensity": INTENSITIES[intensity], "speaker": f"Actor_{actor}",
            "utterance": path.stem[3:]}


def find_recordings(root: Path) -> list[RecordingSource]:
    """The utterances under ``root``, sorted by name (layout: the module docstring)."""
    root = check_folder(root)
    files = media_files(root)
    skipped, parsed = [], []
    for path in files:
        fields = parse_name(path)
        if fields is None:
            skipped.append(path)
        else:
            parsed.append((path, fields))
    warn_skipped(root, skipped, SCHEME)
    holding = {path.parent for path in files}
    warn_empty_folders(root, [folder for folder in root.rglob("*") if folder.is_dir()
                              and SPEAKER_FOLDER.match(folder.name) and folder not in holding
                              and not any(p.is_relative_to(folder) for p in holding)],
                       "speaker")
    recordings = [utterance(path.stem, "", path, fields["speaker"], fields["category"],
                            fields["intensity"]) for path, fields in parsed]
    for recording, (_, fields) in zip(recordings, parsed, strict=True):
        recording.extra["utterance"] = fields["utterance"]
        recording.extra["has_audio"] = fields["modality"] != "02"
    return finish_by_speaker(recordings, root, "ravdess", EXPECTED, default_partition)
