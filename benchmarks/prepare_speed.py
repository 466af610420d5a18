"""Preparation speed: seconds of video prepared per second of wall time.

For one video (default: the 640×360 h264 clip of ../shared/data/videos), three passes
measured in the same run:

* **decode only** — PyAV decoding and sampling at the step rate (the bound);
* **avstan prepare** — decoding a few frames ahead in a background thread, face search
  near the previous face (else on a reduced copy of the frame), landmarks at full
  resolution, alignment (``prepare_recording``);
* **naive** — the same with face search at full resolution on every sampled frame.

The dlib models are loaded once before timing (about a second per process).

    .venv/bin/python benchmarks/prepare_speed.py [VIDEO] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from avstan.data.corpora.base import RecordingSource
from avstan.data.faces import FaceAligner
from avstan.data.prepare import PrepareConfig, prepare_recording
from avstan.data.video import sample_video

DEFAULT_VIDEO = (Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
                 / "WolfgangLanger_Pexels.mp4")


def best_seconds(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--crop-size", type=int, default=96)
    args = parser.parse_args()
    video = Path(args.video)
    frames = list(sample_video(video))
    duration = frames[-1].tick + 0.25
    source = RecordingSource("bench", "train", media=video)
    config = PrepareConfig(crop_size=args.crop_size)
    fast = FaceAligner(args.crop_size, detect_width=config.detect_width)
    naive = FaceAligner(args.crop_size, detect_width=10**6, search_near_previous=False)

    passes = {
        "decode only (bound)": lambda: sum(1 for _ in sample_video(video)),
        "avstan prepare": lambda: prepare_recording(source, config, aligner=fast),
        "naive (full-resolution search)": lambda: prepare_recording(source, config,
                                                                    aligner=naive),
    }
    print(f"{video.name}: {duration:.1f} s of video, {len(frames)} steps at 4 steps/s, "
          f"{frames[0].image.shape[1]}x{frames[0].image.shape[0]}; best of {args.repeats}\n")
    print("| pass | seconds | × real time | / decode-only rate |")
    print("|---|---:|---:|---:|")
    bound = None
    for name, run in passes.items():
        seconds = best_seconds(run, args.repeats)
        bound = bound or seconds
        print(f"| {name} | {seconds:.2f} | {duration / seconds:.1f} | {bound / seconds:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
