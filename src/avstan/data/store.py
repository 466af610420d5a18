"""The recording store: one HDF5 file per recording plus a JSON manifest per corpus.

Every source (the synthetic corpus, real videos, audio) writes this format and everything
downstream reads it. Per recording, on the model's step timeline (4 steps/s by default):

    frames          (N, S, S, 3) uint8    aligned face crops, RGB; absent for audio-only sources
    times           (N,)         float64  seconds from the start of the source
    face_found      (N,)         bool     False where no face was detected (frame = nearest found)
    labels          (N, 2)       float32  valence, arousal; NaN where unknown
    audio_features  (N, D)       float32  optional, e.g. eGeMAPS functionals
    salient_mask    (N, S, S)    bool     optional, ground-truth salient regions (synthetic only)
    landmarks       (N, 68, 2)   float32  optional, facial landmarks in crop pixels (NaN: no face)
    frame_times     (N,)         float64  optional, timestamp of the source frame each step took
    alignment_matrices (N, 2, 3) float32  optional, the similarity transform from source-frame
                                          pixels (x, y, 1) to crop pixels (NaN: no face)
    aligned_from    (N,)         uint8    optional, what each step's crop was aligned from:
                                          an index into ALIGNED_FROM (0: no face)
    expressions     (N,)         int8     optional, an expression category per step, an index
                                          into data.corpora.images.EXPRESSIONS (-1: unknown)
    image_names     (N,)         bytes    optional, image stores: the image each step is

An **image store** (``attrs["kind"] == "images"``, written by ``data.images``) holds labelled
face images instead of videos: each recording is a shard of a few thousand images of one
partition, one image per step (the step rate is that of the video a model trained on them
will read, prepare's ``--step-rate``, and ``times`` the images' indices over it), so the
same atomic, checksummed, resumable files and the same clip datasets serve them.

and, optionally, the corpus's own gold standard on its own timeline (what AVEC scores on;
absent for the synthetic corpus, whose step labels are the truth):

    gold_times      (M,)         float64  seconds, the corpus's label times (RECOLA: 40 ms)
    gold_labels     (M, 2)       float32  valence, arousal at those times; NaN where a target
                                          has no value there (one target not annotated, or
                                          the targets annotated at different times: M is
                                          then the union of their times)

and attributes ``step_rate`` (steps per second), ``source``, ``corpus``, ``partition``,
``crop_size``, ``store_version`` and, for aligned crops, ``alignment_template`` (JSON: the
eye-centre and nose-tip positions in units of the crop size) and ``face_detector`` (the
detector that searched its frames: yunet or hog).

Writes are atomic: a file is written under a temporary name in the same folder and then
renamed, so a reader never sees half a recording and an interrupted run loses nothing
already written. The manifest is rewritten the same way after every change. A recording
file is written on disk as it is built, the frames a block of steps at a time (from an
array, a file, or the ``data.spool`` a long video was sampled into), so writing a
60-minute recording needs no more memory than a short one. HDF5 writes through
:class:`_DiskFullSafeFile`: the first failed write (a full disk) is kept and every later
one dropped, so HDF5 closes its file normally and the writer then raises that one
ordinary ``OSError`` (ENOSPC) and removes the temporary file — never HDF5 failing while
it closes a file half on disk (which ends in a segmentation fault at exit). Every dataset
carries a Fletcher-32 checksum per chunk, so a damaged byte fails the read
(:func:`verify_recording` reads a whole file; ``prepare`` does so before it calls a
recording complete).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import h5py
import numpy as np

from avstan.data.spool import RemappedRows, RowSpool
from avstan.errors import AvstanError
from avstan.io import atomic_path, atomic_write_bytes, ensure_writable_folder
from avstan.targets import LABEL_NAMES
from avstan.typed_config import OneOf, Range, dataclass_from_dict

STORE_VERSION = 1
# aligned_from codes: no face; dlib's 68-point fit; the detector's five points (the fit
# being implausible); the corpus's own landmarks; for an image where the detector found no
# face, the 68-point fit made inside the image's own frame (data.images)
ALIGNED_FROM = ("no face", "68-point fit", "detector's points", "corpus landmarks",
                "fit in the image frame")
ANCHOR_CODES = {"landmarks": 1, "detector": 2, "corpus": 3, "frame": 4}  # anchors → code
PARTITIONS = ("train", "devel", "test")
# what prepare made of a recording (data.prepare.Outcome)
ENTRY_STATUSES = ("complete", "failed", "no_face", "disk_full")
MANIFEST_NAME = "manifest.json"


@dataclass
class Recording:
    """One recording on the step timeline; see the module docstring for the arrays."""

    name: str
    # (N, S, S, 3) uint8, or read on demand (StoredFrames: from its file; RemappedRows: from
    # the spool a long video was sampled into); None for an audio-only recording
    frames: np.ndarray | StoredFrames | RemappedRows | None
    times: np.ndarray  # (N,) float64
    face_found: np.ndarray  # (N,) bool
    labels: np.ndarray  # (N, 2) float32, valence/arousal, NaN where unknown
    step_rate: float = 4.0
    partition: str = "train"
    corpus: str = ""
    source: str = ""
    audio_features: np.ndarray | None = None  # (N, D) float32
    salient_mask: np.ndarray | None = None  # (N, S, S) bool
    landmarks: np.ndarray | None = None  # (N, 68, 2) float32, crop pixels
    frame_times: np.ndarray | None = None  # (N,) float64
    alignment_template: list | None = None  # [[x, y] × 3] in units of S
    alignment_matrices: np.ndarray | None = None  # (N, 2, 3) float32, source px → crop px
    gold_times: np.ndarray | None = None  # (M,) float64, the corpus's own label times
    gold_labels: np.ndarray | None = None  # (M, 2) float32 at gold_times, NaN where unknown
    aligned_from: np.ndarray | None = None  # (N,) uint8, index into ALIGNED_FROM
    face_detector: str = ""  # the detector that searched its frames ("": none)
    expressions: np.ndarray | None = None  # (N,) int8, expression index, -1 unknown
    image_names: np.ndarray | None = None  # (N,) bytes, image stores: each step's image

    def __post_init__(self) -> None:
        if self.frames is not None and not isinstance(self.frames, FRAMES_ON_DISK):
            self.frames = np.asarray(self.frames)
        if self.alignment_matrices is not None:
            self.alignment_matrices = np.asarray(self.alignment_matrices, dtype=np.float32)
        self.times = np.asarray(self.times, dtype=np.float64)
        self.face_found = np.asarray(self.face_found, dtype=bool)
        self.labels = np.asarray(self.labels, dtype=np.float32)
        if self.audio_features is not None:
            self.audio_features = np.asarray(self.audio_features, dtype=np.float32)
        if self.salient_mask is not None:
            self.salient_mask = np.asarray(self.salient_mask, dtype=bool)
        if self.landmarks is not None:
            self.landmarks = np.asarray(self.landmarks, dtype=np.float32)
        if self.frame_times is not None:
            self.frame_times = np.asarray(self.frame_times, dtype=np.float64)
        if self.gold_times is not None:
            self.gold_times = np.asarray(self.gold_times, dtype=np.float64)
        if self.gold_labels is not None:
            self.gold_labels = np.asarray(self.gold_labels, dtype=np.float32)
        if self.aligned_from is not None:
            self.aligned_from = np.asarray(self.aligned_from, dtype=np.uint8)
        if self.expressions is not None:
            self.expressions = np.asarray(self.expressions, dtype=np.int8)
        if self.image_names is not None:
            self.image_names = np.asarray(self.image_names, dtype=np.bytes_)

    @property
    def num_steps(self) -> int:
        return int(self.times.shape[0])

    def close_frames(self) -> None:
        """Release the spool file frames sampled into one are read from (``data.spool``);
        nothing for frames in memory or in a store file."""
        if isinstance(self.frames, (RowSpool, RemappedRows)):
            self.frames.close()

    @property
    def crop_size(self) -> int:
        """S of the face crops; 0 for an audio-only recording."""
        return 0 if self.frames is None else int(self.frames.shape[1])

    @property
    def has_video(self) -> bool:
        return self.frames is not None

    @property
    def has_audio(self) -> bool:
        return self.audio_features is not None

    @property
    def has_gold_track(self) -> bool:
        """True when the corpus's own gold standard (``gold_times``, ``gold_labels``) is kept."""
        return self.gold_times is not None

    def validate(self, where: str = "") -> None:
        """Raise AvstanError naming ``where`` (a file, or the recording) if shapes disagree."""
        where = where or f"recording {self.name!r}"
        problems = _shape_problems(
            None if self.frames is None else self.frames.shape,
            None if self.frames is None else self.frames.dtype, self.times.shape,
            self.face_found.shape,
            self.labels.shape,
            None if self.audio_features is None else self.audio_features.shape,
            None if self.salient_mask is None else self.salient_mask.shape,
        )
        if self.landmarks is not None and self.landmarks.shape[0] != self.num_steps:
            problems.append(f"landmarks must have {self.num_steps} rows, "
                            f"got {self.landmarks.shape}")
        if self.alignment_matrices is not None and \
                self.alignment_matrices.shape != (self.num_steps, 2, 3):
            problems.append(f"alignment_matrices must be ({self.num_steps}, 2, 3), "
                            f"got {self.alignment_matrices.shape}")
        if self.frames is None and self.audio_features is None:
            problems.append("a recording needs frames, audio_features or both")
        if self.aligned_from is not None and (
                self.aligned_from.shape != (self.num_steps,)
                or (self.aligned_from.size and self.aligned_from.max() >= len(ALIGNED_FROM))):
            problems.append(f"aligned_from must be ({self.num_steps},) codes below "
                            f"{len(ALIGNED_FROM)}, got {self.aligned_from.shape}")
        if self.frame_times is not None and self.frame_times.shape != (self.num_steps,):
            problems.append(f"frame_times must be ({self.num_steps},), "
                            f"got {self.frame_times.shape}")
        for optional in ("expressions", "image_names"):
            values = getattr(self, optional)
            if values is not None and values.shape != (self.num_steps,):
                problems.append(f"{optional} must be ({self.num_steps},), got {values.shape}")
        if not np.isfinite(self.times).all() or np.any(np.diff(self.times) <= 0):
            problems.append("times must be finite and strictly increasing")
        problems += _gold_problems(self.gold_times, self.gold_labels)
        if not (self.step_rate > 0):
            problems.append(f"step_rate must be positive, got {self.step_rate}")
        if self.partition not in PARTITIONS:
            problems.append(f"partition must be one of {PARTITIONS}, got {self.partition!r}")
        finite = self.labels[np.isfinite(self.labels)]
        if np.isinf(self.labels).any() or finite.size and (
                finite.min() < -1.0 - 1e-6 or finite.max() > 1.0 + 1e-6):
            problems.append("labels must lie in [-1, 1] (NaN where unknown, never ±inf)")
        if problems:
            raise AvstanError(f"{where}: " + "; ".join(problems) + "; re-create it with avstan")


