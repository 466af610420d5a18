"""Prepare a corpus: video → aligned face crops at the step rate + labels (+ eGeMAPS audio
features) → recording store.

Per recording (:func:`prepare_recording`): sample the video at the step rate, detect,
track and align the face in every sampled frame, and resample the labels onto the same
step timeline. The reader's label track is also kept as it is (``gold_times``,
``gold_labels``: the corpus's own label times, e.g. RECOLA's 40 ms), because AVEC scores on
that timeline, not on the steps. A reader returns one track with one ``times`` array and
NaN where a target has no value, so targets annotated at different times arrive as the
union of their times (RECOLA's reader refuses valence and arousal files whose times
differ). A step without a face is kept with ``face_found = False`` and the nearest
found crop as its frame (so clips stay well formed); a recording where no face is ever
found is reported, never stored as if it were fine — unless audio features are asked for
and its audio gives them: then it is stored as an audio-only recording on the video's steps
(:func:`prepare_faceless_video`; "audio only" in the summary), for the audio models.

Audio (on unless ``audio_window`` is None): eGeMAPS functionals over a window ending at
each step (:mod:`avstan.data.audio`), from the separate audio file a corpus reader found
(``extra["audio"]``) or else the video's own track. A video whose audio is missing, silent,
unusable or shorter than one window is still prepared for video models, without
``audio_features``, and named in the summary as "no audio". An audio file on its own
(e.g. a generic folder of wavs with ``<name>.csv`` labels) becomes an audio-only recording:
no frames, ``face_found`` all False, steps ``k / step_rate`` over the audio's duration.

Over a corpus (:func:`prepare_corpus`): a process pool over recordings, one progress bar,
a summary (prepared, skipped because already complete, failed with the reason). Each
worker writes its recording file atomically; only the parent process writes the
manifest. A rerun skips recordings whose file is complete and readable and whose input
files (video, labels, audio: size and modification time, recorded in the manifest) have
not changed, and redoes the rest, so killing the run at any moment loses nothing already
written. A full disk stops the run with one line naming the recording and the folder; the
temporary file is removed and the recordings written before stay listed.
"""

from __future__ import annotations

import errno
import math
import multiprocessing
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from avstan.cluster import RayRun, check_engine, check_reachable, check_shared_folder
from avstan.data.audio import (
    DEFAULT_AUDIO_WINDOW,
    NoAudioError,
    audio_seconds,
    file_functionals,
    file_functionals_every_step,
)
from avstan.data.continuous import FOLDER as CONTINUOUS_FOLDER
from avstan.data.continuous import ContinuousConfig, build_continuous
from avstan.data.corpora import find_corpus
from avstan.data.corpora.base import (
    AUDIO_SUFFIXES,
    LabelTrack,
    RecordingSource,
    resample_labels,
)
from avstan.data.detectors import DEFAULT_DETECTOR, DETECTORS, make_detector
from avstan.data.faces import DEFAULT_REDETECT_EVERY, DEFAULT_TEMPLATE, FaceAligner
from avstan.data.preview import write_contact_sheet
from avstan.data.spool import RowSpool, nearest_found
from avstan.data.store import (
    ANCHOR_CODES,
    MANIFEST_NAME,
    ManifestEntry,
    Recording,
    RecordingStore,
    read_recording,
    verify_recording,
    write_recording,
)
from avstan.data.video import prefetched, sample_image_folder, sample_video
from avstan.errors import AvstanError
from avstan.io import ensure_writable_folder
from avstan.memory import fix_mmap_threshold
from avstan.progress import progress_bar


class NoFaceError(AvstanError):
    """No face in any step of a video; ``times (N,)`` are its steps, on which its audio can
    still make an audio-only recording."""

    def __init__(self, message: str, times: np.ndarray) -> None:
        super().__init__(message)
        self.times = times


LANDMARK_SOURCES = ("corpus", "detect")
MAX_AUDIO_WINDOW = 60.0  # s: far beyond any emotion window; an infinite one cannot be cut
MIN_CROP_SIZE = 16  # smaller crops leave the 68 landmarks a few pixels apart
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)  # no recording after this one can be written either


