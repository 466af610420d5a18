"""Figures for reports: predictions over time, attention maps, training curves.

Built on :class:`matplotlib.figure.Figure` directly, never ``pyplot``: no global figure
state, no GUI backend, safe from worker threads. Each function returns the Figure and
writes a PNG atomically (temporary file in the same folder, then a rename).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from avstan.io import write_report_file

MISSING_SPAN_GID = "missing"
DPI = 100


def _save_png(figure: Figure, path: str | Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    write_report_file(path, buffer.getvalue())


def _to_numpy(values: Any, dtype: Any = None) -> np.ndarray:
    if hasattr(values, "detach"):  # torch.Tensor, without importing torch
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype)


def true_runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of the runs of True in a 1-D bool array (stop exclusive)."""
    flags = np.asarray(flags, dtype=bool).ravel()
    padded = np.concatenate([[False], flags, [False]])
    changes = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(start), int(stop)) for start, stop in zip(changes[::2], changes[1::2],
                                                           strict=True)]


def _step_edges(times: np.ndarray) -> np.ndarray:
    """``(N + 1,)`` boundaries of the steps centred on ``times`` (midpoints between them)."""
    if times.size == 1:
        return np.array([times[0] - 0.5, times[0] + 0.5])
    middles = (times[1:] + times[:-1]) / 2
    return np.concatenate([[2 * times[0] - middles[0]], middles, [2 * times[-1] - middles[-1]]])


def plot_predictions(
    times: Any,
    gold: Any,
    preds: Mapping[str, Any],
    title: str,
    path: str | Path,
    target_name: str = "valence",
    missing: Any = None,
) -> Figure:
    """Gold and predicted values of one recording over time (like Figs. 3–4 of the paper).

    Args:
        times: ``(N,)`` seconds of each step.
        gold: ``(N,)`` gold values; NaN steps (unlabelled) leave gaps.
        preds: ``{model name: (N,) predictions}``, one line each.
        title: figure title, e.g. the recording's name.
        path: PNG file to write.
        target_name: the dimension plotted, used as the y label.
        missing: optional ``(N,)`` bool, True where no face was found; each run of missing
            steps is shaded as one span (gid ``"missing"``).

    Returns:
        The Figure (one axes).
    """
    times = _to_numpy(times, np.float64).ravel()
    gold = _to_numpy(gold, np.float64).ravel()
    if gold.shape != times.shape:
        raise ValueError(f"gold {gold.shape} and times {times.shape} differ in length")
    figure = Figure(figsize=(10, 3.5), layout="constrained")
    axes = figure.add_subplot()

    if missing is not None:
        missing = _to_numpy(missing, bool).ravel()
        if missing.shape != times.shape:
            raise ValueError(f"missing {missing.shape} and times {times.shape} differ")
        _shade_missing(axes, times, missing)

    axes.plot(times, gold, color="black", linewidth=1.8, label="gold")
    for name, values in preds.items():
        values = _to_numpy(values, np.float64).ravel()
        if values.shape != times.shape:
            raise ValueError(f"predictions of {name!r} {values.shape} and times "
                             f"{times.shape} differ in length")
        axes.plot(times, values, linewidth=1.2, label=name)

    axes.set_xlabel("time (s)")
    axes.set_ylabel(target_name)
    axes.set_title(title)
    if times.size:
        axes.set_xlim(times[0], times[-1])
    axes.grid(alpha=0.3)
    axes.legend(loc="upper right", fontsize="small")
    _save_png(figure, path)
    return figure


def _shade_missing(axes: Any, times: np.ndarray, missing: np.ndarray) -> None:
    """One grey span (gid ``"missing"``) per run of steps without a face."""
    edges = _step_edges(times)
    for run_index, (start, stop) in enumerate(true_runs(missing)):
        axes.axvspan(edges[start], edges[stop], color="0.85", zorder=0, gid=MISSING_SPAN_GID,
                     label="no face" if run_index == 0 else None)