def _shape_problems(frames, frames_dtype, times, face_found, labels, audio, mask) -> list[str]:
    problems = []
    if frames is None:  # audio-only: the timeline is the times array
        if len(times) != 1:
            return [f"times must be (N,), got {tuple(times)}"]
        n = times[0]
        if mask is not None:
            problems.append("an audio-only recording cannot have a salient mask")
        frames = (n, 0, 0, 3)
    else:
        if len(frames) != 4 or frames[3] != 3 or frames[1] != frames[2]:
            problems.append(f"frames must be (N, S, S, 3), got {tuple(frames)}")
            return problems
        if frames_dtype != np.uint8:
            problems.append(f"frames must be uint8, got {frames_dtype}")
        n = frames[0]
    if n == 0:
        problems.append("the recording has no steps")
    if tuple(times) != (n,):
        problems.append(f"times must be ({n},), got {tuple(times)}")
    if tuple(face_found) != (n,):
        problems.append(f"face_found must be ({n},), got {tuple(face_found)}")
    if tuple(labels) != (n, len(LABEL_NAMES)):
        problems.append(f"labels must be ({n}, {len(LABEL_NAMES)}), got {tuple(labels)}")
    if audio is not None and (len(audio) != 2 or audio[0] != n):
        problems.append(f"audio_features must be ({n}, D), got {tuple(audio)}")
    if mask is not None and len(mask) == 3 and mask[0] == n and \
            tuple(mask[1:]) != tuple(frames[1:3]):
        problems.append(f"frames are {frames[1]}×{frames[2]} px but the salient mask is "
                        f"{mask[1]}×{mask[2]}; one of them has the wrong size")
    elif mask is not None and tuple(mask) != (n, frames[1], frames[2]):
        problems.append(f"salient_mask must be ({n}, {frames[1]}, {frames[2]}), got {tuple(mask)}")
    return problems


