"""Sliding-window prediction: step e's prediction comes from the clip ending at e."""

import numpy as np
import torch
from torch import nn

from avstan.data.store import Recording
from avstan.evaluation.inference import predict_recordings


class LastFrameMean(nn.Module):
    """Predicts the mean of the clip's last frame (and of its first), with uniform attention."""

    clip_length = 4
    input_names = ("clip",)

    def forward(self, clip):
        last = clip[:, :, -1].mean(dim=(1, 2, 3))
        first = clip[:, :, 0].mean(dim=(1, 2, 3))
        attention = torch.full((clip.shape[0], clip.shape[2], *clip.shape[-2:]),
                               1.0 / clip.shape[-1] ** 2)
        return {"prediction": torch.stack([last, first], 1), "attention": attention}


def test_each_step_is_predicted_from_the_clip_ending_there():
    n = 30
    values = np.arange(n, dtype=np.uint8) * 5
    frames = np.broadcast_to(values[:, None, None, None], (n, 8, 8, 3)).copy()
    labels = np.full((n, 2), 0.5, np.float32)
    mask = np.zeros((n, 8, 8), bool)
    mask[:, :2] = True
    rec = Recording("r", frames, np.arange(n) / 4, np.ones(n, bool), labels, salient_mask=mask)
    (result,) = predict_recordings(LastFrameMean(), [rec], ["valence", "arousal"], 4,
                                   batch_size=7)
    expected_last = values / 255.0
    expected_first = np.maximum(np.arange(n) - 3, 0) * 5 / 255.0  # first-frame padding
    np.testing.assert_allclose(result.prediction[:, 0], expected_last, rtol=1e-6)
    np.testing.assert_allclose(result.prediction[:, 1], expected_first, rtol=1e-6)
    np.testing.assert_array_equal(result.gold, labels)
    assert result.attention_in_mask == 1.0  # uniform attention


def test_every_kth_step():
    n = 12
    frames = np.zeros((n, 8, 8, 3), np.uint8)
    rec = Recording("r", frames, np.arange(n) / 4, np.ones(n, bool), np.zeros((n, 2), np.float32))
    (result,) = predict_recordings(LastFrameMean(), [rec], ["valence"], 4, step=3)
    np.testing.assert_allclose(result.times, np.arange(0, n, 3) / 4)
    assert result.attention_in_mask is None


def test_steps_without_a_face_are_interpolated_from_their_neighbours():
    n = 12
    values = np.arange(n, dtype=np.uint8) * 10
    frames = np.broadcast_to(values[:, None, None, None], (n, 8, 8, 3)).copy()
    found = np.ones(n, bool)
    found[4:7] = False
    frames[4:7] = frames[3]  # the store holds the nearest found crop there
    rec = Recording("r", frames, np.arange(n) / 4, found, np.zeros((n, 2), np.float32))
    (result,) = predict_recordings(LastFrameMean(), [rec], ["valence", "arousal"], 4)
    expected = values / 255.0  # linear between steps 3 and 7, i.e. the true ramp
    np.testing.assert_allclose(result.prediction[:, 0], expected, rtol=1e-6)


class LastFrameAttention(nn.Module):
    """Attention of each clip frame = that frame's brightness, normalised per frame."""

    input_names = ("clip",)

    def forward(self, clip):
        brightness = clip.mean(dim=1) + 1e-3  # (B, T, S, S)
        attention = brightness / brightness.sum(dim=(-2, -1), keepdim=True)
        return {"prediction": clip[:, :1, -1, 0, 0], "attention": attention}


def test_kept_attention_is_the_map_on_each_steps_own_frame():
    n = 10
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (n, 6, 6, 3), dtype=np.uint8)
    rec = Recording("r", frames, np.arange(n) / 4, np.ones(n, bool), np.zeros((n, 2), np.float32))
    (result,) = predict_recordings(LastFrameAttention(), [rec], ["valence"], 4, batch_size=3,
                                   step=2, keep_attention=True)
    brightness = frames.astype(np.float64).mean(-1) / 255 + 1e-3
    expected = brightness / brightness.sum(axis=(1, 2), keepdims=True)
    assert result.attention.shape == (5, 6, 6)
    np.testing.assert_allclose(result.attention, expected[::2], rtol=1e-5)
    (plain,) = predict_recordings(LastFrameAttention(), [rec], ["valence"], 4)
    assert plain.attention is None  # only on request


def test_frames_and_maps_on_disk_predict_as_in_memory(tmp_path):
    """A long video's crops come from a spool and its maps go to one (predict, issue 17):
    the predictions and maps equal those of the same recording held in memory."""
    from avstan.data.spool import RowSpool

    n = 23
    frames = np.random.default_rng(3).integers(0, 256, (n, 6, 6, 3), dtype=np.uint8)
    spool = RowSpool((6, 6, 3), np.uint8, tmp_path)
    spool.append(frames[:11])
    spool.append(frames[11:])
    found = np.ones(n, bool)
    in_memory = Recording("r", frames, np.arange(n) / 4, found, np.zeros((n, 2), np.float32))
    on_disk = Recording("r", spool.remapped(np.arange(n)), np.arange(n) / 4, found,
                        np.zeros((n, 2), np.float32))
    (expected,) = predict_recordings(LastFrameAttention(), [in_memory], ["valence"], 4,
                                     batch_size=5, keep_attention=True)
    (got,) = predict_recordings(LastFrameAttention(), [on_disk], ["valence"], 4, batch_size=5,
                                keep_attention=True, spool_folder=tmp_path)
    assert isinstance(got.attention, RowSpool) and got.attention.shape == (n, 6, 6)
    np.testing.assert_array_equal(got.prediction, expected.prediction)
    np.testing.assert_array_equal(np.asarray(got.attention), expected.attention)
    assert list(tmp_path.iterdir()) == []
