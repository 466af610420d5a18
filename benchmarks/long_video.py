"""Long videos: peak memory and speed of prepare and predict against the video's length.

A long video is made by repeating a shared clip (default: the 640×360 20 s clip of
../shared/data/videos) with its packets copied, timestamps shifted (a remux, no
re-encode), to each ``--minutes`` length. ``avstan prepare`` (one recording, one worker,
with audio features) and ``avstan predict`` (an untrained ``cnn3d`` at the papers' crop
size, ``--hop``) run on each in a child process; the table gives the child's peak resident
memory (``ru_maxrss``) and × real time. A reference row runs ``python -c "import avstan.cli"``
for the interpreter's own footprint.

    .venv/bin/python benchmarks/long_video.py [--minutes 1 10 60] [--hop 4] [--html]
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


def untrained_model(path: Path) -> Path:
    import torch

    from avstan.models import create_model
    from avstan.models.model_file import TrainedModel

    torch.manual_seed(0)
    return TrainedModel(create_model("cnn3d", crop_size=96, clip_length=16),
                        ("valence", "arousal"), 4.0).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO))
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    parser.add_argument("--hop", type=int, default=4)
    parser.add_argument("--html", action="store_true", help="predict with --overlay --html")
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        model = untrained_model(folder / "model.pt")
        base, base_rss = run_child(["-c", "import avstan.cli"])
        rows = []
        for minutes in args.minutes:
            corpus = folder / f"corpus{minutes:g}"
            corpus.mkdir()
            length = repeat_clip(Path(args.video), minutes, corpus / f"long{minutes:g}.mp4")
            prepare_s, prepare_rss = run_child(
                ["-m", "avstan", "prepare", str(corpus), str(folder / f"store{minutes:g}"),
                 "--workers", "1"])
            extra = ["--overlay", "--html"] if args.html else []
            predict_s, predict_rss = run_child(
                ["-m", "avstan", "predict", str(model), str(corpus / f"long{minutes:g}.mp4"),
                 "--output", str(folder / f"predictions{minutes:g}"), "--hop", str(args.hop),
                 *extra])
            rows.append((minutes, length, prepare_s, prepare_rss, predict_s, predict_rss))
    print(f"{Path(args.video).name} repeated; predict --hop {args.hop}"
          + (" --overlay --html" if args.html else "") + f"; the interpreter with avstan's CLI "
          f"imported: {base_rss:.0f} MiB\n")
    print("| minutes | prepare peak RSS (MiB) | prepare × real time | predict peak RSS (MiB) | "
          "predict × real time |")
    print("|---:|---:|---:|---:|---:|")
    for minutes, length, prepare_s, prepare_rss, predict_s, predict_rss in rows:
        print(f"| {minutes:g} | {prepare_rss:.0f} | {length / prepare_s:.1f} | "
              f"{predict_rss:.0f} | {length / predict_s:.1f} |")


if __name__ == "__main__":
    main()