def _gold_problems(gold_times: np.ndarray | None, gold_labels: np.ndarray | None
                   ) -> list[str]:
    """What is wrong with an optional gold track (both arrays or neither)."""
    if gold_times is None and gold_labels is None:
        return []
    if gold_times is None or gold_labels is None:
        return ["gold_times and gold_labels come together (one is missing)"]
    problems = []
    m = gold_times.shape[0] if gold_times.ndim == 1 else -1
    if m < 1:
        problems.append(f"gold_times must be (M,) with M ≥ 1, got {gold_times.shape}")
    elif not np.isfinite(gold_times).all() or np.any(np.diff(gold_times) <= 0):
        problems.append("gold_times must be finite and strictly increasing")
    if gold_labels.shape != (max(m, 0), len(LABEL_NAMES)):
        problems.append(f"gold_labels must be ({max(m, 0)}, {len(LABEL_NAMES)}), "
                        f"got {gold_labels.shape}")
    finite = gold_labels[np.isfinite(gold_labels)]
    if np.isinf(gold_labels).any() or finite.size and (
            finite.min() < -1.0 - 1e-6 or finite.max() > 1.0 + 1e-6):
        problems.append("gold_labels must lie in [-1, 1] (NaN where unknown, never ±inf)")
    return problems


WRITE_BLOCK = 256  # steps of frames written (and read from a spool) at a time


