"""The AVEC post-processing chain, fitted on devel and applied unchanged elsewhere.

The AVEC 2015–2017 baselines post-process predictions with a fixed chain of steps, each
kept only if it raises the devel CCC (Ringeval et al. 2015; the papers use it without the
time shift):

1. **median smoothing** of each recording's predictions, the window chosen on devel from
   a grid (1 = no smoothing);
2. **centring**: add mean(gold_devel) − mean(pred_devel);
3. **scaling**: multiply the deviation from the devel prediction mean by
   std(gold_devel) / std(pred_devel) (so the devel mean is kept, only the spread changes);
4. **time shift** (off by default): delay predictions by k steps, k chosen on devel, to
   compensate the annotators' reaction lag; the first k steps repeat the first prediction.

Steps 2–3 use statistics of the concatenated devel partition.

**Scaling only on a correlation above noise, and by at most ×4.** Scaling turns a
prediction of spread ``s = std(pred) / std(gold)`` and correlation ``r`` into one of the
gold's spread, raising the devel CCC from ``2rs / (1 + s²)`` to ``r``; for a model whose
predictions are nearly constant (``s`` ≈ 0.01) that is a large devel gain for *any*
``r`` > 0, even one that is pure chance, and the factor (×100 and more) then multiplies the
model's jitter on the test partition (the demo's cnn3d once went from RMSE 0.48 raw to
1.36 after a ×143 scale fitted on a devel CCC of 0.002). So the step must earn its gain:

* it is **refused** unless the devel Pearson r exceeds :data:`NOISE_SIGMAS` (2) times
  the standard deviation r has between two series with the same autocorrelation as these
  predictions and labels but no relation to each other (Bartlett's formula,
  :func:`correlation_noise_level`). Emotion tracks are smooth, so this is far wider than
  the 1/√N of independent samples: ±0.1 to ±0.3 on a devel partition of a few minutes.
* the factor is **clipped** to :data:`SCALE_BOUNDS` = [1/4, 4]. A model trained with MSE
  predicts the conditional mean, whose spread is about ``r`` times the gold's, so its AVEC
  factor is about 1/r: a factor above 4 belongs to a model with r < 0.25, whose spread is
  mostly not signal. At ×4 a prediction of an eighth of the gold's spread still gets 80 %
  of the CCC full scaling would give (2·4s/(1+16s²) at s = 1/8 is 0.8), while the model's
  test-time jitter is amplified at most four times.

Either case is written in the chain's ``notes``, which ``train``'s printed line and
``evaluate``'s reports show. Median smoothing and centring cannot blow up (a median stays
within the predictions' range, the offset within the labels'), so they keep the plain
rule of raising the devel CCC.

Nothing here ever sees the
partition the chain is applied to: :func:`fit_postprocessing` takes devel data only and
returns plain numbers, which travel with the model (``to_dict`` / ``from_dict``).

Also here: :func:`interpolate_missing`, which replaces the predictions of steps without a
face by linear interpolation between the nearest steps with one (as the papers do).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from avstan.errors import AvstanError
from avstan.metrics import concordance_cc

DEFAULT_WINDOWS = (1, 3, 5, 7, 9, 13, 17, 25)  # steps (at 4 steps/s: up to ~6 s)
DEFAULT_SHIFTS = (0, 1, 2, 3, 4, 6, 8, 12, 16)  # steps
NOISE_SIGMAS = 2.0  # scaling needs devel r above this many noise standard deviations
SCALE_BOUNDS = (0.25, 4.0)  # the scale factor is clipped to this range


def median_smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred running median of odd ``window`` over (N,) values; edges use the values that
    exist (the window shrinks), so the output has the input's length."""
    values = np.asarray(values, dtype=np.float64)
    if window <= 1 or values.size == 0:
        return values.copy()
    if window % 2 == 0:
        raise ValueError(f"median window must be odd, got {window}")
    half = window // 2
    padded = np.pad(values, half, mode="constant", constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, window)
    return np.nanmedian(windows, axis=1)


