"""Stream speed: steps per second of ``avstan predict --stream`` against real time.

For one video with sound (default: the 19.7 s 640×360 h264 clip of ../shared/data/videos,
whose own AAC track is silent, with tests/data/speech's utterances laid over it as PCM,
in Matroska so it streams like a pipe) and the demo's model
configs (sta3d, lstm_ta and av_sta, freshly initialised at ``--crop-size``, 4 s eGeMAPS
windows — speed does not depend on training), measured in the same run:

* **stream, end to end** — ``stream_predict`` reading the file as fast as it can (followed
  as a growing file; the idle wait at its end is not counted): decode, face, sound,
  model, one line per step;
* **sound alone** — ``data.audio.StreamingFunctionals`` on the decoded sound, fed in
  pieces of 1024 samples, each step computed as soon as it is ready (one openSMILE call
  per step: its window plus 1 s of context and 0.1 s after it), against the one pass
  over the whole sound that offline ``prepare`` / ``predict`` makes.

× real time is steps per second divided by the step rate (4 / s): above 1 a live stream
keeps up. Wall seconds are what a user waits; other programs on the cores slow them.

    .venv/bin/python benchmarks/stream_speed.py [VIDEO] [--threads 2] [--crop-size 64]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
import yaml

from avstan.apply.stream import stream_predict
from avstan.data.audio import (
    SAMPLE_RATE,
    StreamingFunctionals,
    egemaps_functionals,
    load_audio,
)
from avstan.models import create_model
from avstan.models.model_file import TrainedModel

DEFAULT_VIDEO = (Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
                 / "WolfgangLanger_Pexels.mp4")
CONFIGS = Path(__file__).resolve().parents[1] / "src" / "avstan" / "configs"
SPEECH = Path(__file__).resolve().parents[1] / "tests" / "data" / "speech"
STEP_RATE = 4.0
IDLE = 0.3  # s the followed file waits at its end before the stream ends


def model_file(folder: Path, name: str, crop_size: int) -> Path:
    options = dict(yaml.safe_load((CONFIGS / f"demo_{name}.yaml").read_text())["model"]
                   ["options"])
    if "crop_size" in options:
        options["crop_size"] = crop_size
    torch.manual_seed(0)
    path = folder / f"{name}.pt"
    TrainedModel(create_model(name, clip_length=16, **options), ("valence", "arousal"),
                 STEP_RATE, {"audio_window_seconds": 4.0}).save(path)
    return path


def with_speech(source: Path, target: Path) -> Path:
    """``source``'s video packets and, as its sound, tests/data/speech's utterances one
    after the other (16-bit PCM), as long as the video, in Matroska."""
    speech = np.concatenate([load_audio(path) for path in sorted(SPEECH.glob("*.wav"))])
    with av.open(str(source)) as reader, av.open(str(target), "w", format="matroska") as out:
        video_in = reader.streams.video[0]
        video_out = out.add_stream_from_template(video_in)
        sound = out.add_stream("pcm_s16le", rate=SAMPLE_RATE, layout="mono")
        seconds = float(video_in.duration * video_in.time_base)
        pcm = (np.clip(speech[:int(seconds * SAMPLE_RATE)], -1, 1) * 32767).astype(np.int16)
        pieces = iter(range(0, pcm.size, 1600))
        written = 0
        for packet in reader.demux(video_in):
            if packet.dts is None:
                continue
            frame_time = float(packet.pts * video_in.time_base)  # before mux rescales it
            packet.stream = video_out
            out.mux(packet)
            # Sound up to this frame's time, so the tracks interleave as a recorder's do.
            while written < min(frame_time, seconds) * SAMPLE_RATE:
                start = next(pieces, None)
                if start is None:
                    break
                frame = av.AudioFrame.from_ndarray(pcm[None, start:start + 1600], format="s16",
                                                   layout="mono")
                frame.sample_rate, frame.pts = SAMPLE_RATE, start
                out.mux(sound.encode(frame))
                written = start + 1600
        out.mux(sound.encode(None))
    return target


def sound_alone(signal: np.ndarray, window: float = 4.0) -> tuple[int, float]:
    steps = int(np.ceil(signal.size / SAMPLE_RATE * STEP_RATE + 0.5))
    times = np.arange(steps) / STEP_RATE
    streaming = StreamingFunctionals(window)
    start, step = time.perf_counter(), 0
    for position in range(0, signal.size, 1024):
        streaming.append(signal[position:position + 1024])
        while step < steps and streaming.ready(times[step]):
            streaming.features(times[step:step + 1])
            step += 1
    streaming.finish(times[step:])
    return steps, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO))
    parser.add_argument("--crop-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scratch = Path(tempfile.mkdtemp(prefix="stream-speed-"))
    video = with_speech(Path(args.video), scratch / "video.mkv")
    rows = []
    for name in ("sta3d", "lstm_ta", "av_sta"):
        path = model_file(scratch, name, args.crop_size)
        start = time.perf_counter()
        steps = stream_predict(path, str(video), out=io.StringIO(), log=io.StringIO(),
                               idle_timeout=IDLE)
        rows.append((f"stream, end to end: {name}", steps,
                     time.perf_counter() - start - IDLE))
    signal = load_audio(video)
    rows.append(("sound alone: a call per step", *sound_alone(signal)))
    times = np.arange(rows[-1][1]) / STEP_RATE
    start = time.perf_counter()
    egemaps_functionals(signal, SAMPLE_RATE, times, 4.0)
    rows.append(("sound alone: one pass (offline)", len(times), time.perf_counter() - start))
    print(f"{Path(args.video).name} with speech, {len(signal) / SAMPLE_RATE:.1f} s, "
          f"S = {args.crop_size}, {args.threads} threads")
    print(f"| {'what':<34} | steps | seconds | steps/s | × real time |")
    print(f"|{'-' * 36}|-------|---------|---------|-------------|")
    for what, steps, seconds in rows:
        rate = steps / seconds
        print(f"| {what:<34} | {steps:5d} | {seconds:7.2f} | {rate:7.1f} | "
              f"{rate / STEP_RATE:11.1f} |")


if __name__ == "__main__":
    main()
