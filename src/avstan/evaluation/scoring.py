"""Scoring a model's predictions on a partition: the :class:`Evaluation` of one model.

Predictions are made at every step by sliding the clip (``inference.py``) and scored with
RMSE, Pearson CC and CCC per target (``avstan.metrics``), on the concatenation of the
partition's recordings (the AVEC convention) and as the mean over recordings, on the
timeline ``timeline.py`` chooses — both raw and after the AVEC post-processing chain
(``postprocess.py``), which is fitted on the devel partition only and then applied
unchanged to the partition being scored.

The post-processing chain is fitted and applied on the step timeline: its median window
and time shift are counted in steps, and its devel statistics come from the devel step
labels (the gold track resampled onto the steps by ``prepare``). Only the chain's output is
then moved onto the gold timeline for scoring.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from avstan.errors import AvstanError
from avstan.evaluation.inference import RecordingPrediction, predict_recordings
from avstan.evaluation.postprocess import DEFAULT_WINDOWS, PostProcessing, fit_postprocessing
from avstan.evaluation.timeline import scored_series, scoring_timeline
from avstan.metrics import score_partition


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
    notes: list[str] = field(default_factory=list)  # e.g. recordings without labels, unscored

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
                "timeline": self.timeline, "notes": self.notes}


def fit_chains(model: nn.Module, devel: Sequence, targets: Sequence[str], clip_length: int,
               batch_size: int = 32, device: str | torch.device = "cpu",
               shifts: Sequence[int] | None = None, progress: bool = False,
               windows: Sequence[int] = DEFAULT_WINDOWS) -> dict[str, PostProcessing]:
    """The AVEC chain per target, fitted on the model's predictions for ``devel`` on the
    step timeline (against the devel step labels), where it is also applied; see the
    module docstring. ``windows``: the median windows tried (``(1,)``: no smoothing, for
    images that are not a timeline)."""
    predictions = predict_recordings(model, devel, targets, clip_length, batch_size, device,
                                     progress=progress)
    return {target: fit_postprocessing([p.prediction[:, k] for p in predictions],
                                       [p.gold[:, k] for p in predictions], windows=windows,
                                       shifts=shifts)
            for k, target in enumerate(targets)}


def evaluate_model(model: nn.Module, recordings: Sequence, targets: Sequence[str],
                   clip_length: int, name: str, partition: str, batch_size: int = 32,
                   device: str | torch.device = "cpu", progress: bool = False,
                   devel: Sequence | None = None, shifts: Sequence[int] | None = None,
                   chains: dict[str, PostProcessing] | None = None,
                   windows: Sequence[int] = DEFAULT_WINDOWS) -> Evaluation:
    """Predict every step of ``recordings`` and score each target.

    The partition is also scored after the AVEC post-processing chain: the given
    ``chains`` (e.g. stored in the model file), or, with ``devel`` recordings, a chain
    fitted per target on the devel predictions (``shifts``: time-shift grid, None = no
    shift; ``windows``: the median windows tried).
    """
    if not recordings:
        raise AvstanError(f"no complete recordings in the {partition} partition to evaluate on")
    predictions = predict_recordings(model, recordings, targets, clip_length, batch_size, device,
                                     progress=progress)
    scores = score_predictions(predictions, [p.prediction for p in predictions], targets,
                               partition)
    ratios = [p.attention_in_mask for p in predictions if p.attention_in_mask is not None]
    evaluation = Evaluation(name, partition, tuple(targets), scores,
                            float(np.mean(ratios)) if ratios else None, predictions,
                            timeline=scoring_timeline(predictions),
                            notes=unlabelled_notes(predictions, scores, targets, partition))
    if chains is None and devel:
        chains = fit_chains(model, devel, targets, clip_length, batch_size, device, shifts,
                            progress, windows)
    if chains is not None:
        processed = [np.stack([chains[t].apply([p.prediction[:, k]])[0]
                               for k, t in enumerate(targets)], axis=1) for p in predictions]
        evaluation.postprocessing = chains
        evaluation.postprocessed = processed
        evaluation.postprocessed_scores = score_predictions(predictions, processed, targets,
                                                            partition)
    return evaluation


def unlabelled_notes(predictions: Sequence[RecordingPrediction],
                     scores: dict[str, dict[str, Any]], targets: Sequence[str],
                     partition: str) -> list[str]:
    """One note (also warned) per target naming the recordings that have no label of it:
    they are left out of that target's score (both conventions)."""
    notes = []
    for target in targets:
        missing = [p.name for p, score in zip(predictions, scores[target]["per_recording"],
                                              strict=True) if score is None]
        if missing:
            notes.append(f"the {partition} partition's {', '.join(missing)} "
                         f"{'has' if len(missing) == 1 else 'have'} no {target} labels: left "
                         f"out of the {target} scores")
    for note in notes:
        warnings.warn(note, stacklevel=3)
    return notes


def score_predictions(predictions: Sequence[RecordingPrediction], values: Sequence[np.ndarray],
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