class _DiskFullSafeFile(io.RawIOBase):
    """An unbuffered file for h5py's file-object driver that keeps the first failed write
    (``error``) and drops every later one, so that HDF5, which cannot close a file whose
    writes fail, closes it normally; the writer raises ``error`` afterwards."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.file = open(path, "r+b", buffering=0)
        self.error: OSError | None = None

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def readinto(self, buffer) -> int:
        return self.file.readinto(buffer)

    def write(self, data) -> int:
        size = memoryview(data).nbytes
        if self.error is None:
            try:
                view = memoryview(data).cast("B")
                while len(view):  # a short write comes before the error of a full disk
                    view = view[self.file.write(view):]
                return size
            except OSError as error:
                self.error = error
        self.file.seek(size, os.SEEK_CUR)
        return size

    def truncate(self, size: int | None = None) -> int:
        try:
            return self.file.truncate(size)
        except OSError as error:
            self.error = self.error or error
            return self.file.tell() if size is None else size

    def flush(self) -> None:
        pass  # unbuffered: nothing waits to be written

    def sync(self) -> None:
        if self.error is None:
            try:
                os.fsync(self.file.fileno())
            except OSError as error:
                self.error = error

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()
        super().close()


def write_recording(path: Path, recording: Recording) -> None:
    """Write one recording to an HDF5 file atomically (temporary name, then rename), on
    disk as it is built (see the module docstring): the frames go a block of
    ``WRITE_BLOCK`` steps at a time, from an array or from frames read on demand. A failed
    write (e.g. a full disk) raises OSError and leaves no temporary file."""
    path = Path(path)
    recording.validate()

    def add(h5: h5py.File, name: str, data: np.ndarray, **options) -> None:
        data = np.asarray(data)
        if data.size:  # a Fletcher-32 checksum per chunk, checked by HDF5 on every read
            options["fletcher32"] = True
        h5.create_dataset(name, data=data, **options)

    with atomic_path(path) as temporary:
        sink = _DiskFullSafeFile(temporary)
        try:
            with h5py.File(sink, "w") as h5:
                if recording.frames is not None:
                    _write_frames(h5, recording.frames, sink)
                add(h5, "times", recording.times)
                add(h5, "face_found", recording.face_found)
                add(h5, "labels", recording.labels)
                if recording.audio_features is not None:
                    add(h5, "audio_features", recording.audio_features)
                if recording.salient_mask is not None:
                    add(h5, "salient_mask", recording.salient_mask, compression="gzip",
                        compression_opts=1)
                for optional in ("landmarks", "frame_times", "alignment_matrices",
                                 "gold_times", "gold_labels", "aligned_from", "expressions",
                                 "image_names"):
                    if getattr(recording, optional) is not None:
                        add(h5, optional, getattr(recording, optional))
                if recording.alignment_template is not None:
                    h5.attrs["alignment_template"] = json.dumps(recording.alignment_template)
                if recording.face_detector:
                    h5.attrs["face_detector"] = recording.face_detector
                h5.attrs.update({
                    "name": recording.name, "step_rate": float(recording.step_rate),
                    "partition": recording.partition, "corpus": recording.corpus,
                    "source": recording.source, "crop_size": recording.crop_size,
                    "store_version": STORE_VERSION,
                    "label_names": json.dumps(list(LABEL_NAMES)),
                })
            sink.sync()
        finally:
            sink.close()
        if sink.error is not None:
            error = sink.error
            raise OSError(error.errno, error.strerror or str(error), str(path))


def _write_frames(h5: h5py.File, frames, sink: _DiskFullSafeFile) -> None:
    """The frames dataset, filled ``WRITE_BLOCK`` steps at a time (stopping at the first
    failed write)."""
    shape = tuple(int(n) for n in frames.shape)
    dataset = h5.create_dataset("frames", shape=shape, dtype=np.uint8,
                                chunks=(1, *shape[1:]), compression="gzip",
                                compression_opts=1, fletcher32=True)
    for start in range(0, shape[0], WRITE_BLOCK):
        dataset[start:start + WRITE_BLOCK] = np.asarray(frames[start:start + WRITE_BLOCK],
                                                        dtype=np.uint8)
        if sink.error is not None:
            return


def verify_recording(path: Path, block: int = 256) -> None:
    """Read every stored value of a recording file (frames ``block`` steps at a time), so
    HDF5 checks each chunk's Fletcher-32 checksum (and zlib its own); AvstanError naming
    the file when a byte was damaged. Files written before checksums existed are read in
    full all the same (a damaged compressed chunk still fails to decompress)."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as h5:
            for dataset in h5.values():
                if not isinstance(dataset, h5py.Dataset):
                    continue
                if dataset.ndim and dataset.shape[0] > block:
                    for start in range(0, dataset.shape[0], block):
                        dataset[start:start + block]
                else:
                    dataset[()]
    except OSError as exc:
        raise AvstanError(f"{path}: damaged recording file ({str(exc).splitlines()[0]}); "
                          "it will be prepared again") from None


