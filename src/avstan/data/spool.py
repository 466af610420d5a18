"""Rows kept on disk while a long recording is worked through, so memory stays flat.

A 60-minute video at 4 steps/s has 14 400 face crops (390 MiB at S = 96) and, for the
overlay, as many attention maps; ``prepare`` and ``predict`` append them here one step at a
time instead of holding them, and read them back a clip or a block at a time.

A :class:`RowSpool` is one temporary file per array, opened in a folder on the disk the
output goes to (the store folder, the predictions folder: not ``/tmp``, which may be
memory) and unlinked at once: it has no name, so nothing is left behind however the
process ends (even ``kill -9``), and it is gone when closed or garbage-collected. Reads
use ``pread`` into fresh arrays (no memory map, whose pages would count as resident), and
a full disk is the ordinary ``OSError`` (ENOSPC) of the write. A spool belongs to the
process that made it (it cannot be pickled); the local pool and Ray tasks each write
their own.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

# A read of a few scattered rows spanning more than this many rows reads them one by one.
SPAN_LIMIT = 256


class RowSpool:
    """Rows of one shape and dtype appended to an anonymous temporary file in ``folder``.

    ``spool[i]``, ``spool[a:b]`` and ``spool[indices]`` read rows back as arrays
    (``indices``: any int array, repeats allowed); ``len``, ``shape``, ``dtype`` and
    ``ndim`` are those of the (rows, *row_shape) array it stands for.
    """

    def __init__(self, row_shape: tuple[int, ...], dtype, folder: str | Path) -> None:
        self.row_shape = tuple(int(n) for n in row_shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        self.rows = 0
        handle, name = tempfile.mkstemp(dir=folder, prefix=".avstan-spool-")
        os.unlink(name)  # nameless: it lives while it is open and can never be left behind
        self._fd: int | None = handle

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.rows, *self.row_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.row_shape)

    def __len__(self) -> int:
        return self.rows

    def append(self, rows: np.ndarray) -> None:
        """Add ``rows`` (k, *row_shape), or one row (*row_shape), at the end."""
        data = np.ascontiguousarray(rows, dtype=self.dtype)
        if data.shape == self.row_shape:
            data = data[None]
        if data.shape[1:] != self.row_shape:
            raise ValueError(f"rows of shape {self.row_shape} expected, got {data.shape[1:]}")
        view = memoryview(data.reshape(-1).view(np.uint8))
        offset = self.rows * self.row_bytes
        while len(view):
            written = os.pwrite(self._handle(), view, offset)
            view, offset = view[written:], offset + written
        self.rows += data.shape[0]

    def read(self, first: int, count: int) -> np.ndarray:
        """Rows ``first`` … ``first + count - 1`` as a (count, *row_shape) array."""
        if first < 0 or count < 0 or first + count > self.rows:
            raise IndexError(f"rows {first}…{first + count - 1} of a spool of {self.rows}")
        out = np.empty((count, *self.row_shape), dtype=self.dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))
        offset = first * self.row_bytes
        while len(view):
            got = os.preadv(self._handle(), [view], offset)
            if got == 0:
                raise OSError(f"the spool file ended {len(view)} bytes early")
            view, offset = view[got:], offset + got
        return out

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, slice):
            start, stop, step = index.indices(self.rows)
            return self.read(start, max(0, stop - start))[::step]
        steps = np.asarray(index)
        if steps.ndim == 0:
            step = int(steps)
            return self.read(step + self.rows if step < 0 else step, 1)[0]
        steps = np.where(steps < 0, steps + self.rows, steps).astype(np.int64)
        if steps.size == 0:
            return np.empty((0, *self.row_shape), dtype=self.dtype)
        wanted, rows = np.unique(steps, return_inverse=True)
        first, last = int(wanted[0]), int(wanted[-1])
        if last - first + 1 <= max(SPAN_LIMIT, 2 * wanted.size):
            block = self.read(first, last - first + 1)[wanted - first]
        else:
            block = np.stack([self.read(int(i), 1)[0] for i in wanted])
        return block[rows.reshape(steps.shape)]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self.read(0, self.rows)
        return whole if dtype is None else whole.astype(dtype)

    def remapped(self, index: np.ndarray) -> RemappedRows:
        """The rows ``index`` (M,) picks, as an array-like of M rows (nothing is copied)."""
        return RemappedRows(self, index)

    def _handle(self) -> int:
        if self._fd is None:
            raise ValueError("the spool is closed")
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()

    def __getstate__(self):
        raise TypeError("a RowSpool stays in the process that wrote it; read its rows out "
                        "before sending them elsewhere")


class RemappedRows:
    """``rows[index[i]]`` for each i, read on demand: the steps of a recording whose face
    was not found take the nearest found step's crop without a copy of it being kept."""

    def __init__(self, rows: RowSpool, index: np.ndarray) -> None:
        self.rows = rows
        self.index = np.asarray(index, dtype=np.int64)
        self.dtype = rows.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return (int(self.index.size), *self.rows.row_shape)

    @property
    def ndim(self) -> int:
        return self.rows.ndim

    def __len__(self) -> int:
        return int(self.index.size)

    def __getitem__(self, index) -> np.ndarray:
        return self.rows[self.index[index]]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self.rows[self.index]
        return whole if dtype is None else whole.astype(dtype)

    def close(self) -> None:
        self.rows.close()


def nearest_found(found: np.ndarray) -> np.ndarray:
    """For each step, the nearest step with ``found`` True (the earlier one on ties):
    (N,) int64. ``found`` must hold at least one True."""
    found = np.asarray(found, dtype=bool)
    indices = np.flatnonzero(found)
    if indices.size == 0:
        raise ValueError("no step is found")
    steps = np.arange(found.size)
    after = np.minimum(np.searchsorted(indices, steps), indices.size - 1)
    before = np.maximum(after - 1, 0)
    take_before = np.abs(steps - indices[before]) <= np.abs(indices[after] - steps)
    return np.where(take_before, indices[before], indices[after])
