"""Score a trained model on a partition of a recording store (a first evaluation).

Predictions are made at every step by sliding the clip (``inference.py``) and scored
with RMSE, Pearson CC and CCC per target, on the concatenation of the partition's
recordings (the AVEC convention) and as the mean over recordings — both raw and after the
AVEC post-processing chain (``postprocess.py``), which is fitted on the devel partition
only and then applied unchanged to the partition being scored.

**Which timeline is scored.** AVEC scores on the gold standard's own timeline (RECOLA
40 ms, SEWA 100 ms), not on the model's steps. When every scored recording keeps its
corpus's gold track (``gold_times``, ``gold_labels``: what ``avstan prepare`` stores from
the reader), the per-step predictions — raw and post-processed, after missing faces were
interpolated — are linearly interpolated from the step times onto the gold times (gold
times before the first or after the last step take that step's value) and scored against
the gold values there; NaN gold values are ignored as everywhere. Otherwise (the synthetic
corpus, whose step labels are the truth, or a store where some recordings lack the track)
the scores are on the step timeline against the step labels. Every :class:`Evaluation`
says which in ``timeline`` (e.g. ``"gold (40 ms)"``, ``"steps (250 ms)"``), and so do
metrics.json, metrics.md and report.html.

The post-processing chain is fitted and applied on the step timeline: its median window
and time shift are counted in steps, and its devel statistics come from the devel step
labels (the gold track resampled onto the steps by ``prepare``). Only the chain's output is
then moved onto the gold timeline for scoring.
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
from avstan.io import write_report_file
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
    timeline: str = "steps"  # what was scored: scoring_timeline(recordings)

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
                "recordings": [r.name for r in self.recordings], "skipped": self.skipped,
                "timeline": self.timeline}


def fit_chains(model: nn.Module, devel: Sequence, targets: Sequence[str], clip_length: int,
               batch_size: int = 32, device: str | torch.device = "cpu",
               shifts: Sequence[int] | None = None, progress: bool = False
               ) -> dict[str, PostProcessing]:
    """The AVEC chain per target, fitted on the model's predictions for ``devel`` on the
    step timeline (against the devel step labels), where it is also applied; see the
    module docstring."""
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
                            float(np.mean(ratios)) if ratios else None, predictions,
                            timeline=scoring_timeline(predictions))
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


def on_gold_timeline(predictions: Sequence[RecordingPrediction]) -> bool:
    """True when every recording has its corpus's gold track, so scores are taken there."""
    return bool(predictions) and all(p.gold_times is not None and p.gold_labels is not None
                                     for p in predictions)


def onto_times(times: np.ndarray, values: np.ndarray, new_times: np.ndarray) -> np.ndarray:
    """``values (N, K)`` at ``times (N,)``, linearly interpolated at ``new_times (M,)``:
    ``(M, K)``; new times before the first or after the last of ``times`` take the nearest
    value (``np.interp``'s ends)."""
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64).reshape(len(times), -1)
    return np.stack([np.interp(new_times, times, column) for column in values.T], axis=1)