def plot_emotion_curves(times: Any, curves: Mapping[str, Any], path: str | Path,
                        title: str = "", missing: Any = None) -> Figure:
    """Predicted curves of one video without gold: one panel per target (valence, arousal)
    on a shared time axis in [-1, 1], steps without a face shaded."""
    times = _to_numpy(times, np.float64).ravel()
    figure = Figure(figsize=(10, 1.2 + 2.2 * len(curves)), layout="constrained")
    panels = figure.subplots(len(curves), 1, sharex=True, squeeze=False)[:, 0]
    for axes, (name, values) in zip(panels, curves.items(), strict=True):
        if missing is not None:
            _shade_missing(axes, times, _to_numpy(missing, bool).ravel())
        axes.plot(times, _to_numpy(values, np.float64).ravel(), linewidth=1.4, label=name)
        axes.set_ylabel(name)
        axes.set_ylim(-1.05, 1.05)
        axes.axhline(0.0, color="0.6", linewidth=0.8)
        axes.grid(alpha=0.3)
    panels[-1].set_xlabel("time (s)")
    if times.size:
        panels[-1].set_xlim(times[0], times[-1])
    if title:
        figure.suptitle(title)
    _save_png(figure, path)
    return figure


def _pixel_centres(shape: tuple[int, int], height: int, width: int) -> tuple[np.ndarray, ...]:
    """x, y coordinates (in frame pixels) of the centres of a ``shape`` grid over a frame."""
    xs = (np.arange(shape[1]) + 0.5) * width / shape[1] - 0.5
    ys = (np.arange(shape[0]) + 0.5) * height / shape[0] - 0.5
    return np.meshgrid(xs, ys)


def plot_attention_rows(
    frames: Any,
    rows: Mapping[str, Any],
    path: str | Path,
    mask: Any = None,
    title: str = "",
    max_columns: int = 16,
    alpha: float = 0.5,
    cmap: str = "jet",
) -> Figure:
    """Frames of a clip with each model's attention overlaid (like Fig. 5 of the paper).

    Row 0 shows the raw frames; each following row one model's attention over the frames.
    Attention is shown normalised per frame and multiplied by ``h·w`` (its own size), so
    1 means uniform attention; all attention panels share one colour scale (0 to the
    largest value shown) and one colour bar.

    Args:
        frames: ``(T, S, S, 3)`` uint8 RGB (or float in [0, 1]), or ``(T, S, S)`` grey.
        rows: ``{model name: (T, h, w) attention}``, non-negative; ``h, w`` may differ from
            ``S`` (the map is stretched over the frame).
        path: PNG file to write.
        mask: optional salient mask ``(T, S, S)`` or ``(S, S)`` bool, drawn as a white
            contour on every attention panel.
        title: figure title.
        max_columns: at most this many frames are shown, evenly spaced over ``T``.
        alpha: opacity of the heat map.
        cmap: colour map of the heat map.

    Returns:
        The Figure: ``len(rows) + 1`` rows of ``min(T, max_columns)`` image axes, plus the
        colour bar's axes when ``rows`` is not empty.
    """
    frames = _to_numpy(frames)
    if frames.ndim not in (3, 4):
        raise ValueError(f"frames must be (T, S, S, 3) or (T, S, S), got {frames.shape}")
    num_frames, height, width = frames.shape[:3]
    shown = np.unique(np.linspace(0, num_frames - 1, min(num_frames, max_columns)).round()
                      ).astype(int)

    maps: dict[str, np.ndarray] = {}
    for name, attention in rows.items():
        attention = _to_numpy(attention, np.float64)
        if attention.ndim != 3 or attention.shape[0] != num_frames:
            raise ValueError(f"attention of {name!r} must be (T={num_frames}, h, w), "
                             f"got {attention.shape}")
        total = attention.sum(axis=(1, 2), keepdims=True)
        size = attention.shape[1] * attention.shape[2]
        maps[name] = np.divide(attention * size, total, out=np.zeros_like(attention),
                               where=total > 0)

    if mask is not None:
        mask = _to_numpy(mask, bool)
        if mask.ndim == 2:
            mask = np.broadcast_to(mask, (num_frames, *mask.shape))
        if mask.ndim != 3 or mask.shape[0] != num_frames:
            raise ValueError(f"mask must be (T, S, S) or (S, S), got {mask.shape}")

    vmax = max((float(m[shown].max()) for m in maps.values()), default=1.0)
    norm = Normalize(vmin=0.0, vmax=max(vmax, 1e-12))

    num_rows = len(maps) + 1
    figure = Figure(figsize=(1.2 * len(shown) + 1.2, 1.3 * num_rows + 0.4),
                    layout="constrained")
    grid = figure.subplots(num_rows, len(shown), squeeze=False)
    display = frames if frames.ndim == 4 else frames[..., None].repeat(3, axis=-1)
    heat_image = None
    frame_extent = (-0.5, width - 0.5, height - 0.5, -0.5)  # stretches any map over a frame
    if mask is not None:
        mask_centres = _pixel_centres(mask.shape[1:], height, width)
    for column, step in enumerate(shown):
        frame_axes = grid[0, column]
        frame_axes.imshow(display[step])
        frame_axes.set_title(f"t={step}", fontsize="small")
        for row, attention in enumerate(maps.values(), start=1):
            axes = grid[row, column]
            axes.imshow(display[step])
            heat_image = axes.imshow(attention[step], cmap=cmap, norm=norm, alpha=alpha,
                                     extent=frame_extent,
                                     interpolation="bilinear")
            if mask is not None and mask[step].any():
                axes.contour(*mask_centres, mask[step].astype(float), levels=[0.5],
                             colors="white", linewidths=0.8)
    for row, name in enumerate(["frames", *maps], start=0):
        grid[row, 0].set_ylabel(name, fontsize="small")
    for axes in grid.ravel():
        axes.set_xticks([])
        axes.set_yticks([])
    if heat_image is not None:
        colorbar = figure.colorbar(heat_image, ax=grid[1:, :].ravel().tolist(),
                                   fraction=0.03, pad=0.01)
        colorbar.set_label("attention × h·w (1 = uniform)", fontsize="small")
    if title:
        figure.suptitle(title)
    _save_png(figure, path)
    return figure


