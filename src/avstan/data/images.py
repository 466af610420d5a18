"""Labelled face images through the video face stage, into an image store of shards.

A frame model that will read avstan's crops of video must learn from avstan's crops of
its training photos, so every image goes through the same face stage as a video frame
(``data.faces``): the same detector, the same 68-point fit, the same template.

* **Small and grey images** are upscaled (bicubic) until their short side is at least
  ``MIN_DETECT_SIDE`` pixels (on 300 FER2013 faces: 48 px found 0 faces; 112, 160 and 224
  px found 289, 294 and 295, at 4.0, 4.1 and 6.9 ms an image; framing the image in a
  margin before the search found fewer, 285, at 7.3 ms); grey images come as three equal
  channels. The crop is sampled from the image framed by its own edge pixels
  (``crop_with_margin``), so where the template reaches past a tight photo it sees edge
  colours rather than black.
* **Where the detector finds a face**, the crop is aligned from the 68-point fit in its box,
  or from the detector's points where the fit strays (as on video).
* **Where it finds none**, the image's own frame is taken as the face box (inset by
  ``FRAME_BOX_INSET`` of the side on each edge: loosely cropped face photos such as
  FER2013's hold the face from brow to chin there) and the 68-point fit is made inside it
  (``aligned_from`` "fit in the image frame").
* **Corpus landmarks** (AffectNet's 68 points) are used as given (``--landmarks detect``
  ignores them and searches as for any image).

The crops go to an image store (``data.store``, ``attrs["kind"] == "images"``): each
recording is a shard of up to ``IMAGES_PER_SHARD`` images of one partition, one image per
step (at the step rate of ``--step-rate``: the rate of the video timeline a model trained
on them will predict, recorded in its model file), with the labels, the expression index,
the image's name and what its crop was aligned from. Shards are written atomically with
checksums; a rerun skips complete shards whose images are unchanged (the same names in the
same order), so an interrupted run resumes. (An image that failed inside a complete shard
is therefore not retried by a rerun, even when its file was repaired under the same name:
delete that shard's file.) An image that cannot be read is reported (one line each, up to
``MAX_LISTED``, and all of them in ``OUTPUT/failed_images.csv``) and left out.
"""

from __future__ import annotations

import csv
import io
import os
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from avstan.data.corpora.images import EXPRESSIONS, ImageSource, find_image_corpus
from avstan.data.faces import FaceAligner, apply_transform, warp_crop
from avstan.data.prepare import PrepareConfig, die_with_parent, make_aligner
from avstan.data.preview import write_contact_sheet
from avstan.data.store import (
    ALIGNED_FROM,
    ANCHOR_CODES,
    MANIFEST_NAME,
    ManifestEntry,
    Recording,
    RecordingStore,
    write_recording,
)
from avstan.errors import AvstanError
from avstan.io import atomic_write_bytes, ensure_writable_folder
from avstan.progress import progress_bar

IMAGES_PER_SHARD = 2000
MIN_DETECT_SIDE = 160  # px: the short side small images are upscaled to
CROP_MARGIN = 0.5  # the crop samples the image framed by its edge pixels, this share of the side
FRAME_BOX_INSET = 0.08  # the face box taken from the image's frame, inset on each edge
MAX_LISTED = 10  # failed images named one line each in the summary
STORE_KIND = "images"
# What a model trained on an image store does to a video's per-step values: a centred
# running median of 5 steps (1.25 s at 4 steps/s), as a post-processing chain
# (evaluation.postprocess.PostProcessing's fields) recorded in its model file. An image
# corpus has no devel timeline to choose a window on, so it is fixed: wide enough to
# remove single-frame jitter (a blink, a bad crop), short against the second-long
# expressions of the real clips (docs/models.md).
IMAGE_MODEL_SMOOTHING = {"median_window": 5}
FAILED_FILE = "failed_images.csv"


@dataclass
class ImageCrop:
    """One image through the face stage: its crop (S, S, 3) uint8, its 68 landmarks in
    crop pixels (68, 2), the transform from the image's pixels to the crop (2, 3) and what
    the crop was aligned from (an ``AlignedFace.anchors`` value, or "frame")."""

    crop: np.ndarray
    landmarks: np.ndarray
    matrix: np.ndarray
    anchors: str


def detection_canvas(image: np.ndarray) -> tuple[np.ndarray, float]:
    """The image as the detector and the fit see it: upscaled (bicubic) to a short side of
    at least ``MIN_DETECT_SIDE``. Returns (canvas (H', W', 3), scale): image pixel (x, y) is
    canvas pixel (x·scale, y·scale)."""
    height, width = image.shape[:2]
    if min(height, width) >= MIN_DETECT_SIDE:
        return np.ascontiguousarray(image), 1.0
    factor = MIN_DETECT_SIDE / min(height, width)
    size = (round(width * factor), round(height * factor))
    canvas = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))
    return np.ascontiguousarray(canvas), canvas.shape[1] / width