class StoredFrames:
    """A recording's frames left in its file, read a clip at a time: ``frames[steps]``
    reads the span of ``steps`` (one HDF5 hyperslab, checksums checked) and returns
    (len(steps), S, S, 3) uint8. Each process opens the file itself on first use (a
    DataLoader worker, a Ray task), never sharing a handle across a fork; pickling drops
    the handle. For corpora larger than memory (``data.frames_in_memory: false``)."""

    def __init__(self, path: str | Path, shape: tuple[int, ...], dtype) -> None:
        self.path = str(path)
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self._dataset = None
        self._owner: int | None = None

    ndim = 4

    def __len__(self) -> int:
        return self.shape[0]

    def _frames(self):
        import os

        if self._dataset is None or self._owner != os.getpid():
            try:
                self._dataset = h5py.File(self.path, "r")["frames"]
            except (OSError, KeyError) as exc:
                raise AvstanError(f"{self.path}: cannot read its frames ({exc}); prepare this "
                                  "recording again") from None
            self._owner = os.getpid()
        return self._dataset

    def __getitem__(self, index) -> np.ndarray:
        dataset = self._frames()
        steps = np.asarray(index) if not isinstance(index, slice) else None
        try:
            if steps is None:
                return dataset[index]
            if steps.ndim == 0:
                return dataset[int(steps)]
            first, last = int(steps.min()), int(steps.max())
            return dataset[first:last + 1][steps - first]
        except OSError as exc:  # a checksum that does not match: the file was damaged
            raise AvstanError(f"{self.path}: damaged frames ({exc}); prepare this recording "
                              "again") from None

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        frames = self._frames()[()]
        return frames if dtype is None else frames.astype(dtype)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_dataset": None, "_owner": None}


