"""avstan.io: atomic writes leave nothing half-written, and files get ordinary permissions."""

import os
import stat

import pytest

from avstan.errors import AvstanError
from avstan.io import atomic_path, atomic_write_bytes, ensure_writable_folder, write_report_file


@pytest.fixture
def umask():
    """Set a umask for one test and restore the old one after it."""
    previous = os.umask(0o022)
    os.umask(previous)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_atomic_write_gives_the_mode_plain_open_gives(tmp_path, umask, mask):
    umask(mask)
    atomic_write_bytes(tmp_path / "atomic.csv", b"a,b\n")
    with open(tmp_path / "plain.csv", "w") as handle:
        handle.write("a,b\n")
    assert _mode(tmp_path / "atomic.csv") == _mode(tmp_path / "plain.csv") == 0o666 & ~mask
    assert (tmp_path / "atomic.csv").read_bytes() == b"a,b\n"


def test_atomic_path_replaces_only_on_success(tmp_path):
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_bytes(b"half")
            raise RuntimeError("writer failed")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no temporary left
    with atomic_path(target) as temporary:
        temporary.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_write_report_file_creates_folders_and_names_an_unwritable_one(tmp_path):
    written = write_report_file(tmp_path / "a" / "b" / "report.md", b"# hi\n")
    assert written.read_bytes() == b"# hi\n"
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(AvstanError, match="cannot write .*file/report.md"):
        write_report_file(blocker / "report.md", b"x")
    with pytest.raises(AvstanError, match="cannot write the predictions here"):
        ensure_writable_folder(blocker / "out", "the predictions")