def crop_with_margin(canvas: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The S×S crop of ``canvas`` by ``matrix`` (canvas pixels → crop pixels), sampled from
    the canvas framed by ``CROP_MARGIN`` of its side in edge pixels: the template reaches
    past a tightly cropped photo, and a border of its own edge looks more like the context
    a video frame gives there than black does."""
    margin = round(CROP_MARGIN * min(canvas.shape[:2]))
    padded = np.pad(canvas, ((margin, margin), (margin, margin), (0, 0)), mode="edge")
    shift = np.array([[1.0, 0.0, -margin], [0.0, 1.0, -margin], [0.0, 0.0, 1.0]])
    return warp_crop(padded, matrix @ shift, size)


def align_image(aligner: FaceAligner, image: np.ndarray,
                landmarks: np.ndarray | None = None) -> ImageCrop:
    """One image (H, W, 3) uint8 through the face stage (see the module docstring);
    ``landmarks`` (68, 2) in image pixels: the corpus's own, used as given."""
    canvas, scale = detection_canvas(image)
    aligner.reset()
    if landmarks is not None:
        points = np.asarray(landmarks, np.float64) * scale
        try:
            matrix, anchors = aligner.alignment_matrix(points), "corpus"
        except ValueError:  # a landmark file of zeros: one failed image, not a crash
            raise AvstanError("its landmarks put both eye centres and the nose tip on one "
                              "point; fix or remove its landmark file, or prepare with "
                              "--landmarks detect") from None
    else:
        detection = aligner.find(canvas)
        if detection is not None:
            points, matrix, anchors = aligner.fit_detection(canvas, detection)
        else:
            height, width = canvas.shape[:2]
            inset_x, inset_y = FRAME_BOX_INSET * width, FRAME_BOX_INSET * height
            points = aligner.landmarks(canvas, (inset_x, inset_y, width - inset_x,
                                                height - inset_y))
            matrix, anchors = aligner.alignment_matrix(points), "frame"
    crop = crop_with_margin(canvas, matrix, aligner.crop_size)
    crop_points = apply_transform(matrix, points).astype(np.float32)
    # the transform from the image's own pixels: canvas = image · scale
    to_canvas = np.diag([scale, scale, 1.0])
    return ImageCrop(crop, crop_points, (matrix @ to_canvas).astype(np.float32), anchors)


@dataclass
class Shard:
    """The images of one shard (one partition), and its name in the store."""

    name: str
    partition: str
    sources: list[ImageSource]

    def signature(self) -> list[int]:
        """[count, CRC-32 of the names]: a rerun redoes a shard whose images changed."""
        joined = "\n".join(s.name for s in self.sources).encode()
        return [len(self.sources), zlib.crc32(joined)]


def make_shards(sources: Sequence[ImageSource], size: int = IMAGES_PER_SHARD) -> list[Shard]:
    """Shards ``<partition>-NNNN`` of up to ``size`` images, in the sources' order."""
    shards = []
    for partition in ("train", "devel", "test"):
        members = [s for s in sources if s.partition == partition]
        for number, start in enumerate(range(0, len(members), size)):
            shards.append(Shard(f"{partition}-{number:04d}", partition,
                                members[start:start + size]))
    return shards


@dataclass
class ShardOutcome:
    name: str
    steps: int = 0
    anchors: dict[str, int] = field(default_factory=dict)  # ALIGNED_FROM name → count
    failed: list[tuple[str, str]] = field(default_factory=list)  # (image, reason)
    error: str = ""  # the shard itself could not be written


_ALIGNER: FaceAligner | None = None


def _init_worker(config: PrepareConfig) -> None:
    global _ALIGNER
    die_with_parent()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _ALIGNER = make_aligner(PrepareConfig(**{**vars(config), "redetect_every": 1}))


def _prepare_shard(shard: Shard, config: PrepareConfig, corpus: str, root: Path
                   ) -> ShardOutcome:
    outcome = ShardOutcome(shard.name)
    crops, landmarks, matrices, codes, kept = [], [], [], [], []
    for source in shard.sources:
        try:
            given = source.landmarks if config.landmarks == "corpus" else None
            face = align_image(_ALIGNER, source.read(), given)
        except AvstanError as exc:
            outcome.failed.append((source.name, str(exc)))
            continue
        crops.append(face.crop)
        landmarks.append(face.landmarks)
        matrices.append(face.matrix)
        codes.append(ANCHOR_CODES[face.anchors])
        kept.append(source)
    counts = np.bincount(codes, minlength=len(ALIGNED_FROM)) if codes else []
    outcome.anchors = {ALIGNED_FROM[c]: int(n) for c, n in enumerate(counts) if n}
    if not kept:
        outcome.error = "no image of this shard could be read"
        return outcome
    recording = Recording(
        name=shard.name, frames=np.stack(crops),
        times=np.arange(len(kept), dtype=np.float64) / config.step_rate,
        face_found=np.ones(len(kept), dtype=bool),
        labels=np.array([[s.valence, s.arousal] for s in kept], dtype=np.float32),
        step_rate=config.step_rate, partition=shard.partition, corpus=corpus,
        source=f"{kept[0].name} … {kept[-1].name}", landmarks=np.stack(landmarks),
        alignment_matrices=np.stack(matrices), aligned_from=np.array(codes),
        alignment_template=[list(p) for p in config.template],
        face_detector=_ALIGNER.detector_name,
        expressions=np.array([s.expression for s in kept]),
        image_names=np.array([s.name.encode() for s in kept]))
    try:
        write_recording(root / f"{shard.name}.h5", recording)
    except OSError as exc:
        outcome.error = f"cannot write {root / shard.name}.h5 ({exc.strerror or exc})"
        return outcome
    outcome.steps = len(kept)
    return outcome


@dataclass
class ImagePrepareSummary:
    layout: str = ""
    prepared: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed_shards: list[tuple[str, str]] = field(default_factory=list)
    failed_images: list[tuple[str, str]] = field(default_factory=list)
    partitions: dict[str, int] = field(default_factory=dict)  # images stored per partition
    anchors: dict[str, int] = field(default_factory=dict)  # this run's crops by origin
    seconds: float = 0.0
    images_done: int = 0

    def lines(self) -> list[str]:
        out = [f"failed image {name}: {reason}" for name, reason in
               self.failed_images[:MAX_LISTED]]
        if len(self.failed_images) > MAX_LISTED:
            out.append(f"... and {len(self.failed_images) - MAX_LISTED} more failed images "
                       f"(all listed in {FAILED_FILE})")
        out += [f"failed shard {name}: {reason}" for name, reason in self.failed_shards]
        stored = ", ".join(f"{p} {self.partitions.get(p, 0)}" for p in ("train", "devel", "test"))
        out.append(f"shards prepared {len(self.prepared)}, skipped {len(self.skipped)} "
                   f"(already complete), failed {len(self.failed_shards)}; images stored: "
                   f"{stored}; {len(self.failed_images)} images failed")
        if self.anchors:
            total = sum(self.anchors.values())
            parts = ", ".join(f"{name} {count} ({100 * count / total:.1f} %)"
                              for name, count in self.anchors.items())
            out.append(f"crops aligned from: {parts}")
        if self.images_done and self.seconds > 0:
            out.append(f"{self.images_done / self.seconds:.0f} images per second")
        return out


def prepare_images(sources: Sequence[ImageSource], output: str | Path,
                   config: PrepareConfig | None = None, corpus: str = "",
                   workers: int | None = None, progress: bool = True,
                   shard_size: int = IMAGES_PER_SHARD) -> ImagePrepareSummary:
    """Every image of ``sources`` through the face stage into the image store ``output``
    (shards; see the module docstring). Resumes: complete, unchanged shards are skipped."""
    config = config or PrepareConfig()
    if workers is not None and workers < 1:
        raise AvstanError(f"--workers {workers}: use 1 or more (default: all cores)")
    output = Path(output)
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        seen: set[str] = set()
        twice = sorted({n for n in names if n in seen or seen.add(n)})
        raise AvstanError(f"image names occur twice: {', '.join(twice[:5])}; rename them")
    if (output / MANIFEST_NAME).is_file():
        existing = RecordingStore.open(output)
        if existing.names() and existing.attrs.get("kind") != STORE_KIND:
            raise AvstanError(f"{output}: holds a store of videos; prepare the images into "
                              "another folder")
        held = existing.attrs.get("crop_size"), existing.attrs.get("detector")
        if existing.names() and held != (config.crop_size, config.detector):
            raise AvstanError(f"{output}: holds {held[0]}-px crops found by {held[1]}; resume "
                              "with the same --crop-size and --detector or prepare into "
                              "another folder")
    store = RecordingStore.create(output, corpus=corpus, kind=STORE_KIND,
                                  crop_size=config.crop_size, step_rate=config.step_rate,
                                  detector=config.detector, audio_window=None,
                                  expressions=list(EXPRESSIONS))
    for stale in output.glob(".*.tmp"):  # leftovers of a run that was killed
        stale.unlink(missing_ok=True)
    summary = ImagePrepareSummary(layout=corpus)
    shards = make_shards(sources, shard_size)
    todo = []
    for shard in shards:
        entry = store.entries.get(shard.name)
        if (store.is_complete(shard.name) and entry is not None
                and entry.inputs.get("images") == shard.signature()):
            summary.skipped.append(shard.name)
        else:
            todo.append(shard)
    wanted = {s.name for s in shards}
    for stale_name in [n for n in store.entries if n not in wanted]:  # a smaller corpus now
        (output / store.entries[stale_name].file).unlink(missing_ok=True) \
            if store.entries[stale_name].file else None
        del store.entries[stale_name]
    store.save_manifest()
    total = sum(len(s.sources) for s in shards)
    done_before = sum(len(s.sources) for s in shards if s.name in summary.skipped)
    bar = progress_bar(total, "preparing images", "img", initial=done_before, enabled=progress)
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    started = time.monotonic()

    def record(shard: Shard, outcome: ShardOutcome) -> None:
        summary.failed_images += outcome.failed
        for name, count in outcome.anchors.items():
            summary.anchors[name] = summary.anchors.get(name, 0) + count
        if outcome.error:
            store.entries[shard.name] = ManifestEntry(shard.name, "", shard.partition,
                                                      "failed", 0, outcome.error)
            summary.failed_shards.append((shard.name, outcome.error))
        else:
            store.entries[shard.name] = ManifestEntry(
                shard.name, f"{shard.name}.h5", shard.partition, "complete", outcome.steps,
                f"{len(outcome.failed)} images failed" if outcome.failed else "",
                {"images": shard.signature()})
            summary.prepared.append(shard.name)
        store.save_manifest()
        summary.images_done += len(shard.sources)
        bar.update(len(shard.sources))

    try:
        if workers == 1:
            _init_worker(config)
            for shard in todo:
                record(shard, _prepare_shard(shard, config, corpus, output))
        else:
            with ProcessPoolExecutor(workers, initializer=_init_worker,
                                     initargs=(config,)) as pool:
                futures = {pool.submit(_prepare_shard, shard, config, corpus, output): shard
                           for shard in todo}
                for future, shard in futures.items():
                    record(shard, future.result())
    finally:
        bar.close()
    summary.seconds = time.monotonic() - started
    for entry in store.entries.values():
        if entry.status == "complete":
            summary.partitions[entry.partition] = (summary.partitions.get(entry.partition, 0)
                                                   + entry.num_steps)
    if summary.failed_images:
        _write_failed(output / FAILED_FILE, summary.failed_images)
    return summary


def _write_failed(path: Path, failed: list[tuple[str, str]]) -> None:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["image", "reason"])
    writer.writerows(failed)
    atomic_write_bytes(path, text.getvalue().encode())


