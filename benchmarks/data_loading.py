"""Training input: clips/s read from a recording store against the clips/s a model trains at.

A synthetic store (``--recordings`` train recordings of ``--steps`` steps, S = ``--size``,
no voice) is read as training reads it — ``ClipDataset`` over the train partition,
clip length 16, stride 8, augmentation on, batches of 16, shuffled — with the frames held in
memory (``data.frames_in_memory: true``, the default) and left in the files
(``false``) with 0 and ``--workers`` DataLoader worker processes (each opening its own
file handles). The reference, measured in the same run: the clips/s ``--model`` trains at
(forward, backward and Adam step on batches of 16 on ``--device``). Data loading is not
the bottleneck where its rate is well above the model's.

    .venv/bin/python benchmarks/data_loading.py [--size 48] [--model sta3d] [--workers 2]
        [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from avstan.data.clips import AugmentConfig, ClipDataset
from avstan.data.store import RecordingStore
from avstan.data.synthetic import PRESETS, generate_corpus
from avstan.models import create_model


def loading_rate(dataset: ClipDataset, workers: int, batches: int) -> float:
    """Clips per second over ``batches`` batches of 16 (after the workers started)."""
    loader = DataLoader(dataset, batch_size=16, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0)
    iterator = iter(loader)
    next(iterator)  # start the workers, open the files
    start, clips = time.perf_counter(), 0
    for _ in range(batches):
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            batch = next(iterator)
        clips += len(batch["clip"])
    return clips / (time.perf_counter() - start)


def training_rate(model_name: str, size: int, device: str, batches: int) -> float:
    model = create_model(model_name, crop_size=size, clip_length=16).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    clip = torch.rand(16, 3, 16, size, size, device=device)
    target = torch.zeros(16, 2, device=device)
    for number in range(batches + 1):
        if number == 1:
            start = time.perf_counter()
        optimiser.zero_grad()
        loss = torch.nn.functional.mse_loss(model(clip=clip)["prediction"], target)
        loss.backward()
        optimiser.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 16 * batches / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--recordings", type=int, default=8)
    parser.add_argument("--steps", type=int, default=240)
    parser.add_argument("--model", default="sta3d")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = replace(PRESETS["default"], crop_size=args.size, num_train=args.recordings,
                         num_devel=1, num_test=1, steps_per_recording=args.steps, audio=False)
        generate_corpus(folder, config, progress=False)
        store = RecordingStore.open(Path(folder))
        rows = []
        for in_memory, workers in ((True, 0), (False, 0), (False, args.workers)):
            recordings = store.load_partition("train", lazy_frames=not in_memory)
            dataset = ClipDataset(recordings, 16, stride=8, labelled_only=True,
                                  augment=AugmentConfig())
            rate = loading_rate(dataset, workers, args.batches)
            rows.append((f"frames {'in memory' if in_memory else 'in the files'}, "
                         f"{workers} workers", rate))
    reference = training_rate(args.model, args.size, args.device, max(4, args.batches // 8))
    print(f"{args.recordings} train recordings × {args.steps} steps, S = {args.size}, "
          f"T = 16, stride 8, batches of 16, augmentation on; reference: {args.model} "
          f"training on {args.device}\n")
    print("| input | clips/s | ratio to the model's training clips/s |")
    print("|---|---:|---:|")
    for name, rate in rows:
        print(f"| {name} | {rate:.0f} | {rate / reference:.1f} |")
    print(f"| {args.model} training (forward, backward, Adam) | {reference:.1f} | 1.0 |")


if __name__ == "__main__":
    main()