@dataclass(frozen=True)
class PrepareConfig:
    crop_size: int = 96
    step_rate: float = 4.0
    # the face detector (avstan.data.detectors: yunet or hog) and the width (pixels) of the
    # copy it searches a whole frame on (None: the detector's own default)
    detector: str = DEFAULT_DETECTOR
    detect_width: int | None = None
    # "corpus": align from the corpus's own landmarks where it ships them (AFEW-VA), and
    # detect elsewhere; "detect": always detect and fit
    landmarks: str = "corpus"
    # Search for the face on every k-th step (and after a step without one, or when the
    # fit looks wrong); in between, fit the landmarks where the last ones were. 1: search
    # every step. A face that disappears is reported at most k - 1 steps late.
    redetect_every: int = DEFAULT_REDETECT_EVERY
    template: tuple = DEFAULT_TEMPLATE
    # eGeMAPS window in seconds; None: no audio features
    audio_window: float | None = DEFAULT_AUDIO_WINDOW

    def __post_init__(self) -> None:
        # Settings a user gives on the command line: one clear line each.
        if not (math.isfinite(self.step_rate) and self.step_rate > 0):
            raise AvstanError(f"--step-rate {self.step_rate}: use a positive number of steps "
                              "per second (the papers use 4)")
        if self.crop_size < MIN_CROP_SIZE:
            raise AvstanError(f"--crop-size {self.crop_size}: use at least {MIN_CROP_SIZE} "
                              "pixels (the papers use 96)")
        if self.audio_window is not None and not 0.5 <= self.audio_window <= MAX_AUDIO_WINDOW:
            raise AvstanError(f"--audio-window {self.audio_window}: use 0.5 to "
                              f"{MAX_AUDIO_WINDOW:g} seconds (AVEC 2017: 4 and 6)")
        if self.redetect_every < 1:
            raise AvstanError(f"--redetect-every {self.redetect_every}: use 1 (search every "
                              "step) or more")
        if self.landmarks not in LANDMARK_SOURCES:
            raise AvstanError(f"--landmarks {self.landmarks}: use one of "
                              f"{', '.join(LANDMARK_SOURCES)}")
        if self.detector not in DETECTORS:
            raise AvstanError(f"--detector {self.detector}: unknown face detector; use one of "
                              f"{', '.join(DETECTORS)}")


@dataclass
class PrepareSummary:
    prepared: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    no_audio: list[tuple[str, str]] = field(default_factory=list)  # prepared, video only
    audio_only: list[tuple[str, str]] = field(default_factory=list)  # a video without a face
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (name, e.g. truncated)
    changed: list[tuple[str, str]] = field(default_factory=list)  # (name, which inputs)
    damaged: list[tuple[str, str]] = field(default_factory=list)  # (name, what is wrong)

    def lines(self) -> list[str]:
        out = [f"changed {name}: its {roles} changed since it was prepared; prepared again"
               for name, roles in self.changed]
        out += [f"damaged {name}: {reason}; prepared again" for name, reason in self.damaged]
        out += [f"warning {name}: {message}" for name, message in self.warnings]
        out += [f"no audio {name}: {reason}" for name, reason in self.no_audio]
        out += [f"audio only {name}: {reason}; kept for the audio models (video models skip "
                "it)" for name, reason in self.audio_only]
        count = (f"prepared {len(self.prepared)}, skipped {len(self.skipped)} (already "
                 f"complete), failed {len(self.failed)}")
        if self.no_audio:
            count += f"; {len(self.no_audio)} of them without audio"
        if self.audio_only:
            count += f"; {len(self.audio_only)} of them audio only (no face)"
        out.append(count)
        out += [f"failed {name}: {reason}" for name, reason in self.failed]
        return out


def make_aligner(config: PrepareConfig) -> FaceAligner:
    """The face aligner ``config`` describes (loads dlib's models: about a second)."""
    return FaceAligner(config.crop_size, config.template, config.detect_width,
                       redetect_every=config.redetect_every, detector=config.detector)


def fill_missing_frames(frames: list[np.ndarray | None]) -> np.ndarray:
    """Replace None entries by the nearest non-None frame (earlier on ties): (N, S, S, 3)."""
    nearest = nearest_found(np.array([f is not None for f in frames]))
    return np.stack([frames[i] for i in nearest])


class _Crops:
    """The crops of one recording as they are sampled: in a list, or, with a ``folder``,
    in a ``data.spool.RowSpool`` there (memory then does not grow with the video)."""

    def __init__(self, crop_size: int, folder: Path | None) -> None:
        self.spool = (None if folder is None
                      else RowSpool((crop_size, crop_size, 3), np.uint8, folder))
        self.crops: list[np.ndarray | None] = []
        self.found: list[bool] = []
        self.blank = np.zeros((crop_size, crop_size, 3), np.uint8)

    def append(self, crop: np.ndarray | None) -> None:
        self.found.append(crop is not None)
        if self.spool is None:
            self.crops.append(crop)
        else:
            self.spool.append(self.blank if crop is None else crop)

    def frames(self):
        """(N, S, S, 3): each step's crop, the nearest found one where none was found."""
        if self.spool is None:
            return fill_missing_frames(self.crops)
        return self.spool.remapped(nearest_found(np.asarray(self.found)))

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()


