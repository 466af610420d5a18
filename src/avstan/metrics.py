"""Scores for continuous emotion predictions, and the attention-in-mask ratio.

Pure numpy functions, float64 inside. RMSE, Pearson's CC and the concordance correlation
coefficient (CCC, eq. 4 of Lee et al., ICASSP 2018)::

    ccc = 2 ρ σx σy / (σx² + σy² + (μx − μy)²) = 2 cov(x, y) / (var x + var y + (μx − μy)²)

with *biased* (population, ``ddof=0``) moments, as in the AVEC baselines and ``audmetric``.

Choices the paper leaves open, fixed here:

- A pair where the prediction or the gold value is NaN is ignored (unlabelled steps).
- A constant prediction (or constant gold) scores CC = 0 and CCC = 0, not NaN, so tables
  and model selection never see NaN. This includes the degenerate case where both are the
  same constant: its CCC formula is 0/0, and it is defined as 0 too — a model that outputs
  one value has shown no agreement *over time*, whatever that value is.
- With no labelled pair left, there is nothing to score: :class:`AvstanError` is raised.

A partition is scored both on the concatenation of its recordings (the AVEC convention,
which rewards getting each recording's level right) and as the mean of per-recording
scores (which rewards following each recording's changes); see :func:`score_partition`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from avstan.errors import AvstanError

METRIC_NAMES = ("rmse", "cc", "ccc")


def _as_float64(values: Any) -> np.ndarray:
    """A float64 numpy copy of ``values`` (array, list, or a CPU/GPU torch tensor)."""
    if hasattr(values, "detach"):  # torch.Tensor, without importing torch
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64)


def _labelled_pairs(pred: Any, gold: Any) -> tuple[np.ndarray, np.ndarray]:
    """Flatten ``pred`` and ``gold`` (same shape) and drop pairs where either is NaN.

    Raises AvstanError when no pair is left.
    """
    pred = _as_float64(pred)
    gold = _as_float64(gold)
    if pred.shape != gold.shape:
        raise ValueError(f"pred and gold differ in shape: {pred.shape} vs {gold.shape}")
    pred = pred.ravel()
    gold = gold.ravel()
    keep = ~(np.isnan(pred) | np.isnan(gold))
    if not keep.any():
        raise AvstanError(
            f"no labelled steps to score: all {pred.size} prediction/gold pairs have a NaN; "
            "check that the labels cover the recordings being evaluated"
        )
    return pred[keep], gold[keep]


def _centred(values: np.ndarray) -> np.ndarray:
    """``values`` minus its mean; exactly zero for a constant array.

    The mean of a constant float array can differ from the constant in the last bit, and
    the resulting ~1e-17 residues would make CC of a constant prediction a random ±1.
    """
    if values.max() == values.min():
        return np.zeros_like(values)
    return values - values.mean()


def rmse(pred: Any, gold: Any) -> float:
    """Root mean squared error over labelled pairs.

    Args:
        pred: predictions, any shape (usually ``(N,)``).
        gold: gold values, the same shape; NaN pairs (in either) are ignored.
    """
    pred, gold = _labelled_pairs(pred, gold)
    return float(np.sqrt(np.mean((pred - gold) ** 2)))


def pearson_cc(pred: Any, gold: Any) -> float:
    """Pearson's correlation coefficient over labelled pairs; 0 if either side is constant.

    Args:
        pred: predictions, any shape (usually ``(N,)``).
        gold: gold values, the same shape; NaN pairs (in either) are ignored.
    """
    pred, gold = _labelled_pairs(pred, gold)
    a = _centred(pred)
    b = _centred(gold)
    norm = np.sqrt(np.dot(a, a) * np.dot(b, b))
    if norm == 0.0:
        return 0.0
    return float(np.clip(np.dot(a, b) / norm, -1.0, 1.0))


def concordance_cc(pred: Any, gold: Any) -> float:
    """Concordance correlation coefficient (eq. 4, biased moments) over labelled pairs.

    ``2 cov / (var_pred + var_gold + (mean_pred − mean_gold)²)``; 0 if either side is
    constant (including both constant and equal, where the formula is 0/0).

    Args:
        pred: predictions, any shape (usually ``(N,)``).
        gold: gold values, the same shape; NaN pairs (in either) are ignored.
    """
    pred, gold = _labelled_pairs(pred, gold)
    a = _centred(pred)
    b = _centred(gold)
    n = pred.size
    covariance = np.dot(a, b) / n
    denominator = np.dot(a, a) / n + np.dot(b, b) / n + (pred.mean() - gold.mean()) ** 2
    if covariance == 0.0 or denominator == 0.0:
        return 0.0
    return float(2.0 * covariance / denominator)


def score(pred: Any, gold: Any) -> dict[str, float]:
    """RMSE, CC and CCC of one prediction series: ``{"rmse": .., "cc": .., "ccc": ..}``.

    Args:
        pred: predictions, any shape (usually ``(N,)``).
        gold: gold values, the same shape; NaN pairs (in either) are ignored.
    """
    pred, gold = _labelled_pairs(pred, gold)
    return {
        "rmse": rmse(pred, gold),
        "cc": pearson_cc(pred, gold),
        "ccc": concordance_cc(pred, gold),
    }


def _has_labelled_pair(pred: np.ndarray, gold: np.ndarray) -> bool:
    return bool((~(np.isnan(pred) | np.isnan(gold))).any())


def score_partition(preds: Sequence[Any], golds: Sequence[Any]) -> dict[str, Any]:
    """Score a partition of recordings both ways the literature does.

    Args:
        preds: one prediction array per recording, each ``(N_i,)``.
        golds: the matching gold arrays, each ``(N_i,)``; NaN marks an unlabelled step.

    Returns:
        ``{"concatenated": {rmse, cc, ccc}, "per_recording_mean": {rmse, cc, ccc},
        "per_recording": [ {rmse, cc, ccc} or None, ... ]}``. ``concatenated`` scores all
        recordings joined end to end (the AVEC convention); ``per_recording_mean`` is the
        unweighted mean of each recording's scores, skipping recordings with no labelled
        step (those are ``None`` in ``per_recording``, which follows the input order).

    Raises:
        AvstanError: if no recording has a labelled step.
    """
    if len(preds) != len(golds):
        raise ValueError(f"{len(preds)} prediction arrays but {len(golds)} gold arrays")
    pred_arrays = [_as_float64(p).ravel() for p in preds]
    gold_arrays = [_as_float64(g).ravel() for g in golds]
    for index, (p, g) in enumerate(zip(pred_arrays, gold_arrays, strict=True)):
        if p.shape != g.shape:
            raise ValueError(f"recording {index}: pred and gold differ in shape: "
                             f"{p.shape} vs {g.shape}")
    if not pred_arrays:
        raise AvstanError("no labelled steps to score: the partition has no recordings")

    concatenated = score(np.concatenate(pred_arrays), np.concatenate(gold_arrays))
    per_recording: list[dict[str, float] | None] = [
        score(p, g) if _has_labelled_pair(p, g) else None
        for p, g in zip(pred_arrays, gold_arrays, strict=True)
    ]
    scored = [s for s in per_recording if s is not None]
    per_recording_mean = {
        name: float(np.mean([s[name] for s in scored])) for name in METRIC_NAMES
    }
    return {
        "concatenated": concatenated,
        "per_recording_mean": per_recording_mean,
        "per_recording": per_recording,
    }


def score_targets(
    pred: Any, gold: Any, target_names: Sequence[str] = ("valence", "arousal")
) -> dict[str, dict[str, float]]:
    """Score each column (target) separately.

    Args:
        pred: predictions ``(N, K)``.
        gold: gold values ``(N, K)``; NaN pairs are ignored per column.
        target_names: ``K`` names, e.g. ``("valence", "arousal")``.

    Returns:
        ``{name: {"rmse": .., "cc": .., "ccc": ..}}`` in column order.
    """
    pred = _as_float64(pred)
    gold = _as_float64(gold)
    if pred.ndim != 2 or pred.shape != gold.shape:
        raise ValueError(f"expected pred and gold of the same shape (N, K), "
                         f"got {pred.shape} and {gold.shape}")
    if pred.shape[1] != len(target_names):
        raise ValueError(f"{pred.shape[1]} columns but {len(target_names)} target names")
    results = {}
    for column, name in enumerate(target_names):
        try:
            results[name] = score(pred[:, column], gold[:, column])
        except AvstanError as error:
            raise AvstanError(f"target {name!r}: {error}") from None
    return results


def attention_in_mask_ratio(
    attention: Any, mask: Any, reduction: Literal["mean", "none"] = "mean"
) -> float | np.ndarray:
    """How much more attention falls inside a salient mask than uniform attention would put.

    Per frame: ``(attention mass inside the mask) / (mask area / H·W)``. 1.0 means the
    attention is no more concentrated on the mask than uniform attention; ``H·W / area``
    is the maximum (all mass inside the mask); 0 means none inside.

    The attention of each frame is divided by its sum first, so maps that sum to 1 only up
    to float32 rounding (or unnormalised non-negative maps) are handled the same way.

    Args:
        attention: ``(..., H, W)`` non-negative attention, normally summing to 1 per frame.
        mask: ``(..., H, W)`` bool salient mask, broadcastable to ``attention`` (e.g. one
            ``(H, W)`` mask for all frames).
        reduction: ``"mean"``: the mean of the per-frame ratios over frames whose mask is
            not empty; ``"none"``: the per-frame ratios, shape ``(...)`` (the broadcast
            leading shape), NaN where the mask is empty.

    Raises:
        AvstanError: with ``reduction="mean"``, if every frame's mask is empty.
    """
    attention = _as_float64(attention)
    mask = np.asarray(mask.detach().cpu().numpy() if hasattr(mask, "detach") else mask)
    if mask.dtype != bool:
        mask = mask != 0
    if attention.ndim < 2 or mask.ndim < 2:
        raise ValueError(f"attention and mask need (..., H, W) shapes, "
                         f"got {attention.shape} and {mask.shape}")
    if attention.shape[-2:] != mask.shape[-2:]:
        raise ValueError(f"attention {attention.shape} and mask {mask.shape} differ in H, W")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    if np.any(attention < 0):
        raise ValueError("attention must be non-negative")

    shape = np.broadcast_shapes(attention.shape, mask.shape)
    attention = np.broadcast_to(attention, shape)
    mask = np.broadcast_to(mask, shape)

    total = attention.sum(axis=(-2, -1))
    inside = np.where(mask, attention, 0.0).sum(axis=(-2, -1))
    area = mask.mean(axis=(-2, -1))
    valid = (area > 0) & (total > 0)
    ratios = np.full(shape[:-2], np.nan)
    ratios[valid] = inside[valid] / total[valid] / area[valid]

    if reduction == "none":
        return ratios
    if not valid.any():
        raise AvstanError(
            "no frame has a non-empty salient mask (and non-zero attention), so the "
            "attention-in-mask ratio is undefined; use a corpus with salient masks"
        )
    return float(ratios[valid].mean())
