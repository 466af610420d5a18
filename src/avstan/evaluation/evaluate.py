"""Score a trained model on a partition of a recording store (a first evaluation).

Predictions are made at every step by sliding the clip (``inference.py``) and scored
with RMSE, Pearson CC and CCC per target, on the concatenation of the partition's
recordings (the AVEC convention) and as the mean over recordings — both raw and after the
AVEC post-processing chain (``postprocess.py``), which is fitted on the devel partition
only and then applied unchanged to the partition being scored.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from avstan.data.clips import usable_recordings
from avstan.data.store import RecordingStore
from avstan.errors import AvstanError
from avstan.evaluation._files import write_report_file
from avstan.evaluation.html_report import (
    image_html,
    paragraph,
    results_table_html,
    write_html_report,
)
from avstan.evaluation.inference import RecordingPrediction, predict_recordings
from avstan.evaluation.metrics import score_partition
from avstan.evaluation.plots import plot_predictions
from avstan.evaluation.postprocess import PostProcessing, fit_postprocessing
from avstan.evaluation.tables import format_results_table
from avstan.training.model_file import load_model_file, update_model_file


@dataclass
class Evaluation:
    """Scores of one model on one partition."""

    model: str
    partition: str
    targets: tuple[str, ...]
    scores: dict[str, dict[str, Any]]  # target -> score_partition(...) result
    attention_in_mask: float | None
    recordings: list[RecordingPrediction] = field(repr=False, default_factory=list)
    # After the AVEC chain fitted on devel (None when no devel data was given):
    postprocessing: dict[str, PostProcessing] | None = None
    postprocessed_scores: dict[str, dict[str, Any]] | None = None
    postprocessed: list[np.ndarray] | None = field(repr=False, default=None)  # (N, K) each
    skipped: list[str] = field(default_factory=list)  # recordings left out, with the reason

    def table_row(self, convention: str = "concatenated",
                  postprocessed: bool = False) -> dict[str, Any]:
        """One row for ``format_results_table``: {model, <target>: {rmse, cc, ccc}, ...}."""
        scores = self.postprocessed_scores if postprocessed else self.scores
        if scores is None:
            raise ValueError("this evaluation has no post-processed scores")
        row: dict[str, Any] = {"model": self.model}
        for target in self.targets:
            row[target] = scores[target][convention]
        row["attention_in_mask"] = self.attention_in_mask
        return row

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "partition": self.partition, "targets": list(self.targets),
                "scores": self.scores, "attention_in_mask": self.attention_in_mask,
                "postprocessed_scores": self.postprocessed_scores,
                "postprocessing": None if self.postprocessing is None else
                {t: chain.to_dict() for t, chain in self.postprocessing.items()},
                "recordings": [r.name for r in self.recordings], "skipped": self.skipped}


def fit_chains(model: nn.Module, devel: Sequence, targets: Sequence[str], clip_length: int,
               batch_size: int = 32, device: str | torch.device = "cpu",
               shifts: Sequence[int] | None = None, progress: bool = False
               ) -> dict[str, PostProcessing]:
    """The AVEC chain per target, fitted on the model's predictions for ``devel``."""
    predictions = predict_recordings(model, devel, targets, clip_length, batch_size, device,
                                     progress=progress)
    return {target: fit_postprocessing([p.prediction[:, k] for p in predictions],
                                       [p.gold[:, k] for p in predictions], shifts=shifts)
            for k, target in enumerate(targets)}


def attach_postprocessing(model_path: str | Path, store_root: str | Path,
                          device: str = "cpu", shifts: Sequence[int] | None = None
                          ) -> dict[str, PostProcessing]:
    """Fit the chain on the store's devel partition and save it into the model file, so
    evaluation and prediction apply it unchanged."""
    model, info = load_model_file(model_path, device)
    devel, _ = usable(model, RecordingStore.open(store_root).load_partition("devel"), store_root)
    if not devel:
        raise AvstanError(f"{store_root}: no devel recordings to fit the post-processing on")
    check_compatible(info, devel, str(model_path), str(store_root))
    chains = fit_chains(model, devel, info["targets"], model.clip_length, device=device,
                        shifts=shifts)
    update_model_file(model_path, postprocessing={t: c.to_dict() for t, c in chains.items()})
    return chains


