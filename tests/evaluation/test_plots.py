"""Plots: valid PNGs, and the content that can be checked cheaply."""

import numpy as np
import pytest
from matplotlib.image import imread

from avstan.errors import AvstanError
from avstan.evaluation.plots import (
    MISSING_SPAN_GID,
    plot_attention_rows,
    plot_predictions,
    plot_training_curves,
    true_runs,
)


def test_true_runs_against_a_loop():
    rng = np.random.default_rng(0)
    flags = rng.random(200) > 0.6
    runs, start = [], None
    for i, flag in enumerate(flags):
        if flag and start is None:
            start = i
        if not flag and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(flags)))
    assert true_runs(flags) == runs


def test_prediction_plot_shades_each_missing_run(tmp_path):
    times = np.arange(40) / 4
    missing = np.zeros(40, bool)
    missing[3:6] = missing[20:21] = missing[35:] = True
    path = tmp_path / "p.png"
    figure = plot_predictions(times, np.sin(times), {"a": np.cos(times), "b": times * 0},
                              "rec", path, missing=missing)
    (axes,) = figure.axes
    spans = [p for p in axes.patches if p.get_gid() == MISSING_SPAN_GID]
    assert len(spans) == 3
    assert len(axes.lines) == 3  # gold and two models
    image = imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 600


def test_attention_rows_layout(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (16, 12, 12, 3), dtype=np.uint8)
    attention = np.random.default_rng(1).random((16, 12, 12))
    mask = np.zeros((16, 12, 12), bool)
    mask[:, 8:, 3:9] = True
    figure = plot_attention_rows(frames, {"sta3d": attention, "other": attention}, tmp_path /
                                 "a.png", mask=mask, max_columns=8)
    image_axes = [a for a in figure.axes if a.images]
    assert len(image_axes) == 3 * 8
    assert imread(tmp_path / "a.png").ndim == 3


def test_training_curves_one_panel_per_metric(tmp_path):
    figure = plot_training_curves({"cnn3d/train_loss": [0.3, 0.2], "sta3d/train_loss": [0.3, None],
                                   "cnn3d/val_ccc": [0.1, 0.4]}, tmp_path / "c.png")
    assert [a.get_title() for a in figure.axes] == ["train_loss", "val_ccc"]
    assert len(figure.axes[0].lines) == 2


def test_unwritable_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(AvstanError, match="cannot write .*file/x/p.png"):
        plot_predictions(np.arange(3.0), np.zeros(3), {}, "t", blocker / "x" / "p.png")