def prepare_recording(source: RecordingSource, config: PrepareConfig, corpus: str = "",
                      aligner: FaceAligner | None = None, spool_folder: Path | None = None
                      ) -> Recording:
    """Sample, detect, align and label one recording; AvstanError names what went wrong.

    With ``spool_folder`` the crops are kept on disk there as they are made
    (``data.spool``): the recording's ``frames`` are then read on demand, and memory does
    not grow with the video's length (the per-step arrays — landmarks, matrices, times —
    take under 1 KiB a step). Close them (``recording.frames.close()``) when done.

    Decoding runs a few frames ahead in a background thread while this thread searches
    for faces: FFmpeg's decoder and dlib's HOG search release the GIL, dlib's landmark fit
    does not (measured: two threads fitting landmarks take as long as one doing both
    jobs), so the overlap is partial. Searching several frames for faces in parallel
    threads made a 2-core machine slower (measured), so corpora are parallelised over
    recordings instead."""
    aligner = aligner or make_aligner(config)
    aligner.reset(source.extra.get("subject", "largest"))
    where = source.media or source.frames_dir
    decode_report: list[str] = []  # filled by the decoding thread, warned about here
    if source.media is not None:
        samples = prefetched(sample_video(source.media, config.step_rate, decode_report))
    elif source.frames_dir is not None and source.frame_rate:
        samples = sample_image_folder(source.frames_dir, source.frame_rate, config.step_rate)
    else:
        raise AvstanError(f"{source.name}: no video file or image folder to prepare")
    given = source.corpus_landmarks() if config.landmarks == "corpus" else None
    crops = _Crops(config.crop_size, spool_folder)
    landmarks, ticks, frame_times, matrices, aligned_from = [], [], [], [], []
    outside: list[float] = []  # times of steps whose corpus landmarks miss the frame
    try:
        for sample in samples:
            points = None if given is None else given.at(sample.time)
            if points is not None and not landmarks_in_frame(points, sample.image.shape):
                outside.append(sample.time)
                face = None
            else:
                face = (aligner(sample.image) if points is None
                        else aligner.align_given(sample.image, points))
            aligned_from.append(0 if face is None else ANCHOR_CODES[face.anchors])
            crops.append(None if face is None else face.crop)
            landmarks.append(np.full((68, 2), np.nan, np.float32) if face is None
                             else face.landmarks)
            matrices.append(np.full((2, 3), np.nan, np.float32) if face is None
                            else face.matrix.astype(np.float32))
            ticks.append(sample.tick)
            frame_times.append(sample.time)
        for message in decode_report:
            warnings.warn(message, stacklevel=2)
        if outside:
            warnings.warn(f"{given.source}: the corpus's landmarks lie outside the frame on "
                          f"{len(outside)} steps (first at {outside[0]:.2f} s); those steps "
                          "have no face (check the file, or prepare with --landmarks detect)",
                          stacklevel=2)
        found = np.asarray(crops.found, dtype=bool)
        ticks = np.asarray(ticks)
        if not found.any():
            raise NoFaceError(f"{where}: no face found in any of its {len(found)} steps; "
                              "check that the video shows a frontal face", ticks)
        frames = crops.frames()
    except BaseException:
        crops.close()
        raise
    track = source.labels()
    labels = (np.full((len(ticks), 2), np.nan, np.float32) if track is None
              else resample_labels(track, ticks))
    template = [list(point) for point in config.template]
    return Recording(
        name=source.name, frames=frames, times=ticks, face_found=found,
        labels=labels, step_rate=config.step_rate, partition=source.partition, corpus=corpus,
        source=str(where), landmarks=np.stack(landmarks), frame_times=np.asarray(frame_times),
        alignment_template=template, alignment_matrices=np.stack(matrices),
        aligned_from=np.asarray(aligned_from, np.uint8), face_detector=aligner.detector_name,
        **gold_track(track))


