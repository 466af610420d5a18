"""Predict speed: seconds of video predicted per second of wall time, by stage.

For one video (default: the 640×360 h264 clip of ../shared/data/videos) and a model
(default: a freshly initialised demo sta3d at S = 64 — speed does not depend on training),
measured in the same run, each best of ``--repeats``:

* **end to end** — ``avstan predict`` as the command runs it (``predict_videos``: decode,
  face, model, post-processing, CSV + PNG), at ``--hop 1`` and at larger hops; once with
  the per-command loading of the model file and dlib's models (~2 s here), once per video
  after it (what each further video of a folder costs);
* **stages** of the same pipeline: decoding and sampling at the step rate alone; decoding
  + face search, landmarks and alignment (``prepare_recording``, decoding overlapped in a
  background thread); audio features (only for models that read audio); the model over
  every step's clip (``predict_recordings``: each frame encoded once, clips batched);
  writing the CSV and PNG;
* **model-only bound** — the model stage alone on crops already made: the end-to-end rate
  cannot exceed it; and the same clips through the model one full clip each
  (``model(clip=...)`` on batches of clips, no shared work), the cost before sharing;
* the optional **overlay MP4** (``--overlay``: decode, warp and blend the attention, draw,
  encode H.264 + AAC), which is not part of the end-to-end rows.

Wall seconds are what a user waits; CPU seconds (this process, all threads) show the work
done, and change less than wall time when other programs share the cores.

    .venv/bin/python benchmarks/predict_speed.py [VIDEO] [--model model.pt] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import yaml

from avstan.apply.overlay import write_overlay_video
from avstan.apply.predict import Predictor, predict_videos, predictions_csv
from avstan.data.clips import window_indices
from avstan.data.corpora.base import RecordingSource
from avstan.data.prepare import PrepareConfig, audio_features, prepare_recording
from avstan.data.video import sample_video
from avstan.evaluation.inference import predict_recordings
from avstan.evaluation.plots import plot_emotion_curves
from avstan.models import create_model
from avstan.models.model_file import TrainedModel

DEFAULT_VIDEO = (Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
                 / "WolfgangLanger_Pexels.mp4")
DEMO_CONFIG = Path(__file__).resolve().parents[1] / "src" / "avstan" / "configs" / \
    "demo_sta3d.yaml"


def best_seconds(run, repeats: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all threads) of the fastest repeat."""
    times = []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        run()
        times.append((time.perf_counter() - start, time.process_time() - cpu))
    return min(times)


def demo_model_file(folder: Path, crop_size: int) -> Path:
    """The demo sta3d config's model at ``crop_size``, freshly initialised, as a model file."""
    options = dict(yaml.safe_load(DEMO_CONFIG.read_text())["model"]["options"])
    options["crop_size"] = crop_size
    torch.manual_seed(0)
    model = create_model("sta3d", clip_length=16, **options)
    path = folder / "model.pt"
    TrainedModel(model, ("valence", "arousal"), 4.0).save(path)
    return path