def scored_series(predictions: Sequence[RecordingPrediction], values: Sequence[np.ndarray]
                  ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """What is scored, per recording: ``(values, gold)``, each ``(M_i, K)``.

    ``values`` are per-step predictions (raw or post-processed, ``(N_i, K)`` each). On the
    gold timeline (:func:`on_gold_timeline`) they are interpolated onto each recording's
    gold times and paired with its gold labels; otherwise they are paired with the step
    labels as they are."""
    if not on_gold_timeline(predictions):
        return list(values), [p.gold for p in predictions]
    return ([onto_times(p.times, v, p.gold_times) for p, v in zip(predictions, values,
                                                                   strict=True)],
            [p.gold_labels for p in predictions])


def _milliseconds(series: Sequence[np.ndarray]) -> str:
    """The typical spacing of ``series`` (times in s) as " (40 ms)", a range if recordings
    differ, "" if no recording has two times."""
    spacings = sorted({f"{1000 * float(np.median(np.diff(t))):.1f}".rstrip("0").rstrip(".")
                       for t in series if len(t) > 1}, key=float)
    if not spacings:
        return ""
    return f" ({spacings[0]} ms)" if len(spacings) == 1 else \
        f" ({spacings[0]}–{spacings[-1]} ms)"


def scoring_timeline(predictions: Sequence[RecordingPrediction]) -> str:
    """Which timeline :func:`scored_series` scores on, in words: ``"gold (40 ms)"``, or
    ``"steps (250 ms)"`` (naming how many recordings lack a gold track when some have one)."""
    if on_gold_timeline(predictions):
        return "gold" + _milliseconds([p.gold_times for p in predictions])
    text = "steps" + _milliseconds([p.times for p in predictions])
    lacking = sum(p.gold_times is None for p in predictions)
    if 0 < lacking < len(predictions):
        text += (f"; {lacking} of {len(predictions)} recordings have no gold track, so none "
                 "is scored on it")
    return text


def _score(predictions: Sequence[RecordingPrediction], values: Sequence[np.ndarray],
           targets: Sequence[str], partition: str) -> dict[str, dict[str, Any]]:
    """score_partition per target on the timeline of :func:`scored_series`."""
    values, golds = scored_series(predictions, values)
    scores = {}
    for column, target in enumerate(targets):
        try:
            scores[target] = score_partition([v[:, column] for v in values],
                                             [g[:, column] for g in golds])
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


def gold_timeline_csv(evaluation: Evaluation) -> bytes:
    """What was scored on the gold timeline, one row per gold time: recording, time,
    pred_* (and postprocessed_*) interpolated there, gold_*."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    processed = evaluation.postprocessed
    writer.writerow(["recording", "time", *[f"pred_{t}" for t in evaluation.targets],
                     *([f"postprocessed_{t}" for t in evaluation.targets] if processed else []),
                     *[f"gold_{t}" for t in evaluation.targets]])
    raw, golds = scored_series(evaluation.recordings,
                               [r.prediction for r in evaluation.recordings])
    after = scored_series(evaluation.recordings, processed)[0] if processed else None
    for number, rec in enumerate(evaluation.recordings):
        for i, time in enumerate(rec.gold_times):
            writer.writerow([rec.name, f"{time:.3f}", *[f"{v:.5f}" for v in raw[number][i]],
                             *([f"{v:.5f}" for v in after[number][i]] if after else []),
                             *["" if np.isnan(v) else f"{v:.5f}" for v in golds[number][i]]])
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
        f"**{label}, {kind}** ({evaluation.partition}, timeline: {evaluation.timeline})\n\n"
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
    timeline = " / ".join(dict.fromkeys(e.timeline for e in evaluations))
    for processed, kind in variants:
        for label, convention in (("concatenated recordings (AVEC)", "concatenated"),
                                  ("mean over recordings", "per_recording_mean")):
            fragments.append(results_table_html(
                [e.table_row(convention, processed) for e in evaluations],
                f"{evaluations[0].partition} partition, {label}, {kind}, timeline: {timeline}"))
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
    """metrics.json, metrics.md, predictions.csv (per step), plots/<recording>_<target>.png
    and a self-contained report.html under ``output``; when scored on the gold timeline also
    predictions_gold_timeline.csv (exactly the pairs that were scored)."""
    write_report_file(output / "metrics.json", json.dumps(evaluation.to_dict(), indent=1).encode())
    write_report_file(output / "metrics.md", (metrics_markdown(evaluation) + "\n").encode())
    write_report_file(output / "predictions.csv", predictions_csv(evaluation))
    if on_gold_timeline(evaluation.recordings):
        write_report_file(output / "predictions_gold_timeline.csv",
                          gold_timeline_csv(evaluation))
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
