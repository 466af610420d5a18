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
    uniform = np.full((16, 6, 6), 1 / 36)  # coarser than the frames: stretched over them
    mask = np.zeros((16, 12, 12), bool)
    mask[:, 8:, 3:9] = True
    path = tmp_path / "a.png"
    figure = plot_attention_rows(frames, {"sta3d": attention, "uniform": uniform}, path,
                                 mask=mask, max_columns=8)
    image_axes = [a for a in figure.axes if a.images]
    assert len(image_axes) == 3 * 8  # frames row + one row per model, 8 of the 16 frames
    assert len({a.get_subplotspec().rowspan.start for a in image_axes}) == 3
    assert [a.get_ylabel() for a in image_axes if a.get_subplotspec().colspan.start == 0] == [
        "frames", "sta3d", "uniform"]
    assert [a.get_title() for a in image_axes[:8]][:2] == ["t=0", "t=2"]
    # Heat maps are normalised per frame and scaled by h*w: uniform attention shows as 1.
    uniform_row = [a for a in image_axes if a.get_subplotspec().rowspan.start == 2]
    for axes in uniform_row:
        assert np.allclose(axes.images[1].get_array(), 1.0)
        assert axes.collections  # the mask contour
    first = [a for a in image_axes if a.get_subplotspec().rowspan.start == 1][0]
    shown = attention[0] / attention[0].sum() * 144
    assert np.allclose(first.images[1].get_array(), shown)
    assert len(figure.axes) == 3 * 8 + 1  # and the colour bar
    image = imread(path)
    assert image.ndim == 3 and image.shape[1] > 600 and image.shape[0] > 250


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
