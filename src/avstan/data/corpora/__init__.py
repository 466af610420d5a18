"""Corpus readers by layout name, and detection of the layout of a folder.

``find_corpus(root)`` returns ``(layout, recordings)``: each recording a
:class:`~avstan.data.corpora.base.RecordingSource` with its partition, media (or frame
folder) and a label reader. The layouts are described in each reader's module docstring.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from avstan.data.corpora import (
    afewva,
    affwild2,
    avec2017,
    cremad,
    generic,
    mead,
    ravdess,
    recola,
)
from avstan.data.corpora.base import LabelTrack, RecordingSource, resample_labels
from avstan.data.corpora.common import check_folder
from avstan.errors import AvstanError

LAYOUTS: dict[str, Callable[[Path], list[RecordingSource]]] = {
    "recola": recola.find_recordings,
    "avec2017": avec2017.find_recordings,
    "affwild2": affwild2.find_recordings,
    "afewva": afewva.find_recordings,
    "ravdess": ravdess.find_recordings,
    "cremad": cremad.find_recordings,
    "mead": mead.find_recordings,
    "generic": generic.find_recordings,
}
# Corpus-specific layouts are recognised by their own files; generic is the fallback.
_SPECIFIC = {
    "recola": recola.looks_like,
    "avec2017": avec2017.looks_like,
    "affwild2": affwild2.looks_like,
    "afewva": afewva.looks_like,
    "ravdess": ravdess.looks_like,
    "cremad": cremad.looks_like,
    "mead": mead.looks_like,
}

__all__ = ["LAYOUTS", "LabelTrack", "RecordingSource", "detect_layout", "find_corpus",
           "resample_labels"]


def _known() -> str:
    return ", ".join(LAYOUTS)


def detect_layout(root: Path) -> str:
    """The layout whose files are in ``root``: a corpus-specific one if exactly one
    matches, else ``generic`` if there is any media file; AvstanError otherwise."""
    root = check_folder(root)
    matches = [name for name, looks_like in _SPECIFIC.items() if looks_like(root)]
    if len(matches) > 1:
        raise AvstanError(f"{root}: looks like several corpora ({', '.join(matches)}); "
                          "point to one corpus's folder or name the layout")
    if matches:
        return matches[0]
    if generic.looks_like(root):
        return "generic"
    raise AvstanError(f"{root}: matches none of the known layouts ({_known()}); no video or "
                      "audio file found; check the folder")


def find_corpus(root: Path, layout: str = "auto") -> tuple[str, list[RecordingSource]]:
    """``(layout, recordings sorted by name)``; ``layout="auto"`` detects it."""
    root = Path(root)
    if layout != "auto" and layout not in LAYOUTS:
        raise AvstanError(f"{root}: unknown corpus layout '{layout}'; use auto or one of "
                          f"{_known()}")
    if layout == "auto":
        layout = detect_layout(root)
    return layout, LAYOUTS[layout](root)
