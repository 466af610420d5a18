"""Progress of long work: a bar on a terminal, a few plain lines anywhere else.

tqdm redraws its bar with carriage returns; in a log (CI, ``nohup``, ``make demo > log``)
every redraw becomes a line, and a demo's log grew to 1.5 MB. :func:`progress_bar`
therefore gives tqdm's bar only when its stream is a terminal; otherwise a
:class:`PlainProgress` that writes one line when the work starts, at each further quarter
and at the end (``preparing: 12/48 rec``), flushed, with no carriage return.

At the bottom of the package (imports tqdm only), so every stage reports the same way.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm.auto import tqdm


def on_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (standard error by default) is a terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class PlainProgress:
    """tqdm's ``update``/``close`` interface as a few plain lines (see the module docstring)."""

    def __init__(self, total: int, desc: str, unit: str, initial: int = 0,
                 stream: TextIO | None = None, parts: int = 4) -> None:
        self.total, self.desc, self.unit = int(total), desc, unit
        self.count, self.stream, self.parts = int(initial), stream, parts
        self.start = time.monotonic()
        self.closed = False
        self._last_part = self.count * parts // max(self.total, 1)
        self._line()

    def _line(self) -> None:
        elapsed = time.monotonic() - self.start
        print(f"{self.desc}: {self.count}/{self.total} {self.unit} ({elapsed:.0f} s)",
              file=self.stream or sys.stderr, flush=True)

    def update(self, count: int = 1) -> None:
        self.count += count
        if self.count >= self.total:
            return  # the last line is written by close()
        quarter = self.count * self.parts // self.total
        if quarter > self._last_part:
            self._last_part = quarter
            self._line()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._line()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_bar(total: int, desc: str, unit: str = "rec", initial: int = 0,
                 enabled: bool = True, stream: TextIO | None = None, leave: bool = True):
    """A progress display with tqdm's ``update``/``close`` (and a context manager): tqdm's
    bar on a terminal, :class:`PlainProgress` elsewhere, nothing when not ``enabled``."""
    if enabled and not on_terminal(stream):
        return PlainProgress(total, desc, unit, initial, stream)
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled,
                leave=leave, file=stream)
