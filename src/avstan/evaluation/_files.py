"""Atomic writing of report files (plots, tables), with one clear error for a bad folder."""

from __future__ import annotations

from pathlib import Path

from avstan.data.store import atomic_write_bytes
from avstan.errors import AvstanError


def write_report_file(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, creating the parent folder if needed.

    Raises:
        AvstanError: naming ``path`` if the folder cannot be created or written to.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
    except OSError as error:
        raise AvstanError(
            f"cannot write {path}: {error.strerror or error}; "
            "choose an output folder you can write to"
        ) from None
    return path