def evaluate_model(model: nn.Module, recordings: Sequence, targets: Sequence[str],
                   clip_length: int, name: str, partition: str, batch_size: int = 32,
                   device: str | torch.device = "cpu", progress: bool = False,
                   devel: Sequence | None = None, shifts: Sequence[int] | None = None,
                   chains: dict[str, PostProcessing] | None = None) -> Evaluation:
    """Predict every step of ``recordings`` and score each target.

    The partition is also scored after the AVEC post-processing chain: the given
    ``chains`` (e.g. stored in the model file), or, with ``devel`` recordings, a chain
    fitted per target on the devel predictions (``shifts``: time-shift grid, None = no
    shift).
    """
    if not recordings:
        raise AvstanError(f"no complete recordings in the {partition} partition to evaluate on")
    predictions = predict_recordings(model, recordings, targets, clip_length, batch_size, device,
                                     progress=progress)
    scores = _score(predictions, [p.prediction for p in predictions], targets, partition)
    ratios = [p.attention_in_mask for p in predictions if p.attention_in_mask is not None]
    evaluation = Evaluation(name, partition, tuple(targets), scores,
                            float(np.mean(ratios)) if ratios else None, predictions)
    if chains is None and devel:
        chains = fit_chains(model, devel, targets, clip_length, batch_size, device, shifts,
                            progress)
    if chains is not None:
        processed = [np.stack([chains[t].apply([p.prediction[:, k]])[0]
                               for k, t in enumerate(targets)], axis=1) for p in predictions]
        evaluation.postprocessing = chains
        evaluation.postprocessed = processed
        evaluation.postprocessed_scores = _score(predictions, processed, targets, partition)
    return evaluation


def _score(predictions: Sequence[RecordingPrediction], values: Sequence[np.ndarray],
           targets: Sequence[str], partition: str) -> dict[str, dict[str, Any]]:
    scores = {}
    for column, target in enumerate(targets):
        try:
            scores[target] = score_partition([v[:, column] for v in values],
                                             [p.gold[:, column] for p in predictions])
        except AvstanError:
            raise AvstanError(f"the {partition} partition has no {target} labels to score") \
                from None
    return scores


def predictions_csv(evaluation: Evaluation) -> bytes:
    """Per-step predictions next to gold: recording, time, face_found, pred_*, gold_*."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    processed = evaluation.postprocessed
    writer.writerow(["recording", "time", "face_found",
                     *[f"pred_{t}" for t in evaluation.targets],
                     *([f"postprocessed_{t}" for t in evaluation.targets] if processed else []),
                     *[f"gold_{t}" for t in evaluation.targets]])
    for number, rec in enumerate(evaluation.recordings):
        for i in range(len(rec.times)):
            writer.writerow([rec.name, f"{rec.times[i]:.3f}", int(rec.face_found[i]),
                             *[f"{v:.5f}" for v in rec.prediction[i]],
                             *([f"{v:.5f}" for v in processed[number][i]] if processed else []),
                             *["" if np.isnan(v) else f"{v:.5f}" for v in rec.gold[i]]])
    return buffer.getvalue().encode()


def evaluate_model_file(model_path: str | Path, store_root: str | Path, partition: str = "test",
                        output: str | Path | None = None, device: str = "cpu",
                        batch_size: int = 32, progress: bool = True, postprocess: bool = True,
                        shifts: Sequence[int] | None = None) -> Evaluation:
    """Evaluate a ``model.pt`` on a store's partition; with ``output``, write the metrics
    (JSON and markdown), the per-step predictions CSV and a plot per recording.

    With ``postprocess`` the scores after the AVEC chain are reported too: the chain stored
    in the model file (``avstan train`` fits it on devel), or else one fitted now on the
    store's devel partition (which must then have labels)."""
    model, info = load_model_file(model_path, device)
    store = RecordingStore.open(store_root)
    recordings, skipped = usable(model, store.load_partition(partition), store_root)
    if not recordings:
        raise AvstanError(f"{store_root}: no complete recordings the model can read in the "
                          f"{partition!r} partition")
    stored = info.get("postprocessing") if postprocess and shifts is None else None
    chains = ({t: PostProcessing.from_dict(c) for t, c in stored.items()} if stored else None)
    devel = (usable(model, store.load_partition("devel"), store_root)[0]
             if postprocess and chains is None else None)
    if postprocess and chains is None and not devel:
        raise AvstanError(f"{store_root}: no devel recordings to fit the post-processing on; "
                          "pass --no-postprocess to score raw predictions only")
    check_compatible(info, recordings + (devel or []), str(model_path), str(store_root))
    evaluation = evaluate_model(model, recordings, info["targets"], model.clip_length,
                                info["model_name"], partition, batch_size, device, progress,
                                devel=devel, shifts=shifts, chains=chains)
    evaluation.skipped = skipped
    if output is not None:
        write_evaluation(evaluation, Path(output))
    return evaluation


