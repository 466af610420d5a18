"""Face detection on real media: recall, false positives, speed and alignment, per detector.

Four tables, each detector of ``avstan.data.detectors`` measured in the same run:

1. **In-the-wild photos** (``../shared/data/faces-wild``: PASCAL VOC photos with
   hand-labelled face boxes, a crowd, a negative): faces found (a detection with IoU > 0.3
   against a labelled box), false positives per photo (detections matching no labelled
   box, on the photos that have labels; every detection on ``dogs.jpg``), ms per photo.
   The search as ``FaceAligner`` runs it on a whole frame (reduced to the detector's
   ``detect_width``), and HOG at full resolution and with 2× upsampling for reference.
2. **Speed**: ms per whole-frame search at 640×360 and 1280×720 (a frame of the 640×360
   clip, resized), best of ``--repeats``.
3. **Face found per step** on every clip of ``../shared/data/videos`` and
   ``../shared/data/emotion-clips`` (``prepare_recording`` with the defaults but the
   detector), and the landmark jitter: RMS movement (in units of the crop size S) of the
   68 points in the crop between consecutive steps with a face.
4. **Alignment on turned faces** (faces-wild): the 68-point fit's eye centres and nose tip
   against YuNet's five points, RMS in units of the eye distance, for the fit started from
   the labelled box, from YuNet's raw box and from its box mapped onto HOG's convention
   (what avstan uses), and how many faces ``FaceAligner`` aligns from YuNet's points
   because the fit is implausible.

    .venv/bin/python benchmarks/face_detection.py [--repeats 5] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image

from avstan.data.corpora.base import RecordingSource
from avstan.data.detectors import DETECTORS, HogDetector, YuNetDetector
from avstan.data.faces import MAX_ANCHOR_DISAGREEMENT, FaceAligner, anchor_disagreement
from avstan.data.prepare import PrepareConfig, prepare_recording
from avstan.data.video import sample_video
from avstan.errors import AvstanError

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
Box = tuple[float, float, float, float]


def iou(a: Box, b: Box) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height
    return width * height / union if union > 0 else 0.0


def labelled_photos(folder: Path) -> list[tuple[Path, list[Box]]]:
    """(photo, hand-labelled boxes) of training.xml and testing.xml, then the negative."""
    photos = []
    for name in ("training.xml", "testing.xml"):
        for image in ET.parse(folder / name).getroot().iter("image"):
            boxes = [(float(b.get("left")), float(b.get("top")),
                      float(b.get("left")) + float(b.get("width")),
                      float(b.get("top")) + float(b.get("height")))
                     for b in image.iter("box") if b.get("ignore") != "1"]
            photos.append((folder / image.get("file"), boxes))
    if (folder / "dogs.jpg").is_file():
        photos.append((folder / "dogs.jpg", []))
    return photos


def read_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def recall_table(photos: list[tuple[Path, list[Box]]]) -> None:
    images = [read_rgb(path) for path, _ in photos]
    yunet_raw = YuNetDetector()
    searches = {
        "yunet (avstan default: FaceAligner's whole-frame search)":
            FaceAligner(detector="yunet").candidates,
        "yunet, raw boxes (before the mapping onto HOG's convention)":
            lambda image: [(r[0], r[1], r[0] + r[2], r[1] + r[3])
                           for r in yunet_raw.raw(image)],
        "hog (FaceAligner's whole-frame search, reduced to ~320 px)":
            FaceAligner(detector="hog").candidates,
        "hog, full resolution": lambda image: [d.box for d in HogDetector()(image)],
        "hog, 2× upsampled": lambda image: [d.box for d in HogDetector(upsample=1)(image)],
    }
    labelled = sum(len(boxes) for _, boxes in photos)
    with_labels = sum(1 for _, boxes in photos if boxes)
    print(f"faces-wild: {len(photos)} photos, {labelled} hand-labelled faces\n")
    print("| search | faces found (IoU > 0.3) | false positives per labelled photo | "
          "detections on dogs.jpg | ms per photo |")
    print("|---|---:|---:|---:|---:|")
    for name, search in searches.items():
        found = false = negative = 0
        seconds = 0.0
        for image, (_, boxes) in zip(images, photos, strict=True):
            start = time.perf_counter()
            detections = search(image)
            seconds += time.perf_counter() - start
            if not boxes:
                negative += len(detections)
                continue
            found += sum(any(iou(box, d) > 0.3 for d in detections) for box in boxes)
            false += sum(not any(iou(box, d) > 0.3 for box in boxes) for d in detections)
        print(f"| {name} | {found}/{labelled} | {false / with_labels:.2f} | {negative} | "
              f"{seconds / len(photos) * 1e3:.1f} |")


def speed_table(frame: np.ndarray, repeats: int) -> None:
    print(f"\nWhole-frame search, best of {repeats}\n")
    print("| detector | 640×360 ms | 1280×720 ms | ratio to hog at 640×360 |")
    print("|---|---:|---:|---:|")
    sizes = {"640×360": (640, 360), "1280×720": (1280, 720)}
    frames = {k: np.asarray(Image.fromarray(frame).resize(v, Image.Resampling.BILINEAR))
              for k, v in sizes.items()}
    best: dict[str, dict[str, float]] = {}
    for name in DETECTORS:
        aligner = FaceAligner(detector=name)
        best[name] = {}
        for size, image in frames.items():
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                aligner.detections(image)
                times.append(time.perf_counter() - start)
            best[name][size] = min(times) * 1e3
    for name in DETECTORS:
        print(f"| {name} | {best[name]['640×360']:.1f} | {best[name]['1280×720']:.1f} | "
              f"{best[name]['640×360'] / best['hog']['640×360']:.2f} |")


def jitter(recording) -> float:
    """Mean RMS movement of the crop's 68 points between consecutive steps with a face,
    in units of the crop size."""
    found = recording.face_found
    pairs = np.flatnonzero(found[1:] & found[:-1])
    if not len(pairs):
        return float("nan")
    moves = recording.landmarks[pairs + 1] - recording.landmarks[pairs]
    return float(np.mean(np.sqrt(np.mean(np.sum(moves ** 2, axis=2), axis=1)))
                 / recording.crop_size)


def clips_table(data: Path) -> None:
    clips = sorted([*(data / "videos").glob("*.mp4"), *(data / "videos").glob("*.mov"),
                    *(data / "emotion-clips").glob("*/*")])
    aligners = {name: FaceAligner(redetect_every=PrepareConfig.redetect_every, detector=name)
                for name in DETECTORS}
    print("\nFace found per step (prepare's defaults but the detector) and landmark jitter "
          "between consecutive steps (RMS, units of S)\n")
    print("| clip | steps | " + " | ".join(f"{n} found | {n} jitter" for n in DETECTORS)
          + " |")
    print("|---|---:|" + "---:|---:|" * len(DETECTORS))
    totals = {name: [0, 0] for name in DETECTORS}
    for clip in clips:
        cells, steps = [], 0
        for name, aligner in aligners.items():
            config = PrepareConfig(detector=name, audio_window=None)
            try:
                recording = prepare_recording(RecordingSource(clip.stem, "train", media=clip),
                                              config, aligner=aligner)
            except AvstanError as error:
                if "no face found" not in str(error):
                    raise
                steps = steps or sum(1 for _ in sample_video(clip, config.step_rate))
                cells += ["0", "–"]
                continue
            steps = recording.num_steps
            found = int(recording.face_found.sum())
            if clip.stem not in ("no_face", "face_noface", "noface_face"):
                totals[name][0] += found
                totals[name][1] += steps
            cells += [str(found), f"{jitter(recording):.4f}"]
        print(f"| {clip.parent.name}/{clip.name} | {steps} | " + " | ".join(cells) + " |")
    print("\nSteps with a face found on the clips where the face is always visible: "
          + ", ".join(f"{name} {found}/{steps} ({found / steps:.1%})"
                      for name, (found, steps) in totals.items()))


def alignment_table(photos: list[tuple[Path, list[Box]]]) -> None:
    from avstan.data.detectors import yunet_box_to_hog

    yunet = YuNetDetector()
    aligner = FaceAligner(detector="yunet")
    rows: dict[str, list[float]] = {"labelled box": [], "YuNet's raw box": [],
                                    "YuNet's box mapped onto HOG's (avstan)": []}
    implausible = faces = 0
    for path, boxes in photos:
        if not boxes:
            continue
        image = read_rgb(path)
        raw = yunet.raw(image)
        for box in boxes:
            overlaps = [iou(box, (r[0], r[1], r[0] + r[2], r[1] + r[3])) for r in raw]
            if not overlaps or max(overlaps) <= 0.3:
                continue
            row = raw[int(np.argmax(overlaps))]
            points = row[4:14].reshape(5, 2).astype(np.float64)
            starts = {"labelled box": box,
                      "YuNet's raw box": (row[0], row[1], row[0] + row[2], row[1] + row[3]),
                      "YuNet's box mapped onto HOG's (avstan)": yunet_box_to_hog(*row[:4])}
            for name, start in starts.items():
                rows[name].append(anchor_disagreement(aligner.landmarks(image, start), points))
            faces += 1
            implausible += rows["YuNet's box mapped onto HOG's (avstan)"][-1] \
                > MAX_ANCHOR_DISAGREEMENT
    print(f"\nThe 68-point fit's eye centres and nose tip against YuNet's points on "
          f"{faces} faces-wild faces (RMS, eye distances)\n")
    print("| fit started from | median | 90th percentile | max |")
    print("|---|---:|---:|---:|")
    for name, values in rows.items():
        print(f"| {name} | {np.median(values):.3f} | {np.percentile(values, 90):.3f} | "
              f"{np.max(values):.3f} |")
    print(f"\nAligned from YuNet's points (fit beyond {MAX_ANCHOR_DISAGREEMENT} eye "
          f"distances): {implausible} of {faces} faces")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data = Path(args.data)
    photos = labelled_photos(data / "faces-wild")
    recall_table(photos)
    frame = next(iter(sample_video(data / "videos" / "WolfgangLanger_Pexels.mp4"))).image
    speed_table(frame, args.repeats)
    alignment_table(photos)
    clips_table(data)


if __name__ == "__main__":
    main()