def naive_model(model, frames: np.ndarray, clip_length: int, batch: int = 32) -> None:
    """Every clip through the whole model, batched (what sliding prediction did before)."""
    tensor = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255.0)
    ends = np.arange(len(frames))
    with torch.inference_mode():
        for start in range(0, len(ends), batch):
            indices = torch.from_numpy(window_indices(ends[start:start + batch], clip_length))
            model(clip=tensor[indices].transpose(1, 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO))
    parser.add_argument("--model", default=None,
                        help="model.pt (default: a fresh demo sta3d at --crop-size)")
    parser.add_argument("--crop-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hop", type=int, nargs="+", default=[2, 4],
                        help="the larger hops measured (default 2 4)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", default="32-true",
                        help="32-true, bf16-mixed or 16-mixed (CUDA)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as predict does
    video = Path(args.video)
    scratch = Path(tempfile.mkdtemp(prefix="predict-speed-"))
    model_path = Path(args.model) if args.model else demo_model_file(scratch, args.crop_size)
    device, precision = args.device, args.precision
    predictor = Predictor.load(model_path, device, postprocess=False,
                               precision=precision)  # the detector loaded before timing
    model, config, aligner = predictor.trained.network, predictor.config, predictor.aligner
    config = replace(config, audio_window=None)
    source = RecordingSource(video.stem, "test", media=video)
    recording = prepare_recording(source, config, aligner=aligner)
    duration = recording.num_steps / config.step_rate
    targets = predictor.trained.targets
    reads_audio = predictor.trained.reads_audio
    clip_length = model.clip_length
    (kept,) = predict_recordings(model, [recording], targets, clip_length, keep_attention=True,
                                 device=device, precision=precision)
    attention_values, attention_maps = kept.prediction, kept.attention

    def command(hop: int):
        def run() -> None:
            predict_videos(model_path, video, scratch / f"out{hop}", device, hop=hop,
                           overwrite=True, progress=False, log=lambda *_: None,
                           precision=precision)
        return run

    def per_video(hop: int):
        # What predict_videos runs for each video once the model and dlib are loaded.
        return lambda: predictor.predict_video(video, scratch, hop)

    def write_outputs() -> None:
        values = np.zeros((recording.num_steps, len(targets)))
        plot_emotion_curves(recording.times, {t: values[:, k] for k, t in enumerate(targets)},
                            scratch / "plot.png", title=video.name,
                            missing=~recording.face_found)
        (scratch / "values.csv").write_bytes(predictions_csv(
            recording.times, values, recording.face_found, targets))

    rows = [
        ("end to end, --hop 1, with loading", command(1)),
        ("end to end, --hop 1, per video", per_video(1)),
        *[(f"end to end, --hop {hop}, per video", per_video(hop)) for hop in args.hop],
        ("decode (sampled at the step rate)", lambda: sum(1 for _ in sample_video(video))),
        ("decode + face (overlapped)", lambda: prepare_recording(source, config,
                                                                 aligner=aligner)),
        ("audio features", (lambda: audio_features(source, recording.times,
                                                   PrepareConfig(audio_window=4.0)))
         if reads_audio else None),
        ("model, --hop 1 (model-only bound)", lambda: predict_recordings(
            model, [recording], targets, clip_length, device=device, precision=precision)),
        *[(f"model, --hop {hop}", lambda hop=hop: predict_recordings(
            model, [recording], targets, clip_length, step=hop, device=device,
            precision=precision)) for hop in args.hop],
        ("writing CSV + PNG", write_outputs),
        ("model, every clip in full (no shared work)",
         lambda: naive_model(model, recording.frames, clip_length)),
        ("overlay MP4 (--overlay, optional)", lambda: write_overlay_video(
            video, scratch / "overlay.mp4", recording.times, attention_values, targets,
            recording.face_found, attention_maps, recording.alignment_matrices)),
    ]
    print(f"{video.name}: {duration:.1f} s of video, {recording.num_steps} steps at "
          f"{config.step_rate:g} steps/s, {recording.frames.shape[1]}x{recording.frames.shape[1]}"
          f" crops, model {predictor.trained.model_name} (T={clip_length}), face searched every "
          f"{config.redetect_every} steps and followed between, {args.threads} threads; "
          f"best of {args.repeats}; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs\n")
    print("| pass | seconds | × real time | CPU seconds |")
    print("|---|---:|---:|---:|")
    results = {}
    for name, run in rows:
        if run is None:
            print(f"| {name} | — (this model reads no audio) | — | — |", flush=True)
            continue
        seconds, cpu = best_seconds(run, args.repeats)
        results[name] = seconds
        print(f"| {name} | {seconds:.2f} | {duration / seconds:.1f} | {cpu:.2f} |", flush=True)
    bound = results["model, --hop 1 (model-only bound)"]
    whole = results["end to end, --hop 1, per video"]
    naive = results["model, every clip in full (no shared work)"]
    print(f"\nend to end per video / model-only bound (rates): {bound / whole:.2f}; "
          f"shared per-frame work makes the model stage {naive / bound:.2f}x faster; "
          f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
