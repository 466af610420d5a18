"""What the corpus readers share: walking a corpus folder, numbers in label files, the
optional ``split.csv``, and the checks every reader ends with (no duplicate names, not
empty). Everything raises AvstanError naming the file."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

from avstan.data.corpora.base import AUDIO_SUFFIXES, VIDEO_SUFFIXES, RecordingSource
from avstan.errors import AvstanError

PARTITION_ALIASES = {
    "train": "train", "training": "train",
    "devel": "devel", "dev": "devel", "development": "devel",
    "validation": "devel", "valid": "devel", "val": "devel",
    "test": "test", "testing": "test",
}
SPLIT_FILE = "split.csv"


def check_folder(root: Path) -> Path:
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise AvstanError(f"{root}: a file, not a folder; pass the folder that holds the corpus "
                          "(its videos, audio and label files)")
    if not root.is_dir():
        raise AvstanError(f"{root}: no such folder; pass the folder that holds the corpus")
    return root


def walk_files(root: Path, suffixes: Iterable[str] | None = None) -> list[Path]:
    """Files under ``root`` (recursively, following links), sorted; hidden files and folders
    (``.git``, macOS ``._name`` copies) are skipped. ``suffixes`` are lower-case. Each real
    folder is visited once, however many links lead to it: a link loop (``a/b -> ..``) or
    two links to one folder do not list its files again."""
    wanted = None if suffixes is None else tuple(suffixes)
    found = []
    seen: set[tuple[int, int]] = set()
    for folder, folders, files in os.walk(root, followlinks=True):
        try:
            info = os.stat(folder)
        except OSError:
            folders[:] = []
            continue
        if (info.st_dev, info.st_ino) in seen:  # reached again through a link
            folders[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        # real folders before links, so a folder is named by its own path where it can be
        folders[:] = sorted((name for name in folders if not name.startswith(".")),
                            key=lambda name: (os.path.islink(os.path.join(folder, name)), name))
        for name in files:
            if name.startswith("."):
                continue
            if wanted is None or os.path.splitext(name)[1].lower() in wanted:
                found.append(Path(folder) / name)
    return sorted(found)


def media_files(root: Path) -> list[Path]:
    return walk_files(root, VIDEO_SUFFIXES + AUDIO_SUFFIXES)


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def video_and_audio(name: str, paths: list[Path]) -> tuple[Path | None, Path | None]:
    """A recording's one video and one audio file among ``paths`` (either may be None);
    two of a kind under one recording name is one AvstanError naming both."""
    videos = [path for path in paths if is_video(path)]
    audios = [path for path in paths if not is_video(path)]
    if len(videos) > 1 or len(audios) > 1:
        clash = videos if len(videos) > 1 else audios
        raise AvstanError(f"{clash[1]}: recording name '{name}' is also used by {clash[0]}; "
                          "remove or rename one of them")
    return (videos[0] if videos else None), (audios[0] if audios else None)


def index_by_name(paths: Iterable[Path],
                  name_of: Callable[[Path], str] = lambda path: path.stem) -> dict[str, Path]:
    """``{name_of(path): path}`` (default: the file name without suffix); two files with one
    name raise AvstanError naming both."""
    index: dict[str, Path] = {}
    for path in paths:
        name = name_of(path)
        if name in index:
            raise AvstanError(f"{path}: recording name '{name}' is also used by {index[name]}; "
                              "remove or rename one of them")
        index[name] = path
    return index


def partition_name(text: str, where: str) -> str:
    partition = PARTITION_ALIASES.get(text.strip().lower())
    if partition is None:
        raise AvstanError(f"{where}: unknown partition '{text.strip()}'; use train, devel "
                          "or test")
    return partition


def read_lines(path: Path) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AvstanError(f"{path}: cannot read the file ({exc.__class__.__name__}); check "
                          "that it is a readable text file") from None


def parse_number(text: str, where: str, missing_is_nan: bool = False) -> float:
    """A finite float; with ``missing_is_nan`` an empty cell or ``nan`` reads as NaN (not
    annotated). Anything else raises AvstanError naming ``where`` (file and line)."""
    text = text.strip().strip("'\"")
    if missing_is_nan and text.lower() in ("", "nan"):
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise AvstanError(f"{where}: '{text}' is not a number; fix the file") from None
    if not math.isfinite(value):
        raise AvstanError(f"{where}: '{text}' is not a finite number; every row needs a "
                          "value (remove the row or fill it in)")
    return value


def split_name(text: str) -> str:
    """A recording name as written in split.csv: ``a/b`` and ``a__b`` are the same."""
    text = text.strip().replace("\\", "/")
    return "__".join(part for part in text.split("/") if part)


def read_split(root: Path) -> dict[str, str] | None:
    """``root/split.csv`` (``recording,partition`` per line, optional header) as
    ``{recording: partition}``; None when the file does not exist."""
    path = Path(root) / SPLIT_FILE
    if not path.is_file():
        return None
    split: dict[str, str] = {}
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [field.strip() for field in line.split(";" if ";" in line else ",")]
        if not split and [f.lower() for f in fields] in (["recording", "partition"],
                                                         ["speaker", "partition"]):
            continue
        if len(fields) != 2 or not fields[0]:
            raise AvstanError(f"{path}, line {number}: expected 'recording,partition', got "
                              f"'{line.strip()}'")
        name = split_name(fields[0])
        if name in split:
            raise AvstanError(f"{path}, line {number}: recording '{name}' is listed twice; "
                              "keep one line per recording")
        split[name] = partition_name(fields[1], f"{path}, line {number}")
    return split


def split_partition(split: dict[str, str] | None, name: str, root: Path) -> str:
    """The partition of ``name``: train when there is no split.csv; a split.csv that
    lacks the recording raises AvstanError (a forgotten line must not go silently to train)."""
    if split is None:
        return "train"
    if name not in split:
        raise AvstanError(f"{Path(root) / SPLIT_FILE}: no line for recording '{name}'; add "
                          f"'{name},train' (or devel, test)")
    return split[name]


def warn_unused_split_lines(split: dict[str, str] | None,
                            recordings: Iterable[RecordingSource], root: Path) -> None:
    """Warn, naming split.csv, about its lines for recordings the corpus does not have (a
    renamed or removed file, a typo): they are ignored."""
    if not split:
        return
    unused = sorted(set(split) - {r.name for r in recordings})
    if unused:
        shown = ", ".join(unused[:5]) + (f" and {len(unused) - 5} more" if len(unused) > 5
                                         else "")
        warnings.warn(f"{Path(root) / SPLIT_FILE}: names recordings the corpus does not have "
                      f"({shown}); those lines are ignored — check the names", stacklevel=3)


def finish(recordings: list[RecordingSource], root: Path, layout: str,
           expected: str) -> list[RecordingSource]:
    """Sorted by name; an empty result or a repeated name raise AvstanError."""
    if not recordings:
        raise AvstanError(f"{root}: no {layout} recordings found; expected {expected}")
    seen: dict[str, RecordingSource] = {}
    for recording in recordings:
        if recording.name in seen:
            first = seen[recording.name]
            raise AvstanError(f"{recording.media or recording.frames_dir}: recording name "
                              f"'{recording.name}' is also used by "
                              f"{first.media or first.frames_dir}; remove or rename one")
        seen[recording.name] = recording
    return sorted(recordings, key=lambda r: r.name)