def landmarks_in_frame(points: np.ndarray, shape: tuple[int, ...],
                       margin: float = 0.1) -> bool:
    """Whether a corpus's 68 points (x, y pixels) describe a face in a frame of ``shape``:
    at least 90 % of them within the frame widened by ``margin`` of its size on each side,
    spanning more than 2 px. Points of 1e30 or −5000 px (a damaged file) are no face."""
    height, width = shape[:2]
    x, y = points[:, 0], points[:, 1]
    inside = ((x >= -margin * width) & (x <= (1 + margin) * width)
              & (y >= -margin * height) & (y <= (1 + margin) * height))
    if inside.mean() < 0.9:
        return False
    return bool(np.ptp(x[inside]) > 2 and np.ptp(y[inside]) > 2)


def gold_track(track: LabelTrack | None) -> dict[str, np.ndarray | None]:
    """``gold_times`` (M,) and ``gold_labels`` (M, 2) of a recording: the reader's track as
    read (None without labels)."""
    if track is None:
        return {"gold_times": None, "gold_labels": None}
    return {"gold_times": np.asarray(track.times, dtype=np.float64),
            "gold_labels": np.asarray(track.values, dtype=np.float32)}


def is_audio_only(source: RecordingSource) -> bool:
    """An audio file on its own (no video, no image folder): by its suffix, or a video
    container (.mp4, .mkv, ...) that holds an audio track and no video track."""
    if source.media is None:
        return False
    if source.media.suffix.lower() in AUDIO_SUFFIXES:
        return True
    try:
        with av.open(str(source.media)) as container:
            return bool(container.streams.audio) and not container.streams.video
    except (av.error.FFmpegError, OSError, ValueError):
        return False  # decoding it as video names the problem


def audio_features(source: RecordingSource, times: np.ndarray, config: PrepareConfig
                   ) -> np.ndarray:
    """eGeMAPS functionals ``(N, 88)`` of a recording's audio on its step ``times (N,)``:
    from ``extra["audio"]`` when the reader found a separate file, else the media file's own
    track. NoAudioError when there is no audio (no track, silent, an image folder);
    AvstanError naming the file when it is unusable or shorter than one window."""
    path = source.extra.get("audio") or source.media
    if path is None:
        raise NoAudioError(f"{source.frames_dir}: an image folder has no audio track; audio "
                           "models skip this recording (video models still use it)")
    return file_functionals(path, times, config.audio_window)


def prepare_audio_recording(source: RecordingSource, config: PrepareConfig, corpus: str = ""
                            ) -> Recording:
    """An audio-only recording: steps ``k / step_rate`` until the end of the audio (a final
    step less than half a step after it included, as for video), eGeMAPS features and
    labels on them, no frames, ``face_found`` all False."""
    if config.audio_window is None:
        raise AvstanError(f"{source.media}: an audio file, but audio features are turned off "
                          "(--no-audio); prepare without --no-audio or remove the file")
    times, features = file_functionals_every_step(source.media, config.step_rate,
                                                  config.audio_window)
    steps = times.size
    track = source.labels()
    labels = (np.full((steps, 2), np.nan, np.float32) if track is None
              else resample_labels(track, times))
    return Recording(
        name=source.name, frames=None, times=times, face_found=np.zeros(steps, dtype=bool),
        labels=labels, step_rate=config.step_rate, partition=source.partition, corpus=corpus,
        source=str(source.media), audio_features=features, **gold_track(track))


def prepare_faceless_video(source: RecordingSource, times: np.ndarray,
                           config: PrepareConfig, corpus: str = "") -> Recording:
    """A video without a face in any step kept as an audio-only recording: eGeMAPS of its
    audio (its own track or ``extra["audio"]``) and its labels on the video's steps
    ``times (N,)``, no frames, ``face_found`` all False. AvstanError (NoAudioError included)
    when the audio cannot stand in."""
    features = audio_features(source, times, config)
    track = source.labels()
    labels = (np.full((len(times), 2), np.nan, np.float32) if track is None
              else resample_labels(track, times))
    return Recording(
        name=source.name, frames=None, times=times, face_found=np.zeros(len(times), bool),
        labels=labels, step_rate=config.step_rate, partition=source.partition, corpus=corpus,
        source=str(source.media or source.frames_dir), audio_features=features,
        **gold_track(track))


def _add_audio(recording: Recording, source: RecordingSource, config: PrepareConfig
               ) -> tuple[str, str]:
    """Attach audio features to a prepared video recording: (why it has none, a note)."""
    if config.audio_window is None:
        return "", ""
    try:
        recording.audio_features = audio_features(source, recording.times, config)
    except AvstanError as error:  # NoAudioError included: the video is still usable
        return str(error), ""
    return "", _audio_gaps(recording)