# Frames that stay on disk and are read a block at a time.
FRAMES_ON_DISK = (StoredFrames, RemappedRows, RowSpool)


def read_recording(path: Path, load_frames: bool = True, lazy_frames: bool = False
                   ) -> Recording:
    """Read and validate one recording file; a bad file raises AvstanError naming it.

    With ``load_frames=False`` the frames are replaced by an empty (0, S, S, 3) array
    (cheap: labels and times only), and no shape check involving them is made. With
    ``lazy_frames`` they stay in the file as :class:`StoredFrames`. An audio-only
    recording has ``frames = None``.
    """
    path = Path(path)
    if not path.is_file():
        raise AvstanError(f"{path}: recording file not found; run the preparation step again")
    try:
        with h5py.File(path, "r") as h5:
            missing = [k for k in ("times", "face_found", "labels") if k not in h5]
            if "frames" not in h5 and "audio_features" not in h5:
                missing.append("frames or audio_features")
            if missing:
                raise AvstanError(f"{path}: not an avstan recording (missing {', '.join(missing)})"
                                  "; re-create it with avstan")
            version = int(h5.attrs.get("store_version", -1))
            if version != STORE_VERSION:
                raise AvstanError(f"{path}: store version {version}, this avstan reads "
                                  f"{STORE_VERSION}; re-create the store with this version")
            frames_ds = h5["frames"] if "frames" in h5 else None
            if frames_ds is None:
                frames = None
            elif load_frames and lazy_frames:
                frames = StoredFrames(path, frames_ds.shape, frames_ds.dtype)
            elif load_frames:
                frames = frames_ds[()]
            else:
                frames = np.zeros((0, *frames_ds.shape[1:]), dtype=frames_ds.dtype)
            rec = Recording(
                name=str(h5.attrs.get("name", path.stem)),
                frames=frames,
                times=h5["times"][()],
                face_found=h5["face_found"][()],
                labels=h5["labels"][()],
                step_rate=float(h5.attrs.get("step_rate", 0.0)),
                partition=str(h5.attrs.get("partition", "")),
                corpus=str(h5.attrs.get("corpus", "")),
                source=str(h5.attrs.get("source", "")),
                audio_features=h5["audio_features"][()] if "audio_features" in h5 else None,
                salient_mask=(h5["salient_mask"][()] if load_frames and "salient_mask" in h5
                              else None),
                landmarks=h5["landmarks"][()] if "landmarks" in h5 else None,
                frame_times=h5["frame_times"][()] if "frame_times" in h5 else None,
                alignment_matrices=(h5["alignment_matrices"][()]
                                    if "alignment_matrices" in h5 else None),
                gold_times=h5["gold_times"][()] if "gold_times" in h5 else None,
                gold_labels=h5["gold_labels"][()] if "gold_labels" in h5 else None,
                alignment_template=(json.loads(h5.attrs["alignment_template"])
                                    if "alignment_template" in h5.attrs else None),
                aligned_from=h5["aligned_from"][()] if "aligned_from" in h5 else None,
                face_detector=str(h5.attrs.get("face_detector", "")),
                expressions=h5["expressions"][()] if "expressions" in h5 else None,
                image_names=h5["image_names"][()] if "image_names" in h5 else None,
            )
            full_shape = None if frames_ds is None else frames_ds.shape
    except AvstanError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise AvstanError(f"{path}: unreadable recording file ({exc}); delete it and run the "
                          "preparation step again") from None
    if load_frames or frames_ds is None:
        rec.validate(str(path))
    else:
        problems = _shape_problems(full_shape, rec.frames.dtype, rec.times.shape,
                                   rec.face_found.shape, rec.labels.shape,
                                   None if rec.audio_features is None else rec.audio_features.shape,
                                   None)
        problems += _gold_problems(rec.gold_times, rec.gold_labels)
        if problems:
            raise AvstanError(f"{path}: " + "; ".join(problems) + "; re-create it with avstan")
    return rec


