"""Writing files safely: atomic writes, report files, writable output folders.

Every file avstan writes (recording stores, model files, CSV, PNG, HTML, MP4, ONNX) goes
through here, so two rules hold everywhere:

* **Atomic**: a file is written under a temporary name in its own folder and renamed into
  place, so a reader never sees half a file and an interrupted run loses nothing already
  written. A failed write leaves no temporary file behind.
* **Ordinary permissions**: the file gets the mode a plain ``open(path, "w")`` would give
  it under the user's umask (usually ``-rw-r--r--``), not the ``-rw-------`` of the
  temporary file ``tempfile.mkstemp`` creates.

This module sits at the bottom of the package (it imports only :mod:`avstan.errors`), so
every layer may use it.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from avstan.errors import AvstanError

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask (read by setting and restoring it; serialised by a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: 0o666 less the umask."""
    return 0o666 & ~current_umask()


TEMPORARY_HEAD = 100  # characters of a file's name in its temporary name


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that needs a file name (HDF5, FFmpeg).

    On normal exit the temporary file gets ordinary permissions and replaces ``path``; on
    any exception (or interrupt) it is removed and ``path`` is left as it was.
    """
    path = Path(path)
    # the name's head only: a long name plus the random part and suffix would pass the
    # file system's limit on a name (255 bytes) where the name itself does not
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:TEMPORARY_HEAD]}.",
                                suffix=suffix)
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, default_file_mode())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename); ordinary mode."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


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


def ensure_writable_folder(folder: str | Path, what: str) -> Path:
    """Create ``folder`` if needed and check that a file can be written in it; otherwise one
    AvstanError naming it (``what``: e.g. "the recording store")."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise AvstanError(f"{folder}: cannot write {what} here ({exc.strerror}); "
                          "choose a writable folder") from None
    return folder


@contextmanager
def exclusive_output(folder: str | Path, what: str, command: str) -> Iterator[Path]:
    """Hold ``folder`` (created if needed) for one run: an exclusive OS lock (``flock``) on
    the folder itself, which dies with the process, so a killed run leaves no stale lock,
    and which writes nothing into the folder (not a byte on a full disk). A second run
    into the same folder stops at once with one AvstanError naming the folder and the
    process that holds it (found in ``/proc/locks`` on Linux). The folders this run created
    (the output and missing parents) are removed again if the run leaves nothing in them (a
    run that failed before writing)."""
    import fcntl

    folder = Path(folder)
    # the folders this run makes: the output and any missing parents (``a/b`` of a/b/c)
    created = []
    missing = folder
    while not missing.exists() and missing != missing.parent:
        created.append(missing)
        missing = missing.parent
    ensure_writable_folder(folder, what)
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise AvstanError(f"{folder}: another avstan run is writing {what} here "
                          f"({lock_holder(folder)}); wait for it to end or choose another "
                          "folder") from None
    try:
        yield folder
    finally:
        os.close(descriptor)  # releases the lock
        for made in created:  # innermost first; only empty ones: a run that wrote nothing
            try:              # leaves no folder behind
                made.rmdir()
            except OSError:
                break


def lock_holder(path: Path) -> str:
    """"process N: COMMAND LINE" of the process holding an ``flock`` on ``path``, from
    ``/proc/locks``; "another process" where that cannot be read."""
    try:
        info = os.stat(path)
        wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if "FLOCK" in fields and wanted in fields:
                pid = fields[fields.index(wanted) - 1]
                words = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                command = " ".join(words.replace("\0", " ").split())  # on one line
                return f"process {pid}: {command[:120]}"
    except (OSError, ValueError, IndexError):
        pass
    return "another process"