def _audio_gaps(recording: Recording) -> str:
    """A note when the audio ends before the steps do, else ""."""
    without = int(np.isnan(recording.audio_features).any(axis=1).sum())
    if without:
        return f"the audio ends early: no audio features in {without} of " \
               f"{recording.num_steps} steps"
    return ""


# One aligner per worker process: loading dlib's predictor takes a moment.
_WORKER_ALIGNER: FaceAligner | None = None


def die_with_parent() -> None:
    """Ask Linux to end this process (SIGTERM) when the process that started it dies: a
    pool worker must not outlive a ``prepare`` killed outright (kill -9), idle and holding
    its caller's pipes. Elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the parent died before the request was made
        os._exit(1)


def _init_worker(config: PrepareConfig) -> None:
    global _WORKER_ALIGNER, _WORKER_CONFIG
    if multiprocessing.parent_process() is not None:
        # a pool worker ends at once on SIGTERM (its parent's, or the parent stopping it),
        # not with the parent's handler that turns it into Ctrl-C (cli)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent()
    _WORKER_ALIGNER = make_aligner(config)
    _WORKER_CONFIG = config


_WORKER_CONFIG: PrepareConfig | None = None


def _prepare_on_ray(source: RecordingSource, config: PrepareConfig, corpus: str,
                    root: Path) -> Outcome:
    """A Ray task: :func:`_prepare_one` with the worker's aligner (made once per worker
    process and configuration, as the local pool's initializer does)."""
    fix_mmap_threshold()  # a Ray worker is not forked from avstan's CLI
    if _WORKER_CONFIG != config:
        _init_worker(config)
    return _prepare_one(source, config, corpus, root)


@dataclass(frozen=True)
class Outcome:
    """What a worker did with one recording (it writes the recording file itself)."""

    name: str
    status: str  # complete, failed, no_face, disk_full
    steps: int = 0
    message: str = ""  # the reason it failed, or notes for the manifest
    no_audio: str = ""  # why a prepared video has no audio features
    audio_only: str = ""  # why a video was kept as audio only
    warnings: tuple[str, ...] = ()  # things the user should hear of (e.g. a truncated file)


def _prepare_one(source: RecordingSource, config: PrepareConfig, corpus: str,
                 root: Path) -> Outcome:
    """Worker job: prepare one recording, write its file, say how it went."""
    no_audio, audio_note, audio_only = "", "", ""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recording = None
        try:
            recording, no_audio, audio_note, audio_only = _prepare_source(source, config,
                                                                          corpus, root)
            write_recording(root / f"{source.name}.h5", recording)
        except AvstanError as error:
            status = "no_face" if "no face found" in str(error) else "failed"
            return Outcome(source.name, status, message=str(error),
                           warnings=tuple(str(w.message) for w in caught))
        except OSError as error:
            if error.errno in DISK_FULL:
                return Outcome(source.name, "disk_full", message=error.strerror or str(error))
            return Outcome(source.name, "failed",
                           message=f"{root}: cannot write ({error.strerror})")
        finally:
            if recording is not None:
                recording.close_frames()  # the spool the crops were sampled into
    said = tuple(str(w.message) for w in caught) + tuple(label_warnings(recording))
    missing = int((~recording.face_found).sum())
    notes = [f"no face in {missing} of {recording.num_steps} steps"
             if missing and recording.has_video else "",
             f"audio only: {audio_only}" if audio_only else "", *said]
    if not np.isfinite(recording.labels).any() and source.read_labels is not None:
        notes.append("labels do not overlap the " + ("video" if recording.has_video
                                                      else "audio"))
    notes += [f"no audio: {no_audio}" if no_audio else "", audio_note]
    return Outcome(source.name, "complete", recording.num_steps,
                   "; ".join(n for n in notes if n), no_audio, audio_only, said)


def label_warnings(recording: Recording) -> list[str]:
    """Labels that look wrong for their recording: less than half of the steps get a label,
    or the label times span far more (or far less) than the recording lasts — e.g. times
    in milliseconds, which interpolate to nearly constant labels. [] when none, or
    without labels at all."""
    if recording.gold_times is None or recording.gold_times.size == 0 or recording.num_steps < 2:
        return []
    what = "video" if recording.has_video else "audio"
    length = float(recording.times[-1] - recording.times[0])
    first, last = float(recording.gold_times.min()), float(recording.gold_times.max())
    where = recording.source or recording.name
    out = []
    if length > 0 and last - first > 10 * length:
        out.append(f"{where}: the label times span {first:g}–{last:g} s against {length:.1f} s "
                   f"of {what}; label times must be in seconds (are they milliseconds?)")
    labelled = int(np.isfinite(recording.labels).any(axis=1).sum())
    if labelled < recording.num_steps / 2:
        out.append(f"{where}: labels cover only {labelled} of its {recording.num_steps} steps "
                   f"(label times {first:g}–{last:g} s, {what} {length:.1f} s); check the "
                   "label file's times")
    return out


