"""Helpers for the corpus reader tests: fixtures are built file by file in tmp_path."""

from pathlib import Path

import pytest

from avstan.errors import AvstanError


def write(path: Path, text: str | bytes = b"not decoded") -> Path:
    """Write a file, creating its folders (media files are placeholders: readers never
    decode them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def error_message(call, *args) -> str:
    """The message of the AvstanError that ``call(*args)`` raises; it must be one line."""
    with pytest.raises(AvstanError) as info:
        call(*args)
    message = str(info.value)
    assert "\n" not in message
    return message