def prepare_image_folder(corpus: str | Path, output: str | Path, config: PrepareConfig,
                         layout: str = "auto", workers: int | None = None,
                         preview: bool = False, progress: bool = True, log=print
                         ) -> ImagePrepareSummary:
    """``avstan prepare --layout fer2013|affectnet|images``: the image corpus at ``corpus``
    into the image store at ``output``; with ``preview``, one contact sheet per shard in
    ``output/preview/`` (crops framed by what they were aligned from)."""
    layout, sources = find_image_corpus(Path(corpus), layout)
    counts = {p: sum(s.partition == p for s in sources) for p in ("train", "devel", "test")}
    log(f"{corpus}: {layout} layout, {len(sources)} images (train {counts['train']}, "
        f"devel {counts['devel']}, test {counts['test']})")
    empty = [p for p, n in counts.items() if n == 0]
    if empty:
        log(f"warning: {corpus}: no {' and no '.join(empty)} images; training needs train and "
            "devel, scoring needs test")
    ensure_writable_folder(Path(output), "the image store")
    summary = prepare_images(sources, output, config, corpus=layout, workers=workers,
                             progress=progress)
    if preview:
        store = RecordingStore.open(output)
        for name in store.names():
            write_contact_sheet(store.load(name), Path(output) / "preview" / f"{name}.png")
    for line in summary.lines():
        log(line)
    return summary


def is_image_store(attrs: dict) -> bool:
    """True for the attributes of a store of face images (shards), not of recordings."""
    return attrs.get("kind") == STORE_KIND


__all__ = ["ImageCrop", "align_image", "detection_canvas", "is_image_store", "make_shards",
           "prepare_image_folder", "prepare_images", "MIN_DETECT_SIDE"]
