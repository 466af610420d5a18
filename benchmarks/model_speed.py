"""Model speed: GFLOP per clip, forward and training clips/s, as a fraction of matmul peak.

For every registered model at S = 48, 64, 96 (T = 16, batch 16): forward GFLOP per clip
(torch.utils.flop_counter), forward clips/s (eval, inference mode), training-step clips/s
(forward + backward + Adam step), and the achieved GFLOP/s of each as a fraction of a
float32 matmul peak measured in the same run, on the same threads (the reference).
Training FLOPs are counted as 3× forward (backward ≈ 2× forward).

    .venv/bin/python benchmarks/model_speed.py [--sizes 48 64 96] [--threads 2] [--device cpu]
        [--compare-layout]

``--compare-layout`` also times each model with its convolutions in the default
(contiguous) layout, the reference for ``create_model``'s channels-last convolutions:
the two alternate (channels-last, contiguous, channels-last, contiguous), best of two each.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from avstan.models import create_model, list_models


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, size: int = 2048, repeats: int = 10,
                rounds: int = 3) -> float:
    """GFLOP/s of a square float32 matmul, best of ``rounds``: the reference the models are
    measured against."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    for _ in range(2):
        a @ b
    best = 0.0
    for _ in range(rounds):
        synchronise(device)
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        synchronise(device)
        best = max(best, 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9)
    return best


def forward_gflop(model: torch.nn.Module, clip: torch.Tensor) -> float:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(clip[:1])
    return counter.get_total_flops() / 1e9


def timed(step, device: torch.device, min_seconds: float, min_repeats: int = 2) -> float:
    """Seconds per call of ``step`` after one warm-up call."""
    step()
    synchronise(device)
    repeats, start = 0, time.perf_counter()
    while repeats < min_repeats or time.perf_counter() - start < min_seconds:
        step()
        repeats += 1
    synchronise(device)
    return (time.perf_counter() - start) / repeats


def measure(name: str, size: int, batch: int, device: torch.device, min_seconds: float,
            contiguous: bool = False) -> dict[str, float]:
    torch.manual_seed(0)
    model = create_model(name, crop_size=size, clip_length=16).to(device)
    if contiguous:  # the default layout, against create_model's channels-last convolutions
        for parameter in model.parameters():
            parameter.data = parameter.data.contiguous()
    clip = torch.rand(batch, 3, 16, size, size, device=device)
    target = torch.rand(batch, len(model.targets), device=device)
    gflop = forward_gflop(model, clip)
    model.eval()

    def forward() -> None:
        with torch.inference_mode():
            model(clip)

    forward_s = timed(forward, device, min_seconds)
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)

    def train_step() -> None:
        optimiser.zero_grad(set_to_none=True)
        loss = torch.mean((model(clip)["prediction"] - target) ** 2)
        loss.backward()
        optimiser.step()

    train_s = timed(train_step, device, min_seconds)
    return {"gflop": gflop, "forward": batch / forward_s, "train": batch / train_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[48, 64, 96])
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--min-seconds", type=float, default=3.0,
                        help="time each measurement for at least this long")
    parser.add_argument("--compare-layout", action="store_true",
                        help="also time each model with its convolutions in the default "
                             "(contiguous) layout and print the channels-last speed-up")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    device = torch.device(args.device)
    peak = matmul_peak(device)
    print(f"device {device}, {args.threads} threads, batch {args.batch}, T=16; "
          f"float32 matmul peak {peak:.1f} GFLOP/s (2048x2048, the reference)\n")
    header = ("| model | S | GFLOP/clip | forward clips/s | forward / peak "
              "| train clips/s | train / peak |")
    print(header)
    print("|---|---:|---:|---:|---:|---:|---:|")
    layout_rows = []
    for size in args.sizes:
        for name in args.models or list_models():
            result = measure(name, size, args.batch, device, args.min_seconds)
            forward_ratio = result["gflop"] * result["forward"] / peak
            train_ratio = 3 * result["gflop"] * result["train"] / peak
            print(f"| {name} | {size} | {result['gflop']:.2f} | {result['forward']:.1f} "
                  f"| {forward_ratio:.2f} | {result['train']:.1f} | {train_ratio:.2f} |",
                  flush=True)
            if args.compare_layout:
                # alternated with the default layout, best of two rounds each, so a change
                # in the machine's speed (a shared host) falls on both alike
                plain_1 = measure(name, size, args.batch, device, args.min_seconds, True)
                again = measure(name, size, args.batch, device, args.min_seconds)
                plain_2 = measure(name, size, args.batch, device, args.min_seconds, True)
                best = {key: (max(result[key], again[key]), max(plain_1[key], plain_2[key]))
                        for key in ("forward", "train")}
                layout_rows.append((name, size, best))
    if layout_rows:
        print("\n| model | S | forward clips/s, channels-last / contiguous | forward speed-up "
              "| train clips/s, channels-last / contiguous | train speed-up |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, size, best in layout_rows:
            cells = " | ".join(f"{fast:.1f} / {plain:.1f} | {fast / plain:.2f}"
                               for fast, plain in best.values())
            print(f"| {name} | {size} | {cells} |")
    print(f"\nreference re-measured after the runs: {matmul_peak(device):.1f} GFLOP/s")


if __name__ == "__main__":
    main()
