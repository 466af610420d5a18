"""data.spool: rows kept on disk for long recordings, and the store writer that reads them."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avstan.data.corpora.base import RecordingSource
from avstan.data.faces import FaceAligner
from avstan.data.prepare import PrepareConfig, fill_missing_frames, prepare_recording
from avstan.data.spool import SPAN_LIMIT, RowSpool, nearest_found
from avstan.data.store import Recording, read_recording, write_recording

MEDIA = Path(__file__).resolve().parent / "media"


def filled_spool(folder, rows=600, shape=(4, 5), seed=0):
    values = np.random.default_rng(seed).normal(size=(rows, *shape)).astype(np.float32)
    spool = RowSpool(shape, np.float32, folder)
    for start in range(0, rows, 7):  # appended in uneven pieces, and one row on its own
        spool.append(values[start:start + 7] if start else values[0])
        if not start:
            spool.append(values[1:7])
    return spool, values


def test_rows_read_back_as_numpy_indexes_the_array(tmp_path):
    spool, values = filled_spool(tmp_path)
    assert spool.shape == values.shape and len(spool) == len(values) and spool.ndim == 3
    np.testing.assert_array_equal(np.asarray(spool), values)
    np.testing.assert_array_equal(spool[17], values[17])
    np.testing.assert_array_equal(spool[-1], values[-1])
    np.testing.assert_array_equal(spool[100:140], values[100:140])
    np.testing.assert_array_equal(spool[10:90:3], values[10:90:3])
    np.testing.assert_array_equal(spool[590:700], values[590:700])
    near = np.array([[5, 5, 6], [9, 4, 4]])  # a clip's window indices, repeats included
    np.testing.assert_array_equal(spool[near], values[near])
    scattered = np.array([0, SPAN_LIMIT * 2 + 3, 7, 599, 7])  # read one by one
    np.testing.assert_array_equal(spool[scattered], values[scattered])
    np.testing.assert_array_equal(spool[np.array([-2, 3])], values[[-2, 3]])
    with pytest.raises(IndexError):
        spool[600]
    with pytest.raises(ValueError, match="rows of shape"):
        spool.append(np.zeros((2, 5, 4), np.float32))


def test_a_spool_leaves_no_file_and_stays_in_its_process(tmp_path):
    spool, _ = filled_spool(tmp_path)
    assert list(tmp_path.iterdir()) == []  # nameless from the start
    with pytest.raises(TypeError, match="stays in the process"):
        pickle.dumps(spool)
    remapped = spool.remapped(np.array([3, 3, 0]))
    np.testing.assert_array_equal(remapped[1:], np.asarray(spool)[[3, 0]])
    spool.close()
    with pytest.raises(ValueError, match="closed"):
        spool[0]


def test_nearest_found_is_the_closest_found_step_earlier_on_ties():
    rng = np.random.default_rng(1)
    for _ in range(200):
        found = rng.random(int(rng.integers(1, 40))) < rng.random()
        if not found.any():
            found[rng.integers(found.size)] = True
        indices = np.flatnonzero(found)
        # independent: the brute-force distance matrix (argmin takes the first minimum)
        brute = indices[np.abs(np.arange(found.size)[:, None] - indices[None, :]).argmin(1)]
        np.testing.assert_array_equal(nearest_found(found), brute)
    with pytest.raises(ValueError):
        nearest_found(np.zeros(3, bool))


def test_fill_missing_frames_on_a_long_recording_is_linear_in_memory():
    # The old distance matrix needed N × F int64s: 1.7 GB for a 60-minute video.
    frames = [None] * 20_000
    frames[5] = np.ones((2, 2, 3), np.uint8)
    frames[19_000] = np.full((2, 2, 3), 2, np.uint8)
    filled = fill_missing_frames(frames)
    assert filled[0, 0, 0, 0] == 1 and filled[9_502, 0, 0, 0] == 1
    assert filled[9_503, 0, 0, 0] == 2 and filled[-1, 0, 0, 0] == 2


def test_crops_spooled_to_disk_give_the_recording_made_in_memory(tmp_path):
    """prepare's crops in a spool (the store folder) equal those it kept in a list,
    missing faces included, and the file written from either is the same."""
    source = RecordingSource("leaves", "train", media=MEDIA / "face_noface.mov")
    config = PrepareConfig(crop_size=48)
    in_memory = prepare_recording(source, config, aligner=FaceAligner(crop_size=48))
    spooled = prepare_recording(source, config, aligner=FaceAligner(crop_size=48),
                                spool_folder=tmp_path)
    assert not in_memory.face_found.all() and in_memory.face_found.any()
    assert isinstance(in_memory.frames, np.ndarray) and not isinstance(spooled.frames,
                                                                       np.ndarray)
    np.testing.assert_array_equal(np.asarray(spooled.frames), in_memory.frames)
    write_recording(tmp_path / "memory.h5", in_memory)
    write_recording(tmp_path / "spool.h5", spooled)
    spooled.frames.close()
    one, other = read_recording(tmp_path / "memory.h5"), read_recording(tmp_path / "spool.h5")
    np.testing.assert_array_equal(one.frames, other.frames)
    np.testing.assert_array_equal(one.landmarks, other.landmarks)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memory.h5", "spool.h5"]


def test_frames_are_written_in_blocks_from_any_frames_and_read_back_intact(tmp_path):
    from avstan.data import store

    rng = np.random.default_rng(2)
    count = store.WRITE_BLOCK * 2 + 5  # three blocks, the last one short
    frames = rng.integers(0, 256, (count, 8, 8, 3), dtype=np.uint8)
    spool = RowSpool((8, 8, 3), np.uint8, tmp_path)
    spool.append(frames)
    recording = Recording("r", spool, np.arange(count) / 4.0, np.ones(count, bool),
                          np.zeros((count, 2), np.float32))
    write_recording(tmp_path / "r.h5", recording)
    back = read_recording(tmp_path / "r.h5")
    np.testing.assert_array_equal(back.frames, frames)
    lazy = read_recording(tmp_path / "r.h5", lazy_frames=True)
    write_recording(tmp_path / "copy.h5", lazy)  # from the frames left in a file
    np.testing.assert_array_equal(read_recording(tmp_path / "copy.h5").frames, frames)
    assert oct(os.stat(tmp_path / "r.h5").st_mode & 0o777) == oct(0o666 & ~current_umask())


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FULL_DISK_SCRIPT = """
import errno, sys
import numpy as np
from avstan.data.store import Recording, write_recording
count = 400
frames = np.random.default_rng(0).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
recording = Recording("r", frames, np.arange(count) / 4.0, np.ones(count, bool),
                      np.zeros((count, 2), np.float32))
try:
    write_recording(sys.argv[1] + "/r.h5", recording)
except OSError as error:
    print("ENOSPC" if error.errno == errno.ENOSPC else error, error.filename)
"""


def test_a_full_disk_is_one_oserror_no_crash_and_no_temporary_file(tmp_path):
    """HDF5 writing a file on a full disk used to crash at exit (segmentation fault)."""
    from tests.conftest import mount_small_tmpfs

    mount_point = mount_small_tmpfs(tmp_path / "small", "200k")
    try:
        done = subprocess.run([sys.executable, "-c", FULL_DISK_SCRIPT, str(mount_point)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr  # no segmentation fault at exit
        assert done.stdout.split() == ["ENOSPC", str(mount_point / "r.h5")], done.stdout
        assert list(mount_point.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