def _prepare_source(source: RecordingSource, config: PrepareConfig, corpus: str,
                    spool_folder: Path | None = None) -> tuple[Recording, str, str, str]:
    """(recording, why it has no audio, a note on its audio, why it is audio only); the
    crops are spooled into ``spool_folder`` (see :func:`prepare_recording`)."""
    if is_audio_only(source):
        try:
            return prepare_audio_recording(source, config, corpus), "", "", ""
        except NoAudioError as error:  # its wording is for videos ("video models still use it")
            raise AvstanError(f"{str(error).split('; ')[0]}; an audio file without usable "
                              "audio gives no recording") from None
    try:
        recording = prepare_recording(source, config, corpus, _WORKER_ALIGNER, spool_folder)
    except NoFaceError as no_face:
        if config.audio_window is None:
            raise
        try:  # speech without a face: still a recording for the audio models
            recording = prepare_faceless_video(source, no_face.times, config, corpus)
        except AvstanError as audio_error:
            reason = str(audio_error).split("; ")[0].split(": ", 1)[-1]
            raise AvstanError(f"{no_face} (its audio cannot stand in for it: "
                              f"{reason})") from None
        return recording, "", _audio_gaps(recording), str(no_face).split(";")[0]
    no_audio, audio_note = _add_audio(recording, source, config)
    return recording, no_audio, audio_note, ""


def input_signature(source: RecordingSource) -> dict[str, list[int]]:
    """[size, mtime_ns] of every file a recording is prepared from, by role: its video or
    audio file (``media``) or image folder (``frames``), and the label and audio files the
    reader found (``extra``). Roles rather than paths, so a store follows its corpus
    when the corpus folder is renamed with its files' times kept."""
    files = {"media": source.media, "frames": source.frames_dir,
             **{key: value for key, value in source.extra.items()
                if isinstance(value, (str, Path))}}
    signature = {}
    for role, path in files.items():
        try:
            stat = Path(path).stat() if path is not None else None
        except OSError:
            stat = None
        if stat is not None:
            signature[role] = [int(stat.st_size), int(stat.st_mtime_ns)]
    return signature


def changed_inputs(store: RecordingStore, source: RecordingSource) -> list[str]:
    """The roles (e.g. "labels") whose file changed since ``source`` was prepared; [] when
    nothing changed or the manifest did not record its inputs (older stores)."""
    entry = store.entries.get(source.name)
    if entry is None or not entry.inputs:
        return []
    now = input_signature(source)
    return sorted(role for role in {*entry.inputs, *now}
                  if entry.inputs.get(role) != now.get(role))


def stored_damage(store: RecordingStore, name: str) -> str | None:
    """Why a recording listed complete cannot be trusted (file missing, unreadable, or a
    checksum wrong: it is redone), or None when it is fine. Not for incomplete ones."""
    try:
        verify_recording(store.path_of(name))  # first: it names a damaged byte as such
        read_recording(store.path_of(name), load_frames=False)
    except AvstanError as error:
        return str(error).split("; ")[0]
    return None


