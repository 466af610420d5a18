"""Ray's overhead: a corpus prepared by the local process pool and by Ray tasks, same cores.

``--copies`` links to one clip (default: the 640×360 20 s clip of ../shared/data/videos)
make a corpus, prepared by ``prepare_corpus`` with ``--engine local`` (``--workers``
processes, started in each pass) and with ``--engine ray`` on a local Ray instance of
``--workers`` CPUs (started once, outside the timing; its start is timed on its own),
interleaved rounds, the best round counts. Faces only (``--no-audio`` is the default;
``--audio`` adds eGeMAPS).

    .venv/bin/python benchmarks/ray_overhead.py [VIDEO] [--copies 16] [--workers 2]
        [--repeats 2] [--audio]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from avstan.data.corpora.base import RecordingSource
from avstan.data.prepare import PrepareConfig, prepare_corpus
from avstan.data.video import sample_video

DEFAULT_VIDEO = (Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
                 / "WolfgangLanger_Pexels.mp4")


def main() -> None:
    import ray

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO))
    parser.add_argument("--copies", type=int, default=16)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--audio", action="store_true")
    args = parser.parse_args()
    video = Path(args.video).resolve()
    duration = sum(1 for _ in sample_video(video)) / PrepareConfig.step_rate
    config = PrepareConfig(audio_window=4.0 if args.audio else None)
    start = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    ray_start = time.perf_counter() - start
    best = {"local": float("inf"), "ray": float("inf")}
    with tempfile.TemporaryDirectory() as folder:
        links = []
        for index in range(args.copies):
            links.append(Path(folder) / f"copy{index:02d}{video.suffix}")
            os.symlink(video, links[-1])
        sources = [RecordingSource(link.stem, "train", media=link) for link in links]
        for round_number in range(args.repeats):
            for engine in best:
                start = time.perf_counter()
                summary = prepare_corpus(sources, Path(folder) / f"{engine}{round_number}",
                                         config, workers=args.workers, progress=False,
                                         engine=engine)
                best[engine] = min(best[engine], time.perf_counter() - start)
                if summary.failed:
                    raise SystemExit(f"{engine}: {summary.failed[0]}")
    ray.shutdown()
    total = duration * args.copies
    print(f"{args.copies} copies of {video.name} ({total:.0f} s of video), {args.workers} "
          f"workers, best of {args.repeats} interleaved rounds; starting the local Ray "
          f"instance took {ray_start:.1f} s (not in the table)\n")
    print("| engine | seconds | × real time | ratio to the local pool |")
    print("|---|---:|---:|---:|")
    for engine, seconds in best.items():
        print(f"| {engine} | {seconds:.2f} | {total / seconds:.1f} | "
              f"{seconds / best['local']:.2f} |")


if __name__ == "__main__":
    main()
