"""Sliding-window prediction that shares work between overlapping clips.

A recording is scored by the clip ending at every step (the first T-1 clips padded with
the first frame), so each frame lies in T clips. What depends on one frame alone is
computed once per frame and reused by every clip that holds it:

* for the attention models (``sta3d``): the input normalisation, the per-frame ("Siamese")
  2D encoder and the first ConvLSTM's input-to-state convolution;
* nothing for the other models (``static3d``'s one map costs nothing to recompute): the
  3D-CNN trunk, the ConvLSTM recurrences (their state starts at zero at each clip's first
  step) and everything weighted by a clip's attention depend on the whole clip. The
  trunk's first conv3d could be shared on a clip's inner frames but not at its two ends
  (zero padding in time) — measured at ~5 % of sta3d's time at S = 64, not worth the
  bookkeeping.

Clips are batched. The outputs equal the model applied to each clip (``model(clip=...)``)
up to float rounding (tested to 1e-5). Frames are encoded lazily, batch by batch, so memory
holds one batch of windows, never the whole recording's features.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from avstan.data.clips import window_indices
from avstan.models.attention import SpatiotemporalAttention
from avstan.models.video import INPUT_MEAN, INPUT_SCALE, AttentionVideoModel


def frames_to_float(frames: np.ndarray | Tensor) -> Tensor:
    """(N, S, S, 3) uint8 RGB → (N, 3, S, S) float32 in [0, 1], as ClipDataset makes clips."""
    frames = torch.as_tensor(frames)
    return frames.permute(0, 3, 1, 2).float().div_(255.0)


def shares_frame_work(model: nn.Module) -> bool:
    """True when :func:`iter_window_outputs` reuses per-frame work for ``model``."""
    return isinstance(model, AttentionVideoModel) and isinstance(model.attention_branch,
                                                                  SpatiotemporalAttention)


@torch.inference_mode()
def iter_window_outputs(model: nn.Module, frames: np.ndarray | Tensor, ends: Sequence[int],
                        clip_length: int, batch_size: int = 32,
                        device: str | torch.device = "cpu"
                        ) -> Iterator[tuple[np.ndarray, dict[str, Tensor]]]:
    """The model's outputs for the clips ending at ``ends``, one batch at a time.

    ``frames``: (N, S, S, 3) uint8 crops of one recording. Yields (ends of the batch (B,),
    the dict ``model(clip=...)`` returns for those clips: prediction (B, K), features,
    attention (B, T, S, S) when the model has attention), on ``device``. The model must be
    in eval mode (dropout off) for the outputs to be the clips' predictions.
    """
    ends = np.asarray(ends, dtype=np.int64)
    if shares_frame_work(model):
        yield from _shared_windows(model, frames, ends, clip_length, batch_size, device)
        return
    for start in range(0, len(ends), batch_size):
        batch_ends = ends[start:start + batch_size]
        indices = window_indices(batch_ends, clip_length)
        needed, rows = np.unique(indices, return_inverse=True)
        chunk = frames_to_float(frames[needed]).to(device)
        clips = chunk[torch.from_numpy(rows.reshape(indices.shape))]  # (B, T, 3, S, S)
        yield batch_ends, model(clip=clips.transpose(1, 2))


def _shared_windows(model: AttentionVideoModel, frames, ends: np.ndarray, clip_length: int,
                    batch_size: int, device) -> Iterator[tuple[np.ndarray, dict[str, Tensor]]]:
    branch = model.attention_branch
    first_cell = branch.decoder.cells[0]
    cached_index = np.zeros(0, dtype=np.int64)  # sorted frame indices held in the cache
    cached_clip = cached_gates = None
    for start in range(0, len(ends), batch_size):
        batch_ends = ends[start:start + batch_size]
        indices = window_indices(batch_ends, clip_length)
        needed = np.unique(indices)
        new = np.setdiff1d(needed, cached_index, assume_unique=True)
        normalised = (frames_to_float(frames[new]).to(device) - INPUT_MEAN) / INPUT_SCALE
        # Per frame: the encoder and the first ConvLSTM's input-to-state term.
        gates = (first_cell.input_gates(branch.encoder(normalised.unsqueeze(0)))[0] if len(new)
                 else normalised.new_zeros((0, *cached_gates.shape[1:])))
        if cached_clip is not None:
            keep = np.isin(cached_index, needed)
            keep_rows = torch.from_numpy(np.flatnonzero(keep))
            normalised = torch.cat([cached_clip[keep_rows], normalised])
            gates = torch.cat([cached_gates[keep_rows], gates])
            held = np.concatenate([cached_index[keep], new])
        else:
            held = new
        order = np.argsort(held, kind="stable")
        cached_index = held[order]
        order = torch.from_numpy(order)
        cached_clip, cached_gates = normalised[order], gates[order]
        rows = torch.from_numpy(np.searchsorted(cached_index, indices))  # (B, T)
        clips = cached_clip[rows].transpose(1, 2)  # (B, 3, T, S, S), normalised
        attention = branch.attention(branch.decoder.from_input_gates(cached_gates[rows]))
        features, prediction = model.trunk(clips, attention)
        yield batch_ends, {"prediction": prediction, "features": features,
                           "attention": attention}
