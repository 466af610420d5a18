"""Keep the C heap from growing with the length of a run (glibc).

glibc serves a large ``malloc`` from a fresh memory map until the sizes freed teach it
otherwise: each time a mapped block is freed it raises its threshold (up to 32 MiB) and
serves later blocks of that size from the heap, where the model's per-batch tensors (tens
of MiB, freed and made again every batch) then leave holes that the heap never gives
back. Peak memory so creeps up with the number of batches: measured on ``avstan
predict`` of a 10-minute video (benchmarks/long_video.py), +130 MiB over a 1-minute one,
and none (1310 vs 1304 MiB) with the threshold fixed at 1 MiB, at the same speed.
:func:`fix_mmap_threshold` fixes it (which also turns glibc's adjustment off); the
environment variable ``MALLOC_MMAP_THRESHOLD_``, when set, is the user's choice and is
left alone. Elsewhere (musl, macOS, Windows) it does nothing.

It is for the commands that work through long videos (``prepare``, ``predict``, and their
Ray tasks), not for ``train``: each large tensor then gets a fresh memory map whose pages
the kernel zeroes, which costs training time (sta3d at S = 64, batch 16, 2 cores: 2.56 →
2.97 s a step, system time 24 → 35 s over 13 steps), while training's memory is already
bounded by its batch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_MMAP_THRESHOLD = -3  # mallopt's parameter number in glibc's malloc.h
MMAP_THRESHOLD = 1 << 20  # bytes: blocks this large or larger get their own memory map

_done = False


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold for this process (and the processes it forks); True
    when it was set, False where it does not apply or the user set it already."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _done = mallopt(M_MMAP_THRESHOLD, int(threshold)) == 1
    return _done
