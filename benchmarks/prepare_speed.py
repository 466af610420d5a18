"""Preparation speed: seconds of video prepared per second of wall time.

For one video (default: the 640×360 h264 clip of ../shared/data/videos), passes measured
in the same run, interleaved (each round runs every pass once; the best round counts), so
that other jobs on a shared machine slow them alike:

* **decode only** — PyAV decoding and sampling at the step rate (the bound);
* **avstan prepare** — ``prepare_recording`` as ``avstan prepare`` runs it: decoding a few
  frames ahead in a background thread, a face search every ``--redetect-every`` steps
  (near the previous face, else on a reduced copy of the frame) with the landmarks
  followed in between, landmarks at full resolution, alignment;
* **prepare, search every step** — the same with ``redetect_every = 1`` (the behaviour
  before following);
* **the other detector** — the default pass with the other backend (``hog`` when timing
  ``yunet``, and the reverse);
* **naive** — a search at full resolution on the whole frame at every step.

A second table times a corpus the way ``avstan prepare`` runs one on 2 cores:
``--corpus-copies`` copies of the clip (links in a temporary folder) prepared by
``prepare_corpus`` with ``--workers`` processes, each recording written to the store, next
to decoding the same copies in as many processes. Both include starting the processes
(and, for prepare, loading dlib's models in each, about a second).

Faces only: the eGeMAPS audio features that ``avstan prepare`` adds are a separate cost,
timed once after the table (``--no-audio`` skips them). ``--profile`` also prints where
the default pass spends its time per step. The dlib models are loaded before timing
(about a second per process).

    .venv/bin/python benchmarks/prepare_speed.py [VIDEO] [--repeats 5] [--profile]
        [--corpus-copies 8] [--workers 2] [--detector yunet|hog]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

import avstan.data.faces as faces
import avstan.data.prepare as prepare_module
from avstan.data.corpora.base import RecordingSource
from avstan.data.detectors import DEFAULT_DETECTOR, DETECTORS
from avstan.data.faces import FaceAligner
from avstan.data.prepare import PrepareConfig, audio_features, prepare_corpus, prepare_recording
from avstan.data.store import write_recording
from avstan.data.video import sample_video
from avstan.errors import AvstanError

DEFAULT_VIDEO = (Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
                 / "WolfgangLanger_Pexels.mp4")


def best_interleaved(passes: dict, repeats: int) -> dict[str, float]:
    """Best wall time of each pass over ``repeats`` rounds of all passes in turn."""
    best = dict.fromkeys(passes, float("inf"))
    for _ in range(repeats):
        for name, run in passes.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def profile(source: RecordingSource, config: PrepareConfig, aligner: FaceAligner) -> None:
    """Per-step time of each stage of one prepare pass (the stages are timed where they
    run, so the waits of the main thread for decoded frames show as their own line)."""
    seconds: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)

    def timed(name, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[name] += time.perf_counter() - start
                calls[name] += 1
        return wrapper

    originals = (faces.warp_crop, faces.thumbnail, prepare_module.prefetched)

    def prefetched(items, size=8):
        frames = originals[2](items, size)
        while True:
            start = time.perf_counter()
            item = next(frames, None)
            seconds["waiting for a decoded frame"] += time.perf_counter() - start
            if item is None:
                return
            yield item

    aligner.detections_near = timed("face search near the last face",
                                    aligner.detections_near)
    aligner.detections = timed("face search, whole frame", aligner.detections)
    aligner.landmarks = timed("68-landmark fit", aligner.landmarks)
    faces.warp_crop = timed("alignment warp (crop)", faces.warp_crop)
    faces.thumbnail = timed("crop thumbnail (follow check)", faces.thumbnail)
    prepare_module.prefetched = prefetched
    try:
        start = time.perf_counter()
        recording = prepare_recording(source, config, aligner=aligner)
        total = time.perf_counter() - start
    finally:
        faces.warp_crop, faces.thumbnail, prepare_module.prefetched = originals
        for name in ("detections_near", "detections", "landmarks"):
            delattr(aligner, name)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        write_recording(Path(folder) / "bench.h5", recording)
        seconds["write the store file (after the pass)"] = time.perf_counter() - start
        calls["write the store file (after the pass)"] = 1
    steps = recording.num_steps
    # a whole-frame search after a failed nearby one is a second search on the same step
    followed = steps - calls["face search near the last face"] - calls["face search, whole frame"]
    print(f"\nWhere one prepare pass spends its time ({steps} steps, {total:.2f} s, "
          f"{followed} steps followed without a search):\n")
    print("| stage | calls | ms per step | share of the pass |")
    print("|---|---:|---:|---:|")
    for name in sorted(seconds, key=seconds.get, reverse=True):
        print(f"| {name} | {calls.get(name, '')} | {seconds[name] / steps * 1e3:.2f} | "
              f"{seconds[name] / total:.0%} |")


def count_sampled_frames(video: Path) -> int:
    return sum(1 for _ in sample_video(video))


def corpus_table(video: Path, duration: float, copies: int, workers: int,
                 config: PrepareConfig, repeats: int) -> None:
    """Prepare ``copies`` links to ``video`` as one corpus with ``workers`` processes, next
    to decoding them in as many processes; best of ``repeats`` interleaved rounds."""
    with tempfile.TemporaryDirectory() as folder:
        links = []
        for i in range(copies):
            links.append(Path(folder) / f"copy{i:02d}{video.suffix}")
            os.symlink(video.resolve(), links[-1])
        sources = [RecordingSource(link.stem, "train", media=link) for link in links]
        rounds = iter(range(10**6))

        def decode_all() -> None:
            with ProcessPoolExecutor(workers) as pool:
                list(pool.map(count_sampled_frames, links))

        def prepare_all() -> None:
            summary = prepare_corpus(sources, Path(folder) / f"store{next(rounds)}", config,
                                     workers=workers, progress=False)
            if summary.failed:
                raise SystemExit(f"prepare failed: {summary.failed[0]}")

        best = best_interleaved({"decode only, in processes (bound)": decode_all,
                                 "avstan prepare (prepare_corpus)": prepare_all}, repeats)
    total = duration * copies
    print(f"\nA corpus: {copies} copies ({total:.0f} s of video), {workers} worker processes "
          "(started in each pass), best of "
          f"{repeats} interleaved rounds\n")
    print("| pass | seconds | × real time | / decode-only rate |")
    print("|---|---:|---:|---:|")
    bound = best["decode only, in processes (bound)"]
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.2f} | {total / seconds:.1f} | {bound / seconds:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--crop-size", type=int, default=96)
    parser.add_argument("--redetect-every", type=int, default=PrepareConfig.redetect_every)
    parser.add_argument("--profile", action="store_true",
                        help="also print the time per stage of one prepare pass")
    parser.add_argument("--no-audio", action="store_true", help="do not time audio features")
    parser.add_argument("--corpus-copies", type=int, default=8,
                        help="copies of the clip in the corpus table (0: no corpus table)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR)
    args = parser.parse_args()
    other = next(name for name in DETECTORS if name != args.detector)
    video = Path(args.video)
    frames = list(sample_video(video))
    duration = frames[-1].tick + 0.25
    source = RecordingSource("bench", "train", media=video)
    config = PrepareConfig(crop_size=args.crop_size, redetect_every=args.redetect_every,
                           detector=args.detector)
    following = FaceAligner(args.crop_size, redetect_every=args.redetect_every,
                            detector=args.detector)
    every_step = FaceAligner(args.crop_size, detector=args.detector)
    with_other = FaceAligner(args.crop_size, redetect_every=args.redetect_every,
                             detector=other)
    naive = FaceAligner(args.crop_size, detect_width=10**6, search_near_previous=False,
                        detector=args.detector)

    passes = {
        "decode only (bound)": lambda: sum(1 for _ in sample_video(video)),
        f"avstan prepare (search every {args.redetect_every} steps)":
            lambda: prepare_recording(source, config, aligner=following),
        "prepare, search every step": lambda: prepare_recording(source, config,
                                                                aligner=every_step),
        f"prepare with {other} (search every {args.redetect_every} steps)":
            lambda: prepare_recording(source, config, aligner=with_other),
        "naive (full-resolution search every step)":
            lambda: prepare_recording(source, config, aligner=naive),
    }
    print(f"{video.name}: {duration:.1f} s of video, {len(frames)} steps at 4 steps/s, "
          f"detector {args.detector}, "
          f"{frames[0].image.shape[1]}x{frames[0].image.shape[0]}; best of {args.repeats} "
          "interleaved rounds\n")
    print("| pass | seconds | × real time | / decode-only rate |")
    print("|---|---:|---:|---:|")
    best = best_interleaved(passes, args.repeats)
    bound = best["decode only (bound)"]
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.2f} | {duration / seconds:.1f} | {bound / seconds:.2f} |")
    if args.corpus_copies:
        corpus_table(video, duration, args.corpus_copies, args.workers,
                     PrepareConfig(crop_size=args.crop_size,
                                   redetect_every=args.redetect_every, audio_window=None,
                                   detector=args.detector),
                     max(1, args.repeats // 2))
    if args.profile:
        profile(source, config, following)
    if not args.no_audio:
        start = time.perf_counter()
        try:
            audio_features(source, np.array([frame.tick for frame in frames]), config)
        except AvstanError as error:
            print(f"\naudio features: none ({error})")
        else:
            seconds = time.perf_counter() - start
            print(f"\naudio features (eGeMAPS, {config.audio_window:g} s windows; a separate "
                  f"cost, not in the table): {seconds:.2f} s, {duration / seconds:.1f} × real "
                  "time")


if __name__ == "__main__":
    main()