def _split_history_key(key: str) -> tuple[str, str]:
    """``"model/metric"`` -> ``("model", "metric")``; a key without ``/`` is a metric."""
    model, _, metric = key.rpartition("/")
    return model, metric


def plot_training_curves(
    history: Mapping[str, Sequence[float | None]], path: str | Path, title: str = ""
) -> Figure:
    """One panel per metric, one line per model, against the epoch (1, 2, ...).

    Args:
        history: ``{"model/metric": per-epoch values}``, e.g. ``{"sta3d/train_loss": [..],
            "sta3d/devel_ccc_valence": [..], "3dcnn/train_loss": [..]}``; a key without
            ``/`` is a metric of an unnamed model. ``None``/NaN (an epoch without that
            value) leaves a gap.
        path: PNG file to write.
        title: figure title.

    Returns:
        The Figure: one axes per distinct metric, in first-seen order.
    """
    panels: dict[str, list[tuple[str, np.ndarray]]] = {}
    for key, values in history.items():
        model, metric = _split_history_key(key)
        series = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        panels.setdefault(metric, []).append((model, series))
    if not panels:
        raise ValueError("history is empty")

    figure = Figure(figsize=(4.2 * len(panels), 3.2), layout="constrained")
    grid = figure.subplots(1, len(panels), squeeze=False)[0]
    for axes, (metric, lines) in zip(grid, panels.items(), strict=True):
        for model, series in lines:
            epochs = np.arange(1, series.size + 1)
            axes.plot(epochs, series, marker="o", markersize=3, label=model or metric)
        axes.set_title(metric)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        if any(model for model, _ in lines):
            axes.legend(fontsize="small")
    if title:
        figure.suptitle(title)
    _save_png(figure, path)
    return figure
