"""Long videos: peak memory and speed of prepare, predict and stream against the length.

A long video is made by repeating a shared clip (default: the 640×360 20 s clip of
../shared/data/videos) with its packets copied, timestamps shifted (a remux, no
re-encode), to each ``--minutes`` length. Each job runs in a child process on each video,
and the table gives the child's peak resident memory (``ru_maxrss``) and × real time:

* ``avstan prepare`` (one recording, one worker, with audio features);
* ``avstan predict`` of an untrained ``cnn3d`` at the papers' crop size, ``--hop``;
* the same with ``--overlay --html`` (an ``sta3d``, whose attention the overlay draws);
* ``avstan predict --stream`` of the file (``cnn3d``, every step);
* ``avstan predict --all-faces`` (``cnn3d``, ``--hop``): every person followed, one
  descriptor per face per step.

A reference row runs ``python -c "import avstan.cli"`` for the interpreter's own footprint.
``--jobs`` picks some of prepare, predict, overlay, stream, people; ``--stream-minutes`` limits the
stream (every step through the model) to the shorter videos.

    .venv/bin/python benchmarks/long_video.py [--minutes 1 10 60] [--hop 4]
        [--jobs prepare predict overlay stream people] [--stream-minutes 1 10]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import av

DEFAULT_VIDEO = (Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
                 / "WolfgangLanger_Pexels.mp4")


def repeat_clip(clip: Path, minutes: float, output: Path) -> float:
    """Write ``clip`` repeated to at least ``minutes`` (packets copied, timestamps shifted);
    returns the length in seconds."""
    target = minutes * 60.0
    with av.open(str(clip)) as source:
        duration = float(source.duration) / av.time_base
    repeats = max(1, int(round(target / duration)))
    with av.open(str(output), "w") as sink:
        with av.open(str(clip)) as source:
            streams = {s.index: sink.add_stream_from_template(s) for s in source.streams
                       if s.type in ("video", "audio")}
        for repeat in range(repeats):
            with av.open(str(clip)) as source:
                for packet in source.demux(*[s for s in source.streams
                                             if s.index in streams]):
                    if packet.dts is None:
                        continue
                    shift = int(round(repeat * duration / packet.time_base))
                    packet.pts += shift
                    packet.dts += shift
                    packet.stream = streams[packet.stream.index]
                    sink.mux(packet)
    return repeats * duration


def run_child(arguments: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of ``python -m avstan <arguments>`` in a child."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        with open(os.devnull, "w") as sink:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
        os.execv(sys.executable, [sys.executable, *arguments])
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(arguments)}")
    return seconds, usage.ru_maxrss / 1024


def untrained_model(path: Path, name: str = "cnn3d") -> Path:
    import torch

    from avstan.models import create_model
    from avstan.models.model_file import TrainedModel

    torch.manual_seed(0)
    return TrainedModel(create_model(name, crop_size=96, clip_length=16),
                        ("valence", "arousal"), 4.0).save(path)


JOBS = ("prepare", "predict", "overlay", "stream", "people")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO))
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    parser.add_argument("--hop", type=int, default=4)
    parser.add_argument("--jobs", nargs="+", choices=JOBS, default=list(JOBS))
    parser.add_argument("--stream-minutes", type=float, nargs="+", default=None,
                        help="lengths to stream (default: every --minutes)")
    parser.add_argument("--work", default=None, help="folder for the videos and outputs "
                        "(default: the system temporary folder)")
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    streamed = set(args.minutes if args.stream_minutes is None else args.stream_minutes)
    with tempfile.TemporaryDirectory(dir=args.work) as folder:
        folder = Path(folder)
        cnn3d = untrained_model(folder / "cnn3d.pt")
        sta3d = untrained_model(folder / "sta3d.pt", "sta3d")
        _, base_rss = run_child(["-c", "import avstan.cli"])
        rows = []
        for minutes in args.minutes:
            corpus = folder / f"corpus{minutes:g}"
            corpus.mkdir()
            video = corpus / f"long{minutes:g}.mkv"  # Matroska: streamable as it is read
            length = repeat_clip(Path(args.video), minutes, video)
            row = {"minutes": minutes, "length": length}
            if "prepare" in args.jobs:
                row["prepare"] = run_child(
                    ["-m", "avstan", "prepare", str(corpus), str(folder / f"store{minutes:g}"),
                     "--workers", "1"])
            if "predict" in args.jobs:
                row["predict"] = run_child(
                    ["-m", "avstan", "predict", str(cnn3d), str(video),
                     "--output", str(folder / f"predict{minutes:g}"), "--hop", str(args.hop)])
            if "overlay" in args.jobs:
                row["overlay"] = run_child(
                    ["-m", "avstan", "predict", str(sta3d), str(video),
                     "--output", str(folder / f"overlay{minutes:g}"), "--hop", str(args.hop),
                     "--overlay", "--html"])
            if "stream" in args.jobs and minutes in streamed:
                row["stream"] = run_child(["-m", "avstan", "predict", str(cnn3d),
                                           "--stream", str(video)])
            if "people" in args.jobs:
                row["people"] = run_child(
                    ["-m", "avstan", "predict", str(cnn3d), str(video), "--all-faces",
                     "--output", str(folder / f"people{minutes:g}"), "--hop", str(args.hop)])
            rows.append(row)
            print(f"{minutes:g} min done: " + ", ".join(
                f"{job} {row[job][1]:.0f} MiB {length / row[job][0]:.1f}×"
                for job in JOBS if job in row), flush=True)
    print(f"\n{Path(args.video).name} repeated; predict --hop {args.hop}; the interpreter "
          f"with avstan's CLI imported: {base_rss:.0f} MiB\n")
    jobs = [job for job in JOBS if any(job in row for row in rows)]
    print("| minutes | " + " | ".join(f"{job} peak RSS (MiB) | {job} × real time"
                                      for job in jobs) + " |")
    print("|---:|" + "---:|---:|" * len(jobs))
    for row in rows:
        cells = [f"{row[job][1]:.0f} | {row['length'] / row[job][0]:.1f}" if job in row
                 else "– | –" for job in jobs]
        print(f"| {row['minutes']:g} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
