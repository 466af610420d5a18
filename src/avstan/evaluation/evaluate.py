"""Score a trained model on a partition of a recording store (a first evaluation).

Predictions are made at every step by sliding the clip (``inference.py``) and scored
with RMSE, Pearson CC and CCC per target, on the concatenation of the partition's
recordings (the AVEC convention) and as the mean over recordings. No post-processing is
applied here (the AVEC chain is its own stage).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from avstan.data.store import RecordingStore
from avstan.errors import AvstanError
from avstan.evaluation._files import write_report_file
from avstan.evaluation.inference import RecordingPrediction, predict_recordings
from avstan.evaluation.metrics import score_partition
from avstan.evaluation.plots import plot_predictions
from avstan.evaluation.tables import format_results_table
from avstan.training.model_file import load_model_file


@dataclass
class Evaluation:
    """Scores of one model on one partition."""

    model: str
    partition: str
    targets: tuple[str, ...]
    scores: dict[str, dict[str, Any]]  # target -> score_partition(...) result
    attention_in_mask: float | None
    recordings: list[RecordingPrediction] = field(repr=False, default_factory=list)

    def table_row(self, convention: str = "concatenated") -> dict[str, Any]:
        """One row for ``format_results_table``: {model, <target>: {rmse, cc, ccc}, ...}."""
        row: dict[str, Any] = {"model": self.model}
        for target in self.targets:
            row[target] = self.scores[target][convention]
        row["attention_in_mask"] = self.attention_in_mask
        return row

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "partition": self.partition, "targets": list(self.targets),
                "scores": self.scores, "attention_in_mask": self.attention_in_mask,
                "recordings": [r.name for r in self.recordings]}


def evaluate_model(model: nn.Module, recordings: Sequence, targets: Sequence[str],
                   clip_length: int, name: str, partition: str, batch_size: int = 32,
                   device: str | torch.device = "cpu", progress: bool = False) -> Evaluation:
    """Predict every step of ``recordings`` and score each target."""
    if not recordings:
        raise AvstanError(f"no complete recordings in the {partition} partition to evaluate on")
    predictions = predict_recordings(model, recordings, targets, clip_length, batch_size, device,
                                     progress=progress)
    scores = {}
    for column, target in enumerate(targets):
        try:
            scores[target] = score_partition([p.prediction[:, column] for p in predictions],
                                             [p.gold[:, column] for p in predictions])
        except AvstanError:
            raise AvstanError(f"the {partition} partition has no {target} labels to score") \
                from None
    ratios = [p.attention_in_mask for p in predictions if p.attention_in_mask is not None]
    return Evaluation(name, partition, tuple(targets), scores,
                      float(np.mean(ratios)) if ratios else None, predictions)


def predictions_csv(evaluation: Evaluation) -> bytes:
    """Per-step predictions next to gold: recording, time, face_found, pred_*, gold_*."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["recording", "time", "face_found",
                     *[f"pred_{t}" for t in evaluation.targets],
                     *[f"gold_{t}" for t in evaluation.targets]])
    for rec in evaluation.recordings:
        for i in range(len(rec.times)):
            writer.writerow([rec.name, f"{rec.times[i]:.3f}", int(rec.face_found[i]),
                             *[f"{v:.5f}" for v in rec.prediction[i]],
                             *["" if np.isnan(v) else f"{v:.5f}" for v in rec.gold[i]]])
    return buffer.getvalue().encode()


def evaluate_model_file(model_path: str | Path, store_root: str | Path, partition: str = "test",
                        output: str | Path | None = None, device: str = "cpu",
                        batch_size: int = 32, progress: bool = True) -> Evaluation:
    """Evaluate a ``model.pt`` on a store's partition; with ``output``, write the metrics
    (JSON and markdown), the per-step predictions CSV and a plot per recording."""
    model, info = load_model_file(model_path, device)
    store = RecordingStore.open(store_root)
    recordings = store.load_partition(partition)
    if not recordings:
        raise AvstanError(f"{store_root}: no complete recordings in the {partition!r} partition")
    check_compatible(info, recordings, str(model_path), str(store_root))
    evaluation = evaluate_model(model, recordings, info["targets"], model.clip_length,
                                info["model_name"], partition, batch_size, device, progress)
    if output is not None:
        write_evaluation(evaluation, Path(output))
    return evaluation


def check_compatible(info: dict[str, Any], recordings: Sequence, model_path: str,
                     store_root: str) -> None:
    """Refuse a store whose crop size or step rate differs from the model's training data."""
    crop = info["model_options"].get("crop_size")
    sizes = {r.crop_size for r in recordings}
    if crop is not None and sizes != {crop}:
        raise AvstanError(f"{store_root}: crops are {sorted(sizes)} px but {model_path} was "
                          f"trained on {crop} px; prepare the corpus with --crop-size {crop}")
    rates = {r.step_rate for r in recordings}
    if rates != {info["step_rate"]}:
        raise AvstanError(f"{store_root}: step rate {sorted(rates)} but {model_path} was trained "
                          f"at {info['step_rate']} steps/s; prepare the corpus at that rate")


def write_evaluation(evaluation: Evaluation, output: Path) -> None:
    """metrics.json, metrics.md, predictions.csv and plots/<recording>.png under ``output``."""
    write_report_file(output / "metrics.json", json.dumps(evaluation.to_dict(), indent=1).encode())
    table = "\n\n".join(
        f"**{label}** ({evaluation.partition})\n\n"
        + format_results_table([evaluation.table_row(convention)])
        for label, convention in (("Concatenated (AVEC)", "concatenated"),
                                  ("Mean over recordings", "per_recording_mean")))
    write_report_file(output / "metrics.md", (table + "\n").encode())
    write_report_file(output / "predictions.csv", predictions_csv(evaluation))
    for rec in evaluation.recordings:
        for column, target in enumerate(evaluation.targets):
            figure = plot_predictions(rec.times, rec.gold[:, column],
                                      {evaluation.model: rec.prediction[:, column]},
                                      f"{rec.name} — {target}",
                                      output / "plots" / f"{rec.name}_{target}.png",
                                      target_name=target, missing=~rec.face_found)
            del figure
