"""Which timeline a partition is scored on, and the predictions moved onto it.

AVEC scores on the gold standard's own timeline (RECOLA 40 ms, SEWA 100 ms), not on the
model's steps. When every scored recording keeps its corpus's gold track (``gold_times``,
``gold_labels``: what ``avstan prepare`` stores from the reader), the per-step predictions
— raw and post-processed, after missing faces were interpolated — are linearly
interpolated from the step times onto the gold times (gold times before the first or after
the last step take that step's value) and scored against the gold values there; NaN gold
values are ignored as everywhere. Otherwise (the synthetic corpus, whose step labels are
the truth, or a store where some recordings lack the track) the scores are on the step
timeline against the step labels; :func:`scoring_timeline` says which in words.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from avstan.evaluation.inference import RecordingPrediction


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