def prepare_corpus(sources: Sequence[RecordingSource], output: str | Path,
                   config: PrepareConfig = PrepareConfig(), corpus: str = "",
                   workers: int | None = None, progress: bool = True,
                   store_attrs: dict | None = None, engine: str = "local",
                   ray_address: str | None = None) -> PrepareSummary:
    """Prepare every source into the store at ``output``; see the module docstring.
    ``engine``: "local" (a process pool of ``workers``) or "ray" (Ray tasks on the cluster
    at ``ray_address``, or on a local Ray instance of ``workers`` CPUs; ``avstan.cluster``)."""
    if workers is not None and workers < 1:
        raise AvstanError(f"--workers {workers}: use 1 or more (default: all cores)")
    check_engine(engine)
    if engine == "ray" and ray_address:
        check_reachable(ray_address)
    requested_workers = workers
    names = [s.name for s in sources]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise AvstanError(f"recording names occur twice: {', '.join(duplicates)}; rename them")
    if (Path(output) / MANIFEST_NAME).is_file():
        existing = RecordingStore.open(output)
        stored = existing.attrs.get("crop_size"), existing.attrs.get("step_rate")
        if existing.names() and stored != (config.crop_size, config.step_rate):
            raise AvstanError(f"{output}: holds crops of {stored[0]} px at {stored[1]} "
                              "steps/s; prepare into another folder for other settings")
        window = existing.attrs.get("audio_window", config.audio_window)
        if existing.names() and window != config.audio_window:
            held = "no audio features" if window is None else f"{window:g} s audio windows"
            raise AvstanError(f"{output}: holds {held}; prepare into another folder for other "
                              "audio settings")
        every = existing.attrs.get("redetect_every", config.redetect_every)
        if existing.names() and every != config.redetect_every:
            raise AvstanError(f"{output}: was prepared with --redetect-every {every}; resume "
                              "with the same value or prepare into another folder")
        # stores made before the detector was recorded were made with HOG
        detector = existing.attrs.get("detector", "hog")
        if existing.names() and detector != config.detector:
            raise AvstanError(f"{output}: was prepared with --detector {detector}; resume "
                              "with the same detector or prepare into another folder")
        landmarks = existing.attrs.get("landmarks", "detect")
        if existing.names() and landmarks != config.landmarks:
            raise AvstanError(f"{output}: was prepared with --landmarks {landmarks}; resume "
                              "with the same value or prepare into another folder")
    store = RecordingStore.create(output, corpus=corpus, crop_size=config.crop_size,
                                  step_rate=config.step_rate, audio_window=config.audio_window,
                                  redetect_every=config.redetect_every,
                                  detector=config.detector, landmarks=config.landmarks,
                                  **(store_attrs or {}))
    for stale in Path(output).glob(".*.tmp"):  # leftovers of a run that was killed
        stale.unlink(missing_ok=True)
    summary = PrepareSummary()
    todo = []
    signatures = {source.name: input_signature(source) for source in sources}
    for source in sources:
        changed = changed_inputs(store, source)
        if changed and store.is_complete(source.name):
            summary.changed.append((source.name, ", ".join(changed)))
        damage = stored_damage(store, source.name) if store.is_complete(source.name) else None
        if damage is not None:
            summary.damaged.append((source.name, damage))
        if store.is_complete(source.name) and damage is None and not changed:
            summary.skipped.append(source.name)
        else:
            todo.append(source)
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    bar = progress_bar(len(sources), "preparing", "rec", initial=len(summary.skipped),
                       enabled=progress)
    root = Path(output)

    def record(outcome: Outcome, partition: str) -> None:
        name = outcome.name
        summary.warnings += [(name, w) for w in outcome.warnings]
        if outcome.status == "disk_full":  # no later recording fits either: stop after this
            disk_full.append((name, outcome.message))
            return
        if outcome.status == "complete":
            store.entries[name] = ManifestEntry(name, f"{name}.h5", partition, outcome.status,
                                                outcome.steps, outcome.message,
                                                signatures[name])
            summary.prepared.append(name)
            if outcome.no_audio:
                summary.no_audio.append((name, outcome.no_audio))
            if outcome.audio_only:
                summary.audio_only.append((name, outcome.audio_only))
        else:
            store.entries[name] = ManifestEntry(name, "", partition, outcome.status, 0,
                                                outcome.message, signatures[name])
            summary.failed.append((name, outcome.message))
        store.save_manifest()
        bar.update(1)

    partitions = {s.name: s.partition for s in sources}
    if todo and any(not is_audio_only(s) for s in todo):
        make_detector(config.detector)  # a missing model: one line here, not in each worker
    disk_full: list[tuple[str, str]] = []
    try:
        if engine == "ray" and todo:
            with RayRun(ray_address, requested_workers) as run:
                check_shared_folder(run, root)
                jobs = [(source, config, corpus, root) for source in todo]
                for index, result in run.map_unordered(_prepare_on_ray, jobs):
                    if isinstance(result, Exception):  # the task itself failed on its worker
                        result = Outcome(todo[index].name, "failed",
                                         message=f"{todo[index].name}: {result}")
                    record(result, partitions[result.name])
                    if disk_full:  # the rest are cancelled when this run's Ray shuts down
                        break
        elif workers == 1:
            _init_worker(config)
            for source in todo:
                record(_prepare_one(source, config, corpus, root), source.partition)
                if disk_full:
                    break
        else:
            with ProcessPoolExecutor(workers, initializer=_init_worker,
                                     initargs=(config,)) as pool:
                futures = [pool.submit(_prepare_one, s, config, corpus, root) for s in todo]
                try:
                    for future in as_completed(futures):
                        if future.cancelled():
                            continue
                        outcome = future.result()
                        record(outcome, partitions[outcome.name])
                        if disk_full:  # the running ones finish (and are recorded), no new
                            for waiting in futures:
                                waiting.cancel()
                except KeyboardInterrupt:
                    # Ctrl-C reaches the workers too, SIGTERM only this process: stop them
                    # either way, so that leaving the pool does not wait for the queue
                    # (each recording is written atomically: a stopped one is redone). The
                    # pool then fails the waiting futures itself (cancelling them first
                    # makes Python 3.11's pool thread fail on them with a traceback).
                    for worker in multiprocessing.active_children():
                        worker.terminate()
                    raise
    finally:
        bar.close()
    if disk_full:
        name, reason = disk_full[0]
        kept = len(summary.prepared) + len(summary.skipped)
        raise AvstanError(f"{name}: cannot write its recording to {root} ({reason}); the "
                          f"recordings already prepared ({kept}) are kept: free some space "
                          "and run the same command again to resume")
    return summary