def plain_file_name(value: str) -> str:
    """A manifest's file entry: a name in the store's folder ("" when none), never a path
    that leads elsewhere."""
    return "" if "/" not in value and "\\" not in value and value not in (".", "..") else \
        "a file name in the store's folder"


@dataclass
class ManifestEntry:
    """One line of the manifest: where a recording is and what state it is in."""

    name: str
    file: Annotated[str, plain_file_name]
    partition: Annotated[str, OneOf(*PARTITIONS)]
    status: Annotated[str, OneOf(*ENTRY_STATUSES)] = "complete"
    num_steps: Annotated[int, Range(ge=0)] = 0
    message: str = ""
    # What it was prepared from: role ("media", "labels", "audio", ...) -> [size, mtime_ns],
    # so a rerun redoes a recording whose inputs changed; empty when not known.
    inputs: dict = field(default_factory=dict)


@dataclass
class Manifest:
    """``manifest.json`` as written by :meth:`RecordingStore.save_manifest`, read back
    through the typed declarations (``typed_config``): every key and value checked."""

    store_version: Annotated[int, Range(ge=1, le=STORE_VERSION)] = STORE_VERSION
    corpus: str = ""
    attrs: dict = field(default_factory=dict)
    recordings: list[ManifestEntry] = field(default_factory=list)


