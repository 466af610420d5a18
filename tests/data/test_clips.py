"""Clips: indexing, first-frame padding, last-step labels, per-clip augmentation."""

import numpy as np
import pytest
import torch

from avstan.data.audio import standardise_per_recording
from avstan.data.clips import (
    AugmentConfig,
    ClipDataset,
    augment_clip,
    clip_indices,
    window_indices,
)
from avstan.data.store import Recording
from avstan.errors import AvstanError


def counting_recording(n=40, size=4, name="r"):
    """Frame k is filled with value k, so a clip's content reveals which steps it took."""
    frames = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None],
                             (n, size, size, 3)).copy()
    labels = np.stack([np.linspace(-1, 1, n), -np.linspace(-1, 1, n)], 1).astype(np.float32)
    labels[5, 0] = np.nan
    return Recording(name=name, frames=frames, times=np.arange(n) / 4, face_found=np.ones(n),
                     labels=labels, salient_mask=frames[..., 0] % 2 == 0)


def steps_of(clip):
    return (clip[0, :, 0, 0] * 255).round().long().tolist()


def test_clip_indices_pad_with_the_first_frame():
    assert clip_indices(2, 5).tolist() == [0, 0, 0, 1, 2]
    assert clip_indices(9, 4).tolist() == [6, 7, 8, 9]


def test_window_indices_equal_an_explicit_loop():
    ends, length = [0, 2, 3, 9, 5], 4
    expected = [[max(end - length + 1 + k, 0) for k in range(length)] for end in ends]
    assert window_indices(ends, length).tolist() == expected


def test_every_step_gets_a_clip_ending_there():
    dataset = ClipDataset([counting_recording()], clip_length=4, stride=1)
    assert len(dataset) == 40
    item = dataset[2]
    assert steps_of(item["clip"]) == [0, 0, 1, 2]
    assert item["step"] == 2
    assert item["clip"].shape == (3, 4, 4, 4) and item["clip"].dtype == torch.float32


def test_non_overlapping_training_clips_and_last_step_labels():
    rec = counting_recording()
    dataset = ClipDataset([rec], clip_length=8, stride=8, labelled_only=True)
    assert dataset.index[:, 1].tolist() == [7, 15, 23, 31, 39]
    for i in range(len(dataset)):
        item = dataset[i]
        end = item["step"]
        assert steps_of(item["clip"]) == list(range(end - 7, end + 1))
        np.testing.assert_allclose(item["target"].numpy(), rec.labels[end])


def test_unlabelled_steps_are_left_out_only_when_asked():
    rec = counting_recording()
    assert 5 not in ClipDataset([rec], 4, 1, labelled_only=True).index[:, 1]
    assert 5 in ClipDataset([rec], 4, 1).index[:, 1]
    single = ClipDataset([rec], 4, 1, targets=["arousal"], labelled_only=True)
    assert 5 in single.index[:, 1] and single[5]["target"].shape == (1,)


def test_several_recordings_are_indexed_in_order():
    dataset = ClipDataset([counting_recording(10, name="a"), counting_recording(6, name="b")],
                          clip_length=3, stride=1)
    assert len(dataset) == 16
    assert dataset[12]["recording"] == 1 and dataset[12]["step"] == 2


def test_masks_follow_the_clip():
    dataset = ClipDataset([counting_recording()], clip_length=4, stride=1, with_masks=True)
    item = dataset[10]
    assert item["mask"].shape == (4, 4, 4)
    assert item["mask"][:, 0, 0].tolist() == [s % 2 == 0 for s in [7, 8, 9, 10]]


def test_augmentation_is_the_same_for_every_frame():
    torch.manual_seed(0)
    clip = torch.rand(3, 1, 6, 6).repeat(1, 5, 1, 1)  # five identical frames
    mask = torch.zeros(5, 6, 6, dtype=torch.bool)
    mask[:, :, 0] = True
    config = AugmentConfig(flip=1.0, contrast=0.3, colour=0.3, brightness=0.1)
    out, flipped = augment_clip(clip, config, mask)
    assert not torch.allclose(out, clip)
    for t in range(1, 5):
        torch.testing.assert_close(out[:, t], out[:, 0])
    assert flipped[:, :, -1].all() and not flipped[:, :, 0].any()
    assert out.min() >= 0 and out.max() <= 1


def test_no_augmentation_draw_changes_nothing():
    clip = torch.rand(3, 4, 6, 6)
    out, _ = augment_clip(clip, AugmentConfig(flip=0, contrast=0, colour=0, brightness=0))
    torch.testing.assert_close(out, clip)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(AvstanError, match="unknown targets"):
        ClipDataset([counting_recording()], targets=["liking"])
    rec = counting_recording()
    rec.salient_mask = None
    with pytest.raises(AvstanError, match="salient masks"):
        ClipDataset([rec], with_masks=True)


def reference_shift(frames: np.ndarray, dy: int, dx: int, fill: str) -> np.ndarray:
    """out[..., i, j] = frames[..., i - dy, j - dx]; outside the frame the nearest edge
    pixel (edge) or 0 (zero) — written with index arrays, not padding."""
    height, width = frames.shape[-2:]
    rows, cols = np.arange(height) - dy, np.arange(width) - dx
    out = frames[..., np.clip(rows, 0, height - 1)[:, None], np.clip(cols, 0, width - 1)]
    if fill == "zero":
        inside = ((rows >= 0) & (rows < height))[:, None] & ((cols >= 0) & (cols < width))
        out = np.where(inside, out, 0)
    return out


