"""What ``avstan predict --hop k`` costs in accuracy: test CCC at several hops.

``--hop k`` runs the model on every k-th step only and interpolates linearly between
(``predict.interpolate_steps``, the code ``predict`` runs); the model time falls by k
(``benchmarks/predict_speed.py``). This scores a trained model that way on a store's test
partition, raw (no post-processing), concatenated as AVEC does, next to ``--hop 1``
measured in the same run (the reference), with the largest change of any predicted value.

    .venv/bin/python benchmarks/hop_accuracy.py MODEL STORE [--hops 1 2 4 8] [--partition test]

e.g. ``runs/demo/models/sta3d/model.pt runs/demo/corpus`` after ``make demo``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from avstan.apply.predict import interpolate_steps
from avstan.data.clips import usable_recordings
from avstan.data.store import RecordingStore
from avstan.evaluation.inference import predict_recordings
from avstan.metrics import score_partition
from avstan.models.model_file import TrainedModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("store")
    parser.add_argument("--hops", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--partition", default="test")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as predict does
    trained = TrainedModel.load(args.model)
    model, targets = trained.network, trained.targets
    store = RecordingStore.open(args.store)
    recordings, _ = usable_recordings(store.load_partition(args.partition), trained.input_names)
    hops = sorted(set(args.hops) | {1})
    values: dict[int, list[np.ndarray]] = {}
    golds = []
    for hop in hops:
        predictions = predict_recordings(model, recordings, targets, model.clip_length,
                                         step=hop)
        values[hop] = [interpolate_steps(np.arange(0, r.num_steps, hop), p.prediction,
                                         r.num_steps) if hop > 1 else p.prediction
                       for r, p in zip(recordings, predictions, strict=True)]
        if hop == 1:
            golds = [p.gold for p in predictions]
    steps = sum(r.num_steps for r in recordings)
    print(f"{args.model} on {args.store} ({args.partition}: {len(recordings)} recordings, "
          f"{steps} steps), raw predictions, CCC of all recordings concatenated\n")
    print("| --hop | model runs | " + " | ".join(f"CCC {t}" for t in targets)
          + " | " + " | ".join(f"Δ {t} vs --hop 1" for t in targets)
          + " | largest change of a value |")
    print("|---:|---:|" + "---:|" * (2 * len(targets) + 1))
    reference = None
    for hop in hops:
        ccc = [score_partition([v[:, k] for v in values[hop]],
                               [g[:, k] for g in golds])["concatenated"]["ccc"]
               for k in range(len(targets))]
        reference = reference or ccc
        change = max(float(np.abs(a - b).max()) for a, b in zip(values[hop], values[1],
                                                                   strict=True))
        runs = sum(len(range(0, r.num_steps, hop)) for r in recordings)
        print(f"| {hop} | {runs} | " + " | ".join(f"{c:.4f}" for c in ccc) + " | "
              + " | ".join(f"{c - r:+.4f}" for c, r in zip(ccc, reference, strict=True))
              + f" | {change:.3f} |")


if __name__ == "__main__":
    main()