@dataclass
class RecordingStore:
    """A folder of recording files and the manifest that lists them.

    >>> store = RecordingStore.create("runs/corpus", corpus="synthetic")
    >>> store.add(recording)
    >>> [r.name for r in store.load_partition("train")]
    """

    root: Path
    corpus: str = ""
    entries: dict[str, ManifestEntry] = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)

    @classmethod
    def create(cls, root: str | Path, corpus: str = "", **attrs) -> RecordingStore:
        """Open ``root`` for writing, creating it (and an empty manifest) if needed."""
        root = ensure_writable_folder(Path(root), "the recording store")
        if (root / MANIFEST_NAME).exists():
            store = cls.open(root)
            store.attrs.update(attrs)
            return store
        store = cls(root=root, corpus=corpus, attrs=dict(attrs))
        store.save_manifest()
        return store

    @classmethod
    def open(cls, root: str | Path) -> RecordingStore:
        """Open an existing store; a missing or malformed manifest raises AvstanError."""
        root = Path(root)
        manifest = root / MANIFEST_NAME
        if not manifest.is_file():
            raise AvstanError(f"{root}: no recording store here (no {MANIFEST_NAME}); "
                              "create one with `avstan demo` or `avstan prepare`")
        advice = ("the manifest is damaged or not written by avstan; remove it and prepare "
                  "the corpus into this folder again")
        try:
            data = json.loads(manifest.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            reason = str(exc).splitlines()[0][:80]
            raise AvstanError(f"{manifest}: not UTF-8 JSON ({reason}); {advice}") from None
        except OSError as exc:
            raise AvstanError(f"{manifest}: cannot be read ({exc.strerror}); {advice}") \
                from None
        try:
            read = dataclass_from_dict(Manifest, data, str(manifest))
        except AvstanError as exc:
            raise AvstanError(f"{exc}; {advice}") from None
        entries = {e.name: e for e in read.recordings}
        return cls(root=root, corpus=read.corpus, entries=entries, attrs=read.attrs)

    def save_manifest(self) -> None:
        data = {
            "store_version": STORE_VERSION,
            "corpus": self.corpus,
            "attrs": self.attrs,
            "recordings": [vars(e) for e in sorted(self.entries.values(), key=lambda e: e.name)],
        }
        atomic_write_bytes(self.root / MANIFEST_NAME, json.dumps(data, indent=1).encode())

    def path_of(self, name: str) -> Path:
        return self.root / self.entries[name].file

    def is_complete(self, name: str) -> bool:
        """True if ``name`` is listed complete and its file exists (resumable preparation)."""
        entry = self.entries.get(name)
        return bool(entry and entry.status == "complete" and (self.root / entry.file).is_file())

    def add(self, recording: Recording) -> ManifestEntry:
        """Write a recording file and list it in the manifest as complete."""
        file = f"{recording.name}.h5"
        write_recording(self.root / file, recording)
        entry = ManifestEntry(name=recording.name, file=file, partition=recording.partition,
                              status="complete", num_steps=recording.num_steps)
        self.entries[recording.name] = entry
        self.save_manifest()
        return entry

    def mark_failed(self, name: str, partition: str, message: str, status: str = "failed") -> None:
        """List a recording that could not be prepared, with the reason."""
        self.entries[name] = ManifestEntry(name=name, file="", partition=partition,
                                           status=status, message=message)
        self.save_manifest()

    def names(self, partition: str | None = None) -> list[str]:
        """Complete recordings, optionally of one partition, in a stable order."""
        return sorted(e.name for e in self.entries.values()
                      if e.status == "complete" and (partition is None or e.partition == partition))

    def load(self, name: str, load_frames: bool = True, lazy_frames: bool = False
             ) -> Recording:
        if name not in self.entries:
            raise AvstanError(f"{self.root}: no recording named {name!r} in the manifest")
        recording = read_recording(self.path_of(name), load_frames=load_frames,
                                   lazy_frames=lazy_frames)
        expected = self.attrs.get("crop_size")
        if expected and recording.has_video and recording.crop_size != expected:
            raise AvstanError(f"{self.path_of(name)}: frames are {recording.crop_size} px but "
                              f"the store holds {expected}-px crops; prepare this recording "
                              "again (or remove it)")
        return recording

    def load_partition(self, partition: str, load_frames: bool = True,
                       lazy_frames: bool = False) -> list[Recording]:
        """The complete recordings of ``partition`` (train, devel or test); ``lazy_frames``:
        frames left in their files (:class:`StoredFrames`)."""
        if partition not in PARTITIONS:
            raise AvstanError(f"{self.root}: unknown partition {partition!r}; use one of "
                              f"{', '.join(PARTITIONS)}")
        return [self.load(n, load_frames, lazy_frames) for n in self.names(partition)]

    def __iter__(self) -> Iterator[Recording]:
        for name in self.names():
            yield self.load(name)