def time_shift(values: np.ndarray, steps: int) -> np.ndarray:
    """Delay (N,) predictions by ``steps``: out[t] = values[t - steps], the first repeated."""
    values = np.asarray(values, dtype=np.float64)
    if steps <= 0 or values.size == 0:
        return values.copy()
    return np.concatenate([np.full(min(steps, values.size), values[0]), values[:-steps]])


def interpolate_missing(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Replace values at steps where ``found`` is False by linear interpolation between the
    nearest found steps (the ends take the nearest found value). With no found step at
    all, the values are returned unchanged."""
    values = np.asarray(values, dtype=np.float64)
    found = np.asarray(found, dtype=bool)
    if found.all() or not found.any():
        return values.copy()
    steps = np.arange(values.size)
    out = values.copy()
    out[~found] = np.interp(steps[~found], steps[found], values[found])
    return out


@dataclass
class PostProcessing:
    """A fitted chain for one target; identity when every step is off."""

    median_window: int = 1
    centre_offset: float = 0.0  # added
    scale_factor: float = 1.0  # multiplies the deviation from scale_reference
    scale_reference: float = 0.0
    shift_steps: int = 0
    devel_ccc_raw: float | None = None
    devel_ccc: float | None = None
    notes: list[str] = field(default_factory=list)  # steps refused or clipped, and why

    @property
    def fitted(self) -> bool:
        """Whether the chain was fitted on devel (False for a fixed chain, e.g. the median
        a model trained on face images carries for video)."""
        return self.devel_ccc_raw is not None

    def apply(self, predictions: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Apply the chain to each recording's (N,) predictions."""
        out = []
        for values in predictions:
            values = median_smooth(values, self.median_window) + self.centre_offset
            values = self.scale_reference + (values - self.scale_reference) * self.scale_factor
            out.append(time_shift(values, self.shift_steps))
        return out

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PostProcessing:
        return cls(**data)


def describe_notes(chains: dict[str, PostProcessing] | None) -> str | None:
    """One line naming each target's refused or clipped steps, or None when there are none."""
    notes = [f"{target}: {note}" for target, chain in (chains or {}).items()
             for note in chain.notes]
    return "; ".join(notes) if notes else None


def chains_from_dicts(chains: dict[str, dict] | None) -> dict[str, PostProcessing] | None:
    """The chains a model file stores (target -> ``to_dict()``), or None if it has none."""
    return {t: PostProcessing.from_dict(c) for t, c in chains.items()} if chains else None


def correlation_noise_level(predictions: Sequence[np.ndarray], golds: Sequence[np.ndarray],
                            max_lag: int | None = None) -> float:
    """The standard deviation of the Pearson r of the concatenated recordings when
    predictions and golds have the autocorrelation they have here but no relation to each
    other: Bartlett's (1935) var r ≈ (1 + 2 Σ_k ρ_pred(k) ρ_gold(k)) / N, with the
    autocorrelations pooled over recordings (lags within a recording only), on the steps
    with a label, summed up to ``max_lag`` (default: a quarter of the longest recording).
    """
    pairs = []
    for prediction, gold in zip(predictions, golds, strict=True):
        prediction, gold = np.asarray(prediction, float), np.asarray(gold, float)
        labelled = np.isfinite(gold)
        pairs.append((prediction[labelled], gold[labelled]))
    total = sum(len(g) for _, g in pairs)
    if total < 2:
        return 1.0
    pred_mean = np.mean(np.concatenate([p for p, _ in pairs]))
    gold_mean = np.mean(np.concatenate([g for _, g in pairs]))
    longest = max(len(g) for _, g in pairs)
    lags = max(1, longest // 4) if max_lag is None else max_lag
    pred_cov, gold_cov = np.zeros(lags + 1), np.zeros(lags + 1)
    for prediction, gold in pairs:
        p, g = prediction - pred_mean, gold - gold_mean
        n = min(len(p), lags + 1)
        pred_cov[:n] += np.correlate(p, p, "full")[len(p) - 1: len(p) - 1 + n]
        gold_cov[:n] += np.correlate(g, g, "full")[len(g) - 1: len(g) - 1 + n]
    if pred_cov[0] <= 0 or gold_cov[0] <= 0:
        return 1.0
    products = (pred_cov[1:] / pred_cov[0]) * (gold_cov[1:] / gold_cov[0])
    return float(np.sqrt(max(1.0, 1.0 + 2.0 * products.sum()) / total))


def _ccc(predictions: Sequence[np.ndarray], golds: Sequence[np.ndarray]) -> float:
    return concordance_cc(np.concatenate(predictions), np.concatenate(golds))


def fit_postprocessing(predictions: Sequence[np.ndarray], golds: Sequence[np.ndarray],
                       windows: Sequence[int] = DEFAULT_WINDOWS,
                       shifts: Sequence[int] | None = None) -> PostProcessing:
    """Fit the chain on devel predictions and gold values (one (N,) array per recording).

    Each step is kept only if it raises the devel CCC of the concatenated partition, and
    scaling only on a devel correlation above noise and by a clipped factor (see the module
    docstring; ``notes`` says when); ``shifts=None`` leaves the time shift off, as the
    papers do.
    """
    if len(predictions) != len(golds) or not predictions:
        raise AvstanError("post-processing needs devel predictions and labels of the same "
                          "recordings; the devel partition is empty")
    predictions = [np.asarray(p, dtype=np.float64) for p in predictions]
    golds = [np.asarray(g, dtype=np.float64) for g in golds]
    gold_all = np.concatenate(golds)
    if not np.isfinite(gold_all).any():
        raise AvstanError("the devel partition has no labels to fit the post-processing on")
    chain = PostProcessing(devel_ccc_raw=_ccc(predictions, golds))
    best = chain.devel_ccc_raw

    for window in windows:
        smoothed = [median_smooth(p, window) for p in predictions]
        score = _ccc(smoothed, golds)
        if score > best + 1e-12:
            best, chain.median_window = score, int(window)
    current = chain.apply(predictions)

    labelled = np.isfinite(gold_all)
    pred_all = np.concatenate(current)
    offset = float(np.mean(gold_all[labelled]) - np.mean(pred_all[labelled]))
    centred = [p + offset for p in current]
    score = _ccc(centred, golds)
    if score > best + 1e-12:
        best, chain.centre_offset, current = score, offset, centred

    pred_all = np.concatenate(current)
    spread = float(np.std(pred_all[labelled]))
    if spread > 0:
        reference = float(np.mean(pred_all[labelled]))
        full_factor = float(np.std(gold_all[labelled]) / spread)
        correlation = float(np.corrcoef(pred_all[labelled], gold_all[labelled])[0, 1])
        noise = correlation_noise_level(current, golds)
        factor = float(np.clip(full_factor, *SCALE_BOUNDS))
        if not correlation > NOISE_SIGMAS * noise:
            if full_factor > 1.0 + 1e-9 or full_factor < 1.0 - 1e-9:
                chain.notes.append(
                    f"scaling ×{full_factor:.3g} refused: devel correlation {correlation:.3f} "
                    f"is within noise (needs > {NOISE_SIGMAS:g} × {noise:.3f})")
        else:
            scaled = [reference + (p - reference) * factor for p in current]
            score = _ccc(scaled, golds)
            if score > best + 1e-12:
                best, current = score, scaled
                chain.scale_factor, chain.scale_reference = factor, reference
                if factor != full_factor:
                    chain.notes.append(f"scaling clipped to ×{factor:g} (devel asked for "
                                       f"×{full_factor:.3g})")
    else:
        chain.notes.append("scaling refused: the devel predictions are constant")

    for steps in shifts or ():
        shifted = [time_shift(p, steps) for p in current]
        score = _ccc(shifted, golds)
        if score > best + 1e-12:
            best, chain.shift_steps = score, int(steps)
    chain.devel_ccc = best
    return chain