def check_utterances_fit_the_window(sources: Sequence[RecordingSource], window: float,
                                    corpus: str | Path, layout: str) -> None:
    """Stop before any work when most audio-only utterances of an acted corpus (RAVDESS's
    speech files last 3–5 s) are shorter than one audio window: each would fail alone.
    The fix is --continuous (a speaker's utterances joined) or a shorter window."""
    utterances = [s for s in sources if "point" in s.extra and is_audio_only(s)]
    if not utterances:
        return
    lengths = [audio_seconds(s.media) for s in utterances]
    known = [length for length in lengths if length is not None]
    needed = window + 0.05  # the window's frames and the last analysis frame's 50 ms
    short = [length for length in known if length < needed]
    if known and len(short) > len(utterances) / 2:
        median = float(np.median(known))
        fits = max(0.5, np.floor((median - 0.05) * 2) / 2)  # half-seconds; most fit it
        raise AvstanError(
            f"{corpus}: {len(short)} of the {len(utterances)} {layout} audio utterances are "
            f"shorter than one {window:g} s audio window (median {median:.2f} s); prepare "
            "with --continuous (each speaker's utterances joined into one recording) or a "
            f"shorter --audio-window, e.g. {fits:g}")


def prepare_folder(corpus: str | Path, output: str | Path, config: PrepareConfig,
                   layout: str = "auto", workers: int | None = None, preview: bool = False,
                   progress: bool = True, log=print,
                   continuous: ContinuousConfig | None = None, engine: str = "local",
                   ray_address: str | None = None) -> PrepareSummary:
    """``avstan prepare``: find the corpus's recordings (``layout``, detected by default),
    prepare them into the store at ``output``, optionally write a contact sheet per
    recording to ``output/preview/``, and log the summary's lines. With ``continuous``
    (acted corpora of categorical utterances), each speaker's utterances are first joined
    into one continuous recording under ``output/continuous/`` (:mod:`avstan.data.continuous`)."""
    layout, sources = find_corpus(corpus, layout)
    log(f"{corpus}: {layout} layout, {len(sources)} recordings")
    setting = None if continuous is None else continuous.describe()
    if (Path(output) / MANIFEST_NAME).is_file():
        existing = RecordingStore.open(output)
        held = existing.attrs.get("continuous")
        if existing.names() and held != setting:
            raise AvstanError(f"{output}: holds " + (f"continuous recordings ({held})" if held
                              else "one recording per utterance") + "; prepare into another "
                              "folder for other --continuous settings")
    if continuous is not None:
        ensure_writable_folder(output, "the recording store")
        sources = build_continuous(sources, Path(output) / CONTINUOUS_FOLDER, continuous, log)
    elif config.audio_window is not None:
        check_utterances_fit_the_window(sources, config.audio_window, corpus, layout)
    summary = prepare_corpus(sources, output, config, corpus=layout, workers=workers,
                             engine=engine, ray_address=ray_address,
                             progress=progress, store_attrs={"continuous": setting})
    if preview:
        store = RecordingStore.open(output)
        for name in store.names():
            recording = store.load(name)
            if recording.has_video:  # audio-only recordings have no crops to show
                write_contact_sheet(recording, Path(output) / "preview" / f"{name}.png")
    for line in summary.lines():
        log(line)
    return summary