def usable(model: nn.Module, recordings: Sequence, store_root: str | Path
           ) -> tuple[list, list[str]]:
    """The recordings that have every input the model reads; the others are named in a
    warning (e.g. a video without audio for an audio model) and returned as reasons."""
    kept, skipped = usable_recordings(recordings, getattr(model, "input_names", ("clip",)))
    for reason in skipped:
        warnings.warn(f"{store_root}: {reason}", stacklevel=3)
    return kept, skipped


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


def metrics_markdown(evaluation: Evaluation) -> str:
    """Raw (and post-processed) tables, concatenated and per-recording mean."""
    variants = [(False, "raw")]
    if evaluation.postprocessed_scores is not None:
        variants.append((True, "post-processed (chain fitted on devel)"))
    table = "\n\n".join(
        f"**{label}, {kind}** ({evaluation.partition})\n\n"
        + format_results_table([evaluation.table_row(convention, processed)])
        for processed, kind in variants
        for label, convention in (("Concatenated (AVEC)", "concatenated"),
                                  ("Mean over recordings", "per_recording_mean")))
    return table


def score_tables_html(evaluations: Sequence[Evaluation]) -> list[str]:
    """HTML tables: raw and post-processed, concatenated and per-recording mean."""
    fragments = []
    variants = [(False, "raw")]
    if all(e.postprocessed_scores is not None for e in evaluations):
        variants.append((True, "after the AVEC post-processing chain fitted on devel"))
    for processed, kind in variants:
        for label, convention in (("concatenated recordings (AVEC)", "concatenated"),
                                  ("mean over recordings", "per_recording_mean")):
            fragments.append(results_table_html(
                [e.table_row(convention, processed) for e in evaluations],
                f"{evaluations[0].partition} partition, {label}, {kind}"))
    return fragments


def chain_html(evaluation: Evaluation) -> list[str]:
    if not evaluation.postprocessing:
        return [paragraph("No post-processing.")]
    return [paragraph(
        f"{target}: median window {c.median_window} steps, centring {c.centre_offset:+.3f}, "
        f"scaling ×{c.scale_factor:.3f}, time shift {c.shift_steps} steps; devel CCC "
        f"{c.devel_ccc_raw:.3f} → {c.devel_ccc:.3f}")
        for target, c in evaluation.postprocessing.items()]


def write_evaluation(evaluation: Evaluation, output: Path) -> None:
    """metrics.json, metrics.md, predictions.csv, plots/<recording>_<target>.png and a
    self-contained report.html under ``output``."""
    write_report_file(output / "metrics.json", json.dumps(evaluation.to_dict(), indent=1).encode())
    write_report_file(output / "metrics.md", (metrics_markdown(evaluation) + "\n").encode())
    write_report_file(output / "predictions.csv", predictions_csv(evaluation))
    for number, rec in enumerate(evaluation.recordings):
        for column, target in enumerate(evaluation.targets):
            lines = {evaluation.model: rec.prediction[:, column]}
            if evaluation.postprocessed is not None:
                lines[f"{evaluation.model}, post-processed"] = \
                    evaluation.postprocessed[number][:, column]
            plot_predictions(rec.times, rec.gold[:, column], lines, f"{rec.name} — {target}",
                             output / "plots" / f"{rec.name}_{target}.png",
                             target_name=target, missing=~rec.face_found)
    plots = [image_html(output / "plots" / f"{rec.name}_{target}.png",
                        f"{rec.name}: predicted and gold {target} (grey: no face)")
             for rec in evaluation.recordings for target in evaluation.targets]
    write_html_report(output / "report.html", f"avstan evaluation: {evaluation.model}",
                      [("Scores", score_tables_html([evaluation])),
                       ("Post-processing", chain_html(evaluation)),
                       ("Predictions over time", plots)])