@pytest.mark.parametrize("dy,dx", [(0, 0), (2, -3), (-4, 1), (5, 5), (0, -6)])
def test_shift_frames_matches_an_index_reference(dy, dx):
    from avstan.data.clips import shift_frames

    frames = torch.rand(3, 2, 7, 9)
    np.testing.assert_allclose(shift_frames(frames, dy, dx).numpy(),
                               reference_shift(frames.numpy(), dy, dx, "edge"))
    mask = torch.rand(2, 7, 9) > 0.5
    shifted = shift_frames(mask, dy, dx, "zero")
    assert shifted.dtype == torch.bool
    np.testing.assert_array_equal(shifted.numpy(), reference_shift(mask.numpy(), dy, dx, "zero"))
    with pytest.raises(AvstanError, match="not smaller than the frame"):
        shift_frames(frames, 7, 0)


def test_shift_augmentation_moves_clip_and_mask_together_within_its_reach():
    """Every frame of a clip gets the same shift, the mask moves with the face, shifts stay
    within round(shift * S) and every one of them is drawn."""
    clip = torch.zeros(3, 4, 20, 20)
    clip[:, :, 9:11, 9:11] = 1.0  # a bright 2x2 "face" in the middle of every frame
    mask = clip[0] > 0.5
    config = AugmentConfig(flip=0, contrast=0, colour=0, brightness=0, shift=0.1)
    generator = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(200):
        out, moved = augment_clip(clip, config, mask, generator=generator)
        rows, cols = torch.nonzero(out[0, 0] > 0.5, as_tuple=True)
        dy, dx = int(rows.min()) - 9, int(cols.min()) - 9
        seen.add((dy, dx))
        for t in range(4):
            torch.testing.assert_close(out[:, t], out[:, 0])
        np.testing.assert_array_equal(moved.numpy(), (out[0] > 0.5).numpy())
    assert seen == {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}
    with pytest.raises(AvstanError, match="augment.shift"):
        AugmentConfig(shift=0.5)


def test_audio_per_recording_and_step_targets():
    rng = np.random.default_rng(0)
    recordings = []
    for number, level in enumerate((0.0, 100.0)):
        steps = 12
        recordings.append(Recording(
            name=f"r{number}", frames=None, times=np.arange(steps) / 4.0,
            face_found=np.zeros(steps, bool),
            labels=np.stack([np.linspace(-1, 1, steps), np.linspace(1, -1, steps)], 1),
            audio_features=level + rng.normal(size=(steps, 3)).astype(np.float32)))
    plain = ClipDataset(recordings, clip_length=4, stride=1, with_video=False, with_audio=True)
    own = ClipDataset(recordings, clip_length=4, stride=1, with_video=False, with_audio=True,
                      audio_per_recording=True, step_targets=True)
    assert plain[20]["audio"].mean() > 50 and "step_target" not in plain[20]
    item = own[20]  # recording 1, last step 8
    assert abs(float(item["audio"].mean())) < 2.0
    expected = standardise_per_recording(recordings[1].audio_features)[5:9]
    torch.testing.assert_close(item["audio"], torch.from_numpy(expected))
    torch.testing.assert_close(item["step_target"],
                               torch.from_numpy(recordings[1].labels[5:9]))
    torch.testing.assert_close(item["step_target"][-1], item["target"])


@pytest.mark.parametrize("lookahead", [1, 3, 12])
def test_a_lookahead_reads_later_inputs_for_the_same_labels(lookahead):
    """The clip labelled with step e reads the frames, masks and audio of e+d-T+1 … e+d
    (the last step repeated past the end); its labels stay those of e-T+1 … e."""
    n, length = 10, 4
    recording = counting_recording(n)
    recording.audio_features = np.arange(n, dtype=np.float32)[:, None] * [1.0, -1.0]
    recording.salient_mask = np.zeros((n, 4, 4), bool)
    for step in range(n):
        recording.salient_mask[step].flat[step] = True
    dataset = ClipDataset([recording], clip_length=length, stride=1, with_audio=True,
                          with_masks=True, step_targets=True, lookahead=lookahead,
                          augment=None)
    for end in range(n):
        item = dataset[end]
        read = [min(max(s, 0), n - 1) for s in range(end + lookahead - length + 1,
                                                     end + lookahead + 1)]
        labelled = [max(s, 0) for s in range(end - length + 1, end + 1)]
        assert item["step"] == end
        assert steps_of(item["clip"]) == read
        assert item["audio"][:, 0].tolist() == read
        assert [int(np.flatnonzero(m.numpy())[0]) for m in item["mask"]] == read
        torch.testing.assert_close(item["target"], torch.from_numpy(recording.labels[end]),
                                   equal_nan=True)
        torch.testing.assert_close(item["step_target"],
                                   torch.from_numpy(recording.labels[labelled]), equal_nan=True)
    with pytest.raises(AvstanError, match="lookahead must be >= 0"):
        ClipDataset([recording], clip_length=length, lookahead=-1)


def test_skipped_recordings_are_summarised_one_line_per_thing_missing():
    from avstan.data.clips import skipped_summary

    reasons = [f"rec{i}: skipped, it has no audio features (no or silent audio track)"
               for i in range(5)] + ["solo: skipped, it has no face frames (audio-only source)"]
    assert skipped_summary(reasons) == [
        "5 recordings skipped (rec0, rec1, rec2 and 2 more): they have no audio features (no "
        "or silent audio track)",
        "1 recording skipped (solo): it has no face frames (audio-only source)"]
