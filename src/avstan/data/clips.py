"""Clips of T steps cut from recordings, for training and for sliding-window prediction.

A clip ending at step ``e`` covers steps ``e-T+1 … e`` and is labelled with step ``e``'s
label (the models predict the last step, so they are causal). Steps before the start of a
recording are padded by repeating the first frame, so every step of a recording, the
first included, gets a prediction.

A model with a **lookahead** of ``d`` steps (the audio models' ``lookahead`` option)
predicts step ``e`` from the inputs of the clip ending at ``e + d``: it reads ``d`` steps
past the one it labels, as an offline system may (and a stream, ``d`` steps late). The
clip's labels stay those of ``e-T+1 … e``; its inputs are those of ``e+d-T+1 … e+d``, the
steps past a recording's end replaced by its last step (last-step padding, the mirror of
the first-frame padding at the start). The eGeMAPS windows end
at their step (``data.audio``), so a window's centre lies half a window before it: with
4 s windows a lookahead of about 2 s lines the window up with the label it describes.

Training clips end every ``stride`` steps: ``stride = T`` gives the ICASSP paper's
non-overlapping 16-step clips, a smaller stride the MM paper's overlapping ones. Evaluation
uses stride 1. Clips whose last label is unknown (NaN) are left out of training.

Augmentation (the papers: flips, contrast, colour) is drawn once per clip and applied
identically to all its frames, so it never creates motion that is not in the video.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from avstan.data.audio import standardise_per_recording
from avstan.data.store import FRAMES_ON_DISK, LABEL_NAMES, Recording
from avstan.errors import AvstanError
from avstan.typed_config import Range, check_declared


@dataclass(frozen=True)
class AugmentConfig:
    """Per-clip photometric and geometric augmentation.

    flip: probability of a horizontal flip. contrast: factor drawn from [1-c, 1+c] around
    the clip's mean. colour: per-channel gain drawn from [1-k, 1+k]. brightness: an offset
    drawn from [-b, b] (values in [0, 1]). shift: a translation of the whole clip by up to
    ``round(shift · S)`` pixels in each direction (integers drawn uniformly; 0 = off), the
    uncovered border filled with the nearest edge pixels and the salient mask moved alike.
    Shifting makes where the face usually sits in the crop worthless to a model, so an
    attention map can only help by following the face (docs/attention.md).
    """

    flip: Annotated[float, Range(ge=0, le=1)] = 0.5  # a probability
    contrast: Annotated[float, Range(ge=0, le=1)] = 0.2
    colour: Annotated[float, Range(ge=0, le=1)] = 0.1
    brightness: Annotated[float, Range(ge=0, le=1)] = 0.1
    shift: Annotated[float, Range(ge=0, lt=0.5)] = 0.0  # a fraction of the crop

    def __post_init__(self) -> None:
        check_declared(self, "augmentation", "data.augment.")


def window_indices(ends: Sequence[int], clip_length: int,
                   num_steps: int | None = None) -> np.ndarray:
    """(M, T) step indices of the clips ending at ``ends``: the T steps up to each end, the
    steps before a recording's start replaced by its first step (first-frame padding) and,
    given the recording's ``num_steps``, those past its end by its last (a lookahead's
    clips near the end).

    The one definition of the padding: training clips, sliding-window evaluation and the
    causal clips of a stream all take their steps from here."""
    ends = np.asarray(ends, dtype=np.int64)
    indices = np.maximum(ends[:, None] + np.arange(1 - clip_length, 1)[None, :], 0)
    return indices if num_steps is None else np.minimum(indices, num_steps - 1)


def clip_indices(end: int, clip_length: int, num_steps: int | None = None) -> np.ndarray:
    """Step indices of the clip ending at ``end``, first-frame padded (and last-step padded
    given ``num_steps``): (T,) int."""
    return window_indices([end], clip_length, num_steps)[0]


def shift_frames(frames: Tensor, dy: int, dx: int, fill: str = "edge") -> Tensor:
    """Frames (..., H, W) translated by ``dy`` rows and ``dx`` columns (positive: down,
    right). The uncovered border repeats the nearest edge pixels (``fill="edge"``) or is
    zero (``"zero"``, e.g. for masks). Shifts of the frame size or more are refused."""
    height, width = frames.shape[-2:]
    if abs(dy) >= height or abs(dx) >= width:
        raise AvstanError(f"shift ({dy}, {dx}) is not smaller than the frame ({height}, {width})")
    if dy == 0 and dx == 0:
        return frames
    pad = max(abs(dy), abs(dx))
    flat = frames.reshape(-1, 1, height, width)
    dtype = flat.dtype
    if fill == "edge":
        padded = torch.nn.functional.pad(flat.float(), (pad, pad, pad, pad), mode="replicate")
    elif fill == "zero":
        padded = torch.nn.functional.pad(flat.float(), (pad, pad, pad, pad))
    else:
        raise AvstanError(f"shift_frames: fill must be 'edge' or 'zero', got {fill!r}")
    out = padded[..., pad - dy:pad - dy + height, pad - dx:pad - dx + width]
    return out.to(dtype).reshape(frames.shape)


def augment_clip(clip: Tensor, config: AugmentConfig, mask: Tensor | None = None,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor | None]:
    """Apply one random draw of the augmentation to a whole clip.

    clip: (3, T, S, S) float in [0, 1]; mask: (T, S, S) or None, flipped and shifted with
    the clip.
    """
    def uniform(low: float, high: float, size: int = 1) -> Tensor:
        return low + (high - low) * torch.rand(size, generator=generator)

    reach = round(config.shift * min(clip.shape[-2:]))
    if reach:
        dy, dx = (int(v) for v in torch.randint(-reach, reach + 1, (2,), generator=generator))
        clip = shift_frames(clip, dy, dx, "edge")
        if mask is not None:
            mask = shift_frames(mask, dy, dx, "zero")

    if config.flip and uniform(0, 1).item() < config.flip:
        clip = clip.flip(-1)
        if mask is not None:
            mask = mask.flip(-1)
    if config.contrast:
        factor = uniform(1 - config.contrast, 1 + config.contrast).item()
        clip = (clip - clip.mean()) * factor + clip.mean()
    if config.colour:
        gains = uniform(1 - config.colour, 1 + config.colour, 3).view(3, 1, 1, 1)
        clip = clip * gains
    if config.brightness:
        clip = clip + uniform(-config.brightness, config.brightness).item()
    return clip.clamp(0.0, 1.0), mask


class ClipDataset(Dataset):
    """Clips over a list of recordings.

    Each item is a dict:
        clip        (3, T, S, S) float32 in [0, 1], only when ``with_video`` (the default)
        audio       (T, D) float32, the acoustic features, only when ``with_audio``
        target      (K,) float32, the labels of ``targets`` at the clip's last step (NaN if unknown)
        recording   int, index into ``recordings``
        step        int, the clip's last step
        mask        (T, S, S) bool, only when ``with_masks`` (the synthetic salient mask)
        step_target (T, K) float32, the labels at every step of the clip, only when
                    ``step_targets`` (a loss on every step)
        expression  int64, the last step's expression index (-1: unknown), only when
                    ``with_expressions`` (face images of an expression corpus)

    Args:
        stride: distance between the last steps of consecutive clips.
        labelled_only: leave out clips whose last step has any unknown target (training).
        augment: per-clip augmentation, or None. Draws come from torch's global generator,
            which Lightning's ``seed_everything(workers=True)`` seeds in every worker.
        with_video, with_audio: which inputs to cut (``inputs_for_model`` maps a model's
            ``input_names`` to these flags).
        audio_per_recording: standardise each recording's audio features with its own
            statistics first (``data.audio.standardise_per_recording``; the model's
            ``recording_standardisation`` option says so).
        step_targets: also return the labels of every step of the clip.
        static: every clip is its last step's frame held still for ``clip_length`` steps
            (the face images of an image store, one unrelated image per step: a window
            over its steps would join different faces); ``stride`` takes every
            ``stride``-th image, from the first.
        lookahead: the clip labelled with step ``e`` reads the inputs (frames, audio, masks)
            of the clip ending at ``e + lookahead``, last-step padded (the model's
            ``lookahead`` option; see the module docstring). ``step`` stays ``e``.
    """

    def __init__(self, recordings: Sequence[Recording], clip_length: int = 16, stride: int = 1,
                 targets: Sequence[str] = LABEL_NAMES, labelled_only: bool = False,
                 augment: AugmentConfig | None = None, with_masks: bool = False,
                 with_video: bool = True, with_audio: bool = False,
                 audio_per_recording: bool = False, step_targets: bool = False,
                 lookahead: int = 0, with_expressions: bool = False,
                 static: bool = False) -> None:
        if clip_length < 1 or stride < 1:
            raise AvstanError(f"clip_length and stride must be >= 1, got {clip_length}, {stride}")
        if lookahead < 0:
            raise AvstanError(f"lookahead must be >= 0 steps, got {lookahead}")
        unknown = [t for t in targets if t not in LABEL_NAMES]
        if unknown or not targets:
            raise AvstanError(f"unknown targets {unknown or list(targets)}; "
                              f"use some of {LABEL_NAMES}")
        self.recordings = list(recordings)
        self.clip_length = clip_length
        self.lookahead = int(lookahead)
        if static and self.lookahead:
            raise AvstanError("a model that reads ahead needs a timeline; static clips (face "
                              "images) have none")
        self.static = static
        self.targets = tuple(targets)
        self.augment = augment
        self.with_masks = with_masks
        columns = [LABEL_NAMES.index(t) for t in self.targets]
        lacking = [r.name for r in self.recordings
                   if (with_video and r.frames is None)
                   or (with_audio and r.audio_features is None)]
        if lacking:
            what = " and ".join(w for w, on in (("face frames", with_video),
                                                ("audio features", with_audio)) if on)
            raise AvstanError(f"recordings without {what}: {', '.join(lacking)}; leave them out "
                              "(usable_recordings) or prepare them again")
        # Frames as (N, 3, S, S) uint8 tensors so a clip is one gather plus one conversion;
        # frames left on disk (StoredFrames, a spool) are read a clip at a time instead.
        self._frames = [r.frames if isinstance(r.frames, FRAMES_ON_DISK)
                        else torch.from_numpy(r.frames).permute(0, 3, 1, 2).contiguous()
                        for r in self.recordings] if with_video else None
        self._audio = [torch.from_numpy(standardise_per_recording(r.audio_features)
                                        if audio_per_recording else r.audio_features)
                       for r in self.recordings] if with_audio else None
        self.step_targets = step_targets
        self._labels = [torch.from_numpy(r.labels[:, columns]) for r in self.recordings]
        self._expressions = None
        if with_expressions:
            if any(r.expressions is None for r in self.recordings):
                raise AvstanError("expressions requested but a recording has none (image "
                                  "stores of expression corpora have them); set "
                                  "training.expression_weight to 0")
            self._expressions = [torch.from_numpy(r.expressions.astype(np.int64))
                                 for r in self.recordings]
        self._masks = None
        if with_masks:
            if any(r.salient_mask is None for r in self.recordings):
                raise AvstanError("salient masks requested but a recording has none "
                                  "(only the synthetic corpus stores them)")
            self._masks = [torch.from_numpy(r.salient_mask) for r in self.recordings]
        index = []
        for number, (recording, labels) in enumerate(zip(self.recordings, self._labels,
                                                         strict=True)):
            # The first clip ends at T-1 (no padding) when striding, at 0 when every step counts.
            first = 0 if stride == 1 or static else min(clip_length - 1,
                                                        recording.num_steps - 1)
            ends = np.arange(first, recording.num_steps, stride)
            if labelled_only:
                known = torch.isfinite(labels).all(dim=1).numpy()
                ends = ends[known[ends]]
            index.append(np.stack([np.full(len(ends), number), ends], axis=1))
        self.index = np.concatenate(index) if index else np.zeros((0, 2), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, Tensor | int]:
        number, end = (int(v) for v in self.index[item])
        labelled = (torch.full((self.clip_length,), end) if self.static
                    else torch.from_numpy(clip_indices(end, self.clip_length)))
        steps = labelled if not self.lookahead else torch.from_numpy(clip_indices(
            end + self.lookahead, self.clip_length, len(self._labels[number])))
        out: dict[str, Tensor | int] = {"target": self._labels[number][end],
                                        "recording": number, "step": end}
        mask = self._masks[number][steps] if self._masks is not None else None
        if self._frames is not None:
            frames = self._frames[number]
            # the same (T, 3, S, S) contiguous layout either way, so every later operation
            # (augmentation, the model) runs exactly as on frames held in memory
            block = (torch.from_numpy(np.ascontiguousarray(
                frames[steps.numpy()].transpose(0, 3, 1, 2)))
                if isinstance(frames, FRAMES_ON_DISK) else frames[steps])
            clip = block.permute(1, 0, 2, 3).float().div_(255.0)
            if self.augment is not None:
                clip, mask = augment_clip(clip, self.augment, mask)
            out["clip"] = clip
        if self._audio is not None:
            out["audio"] = self._audio[number][steps]
        if self.step_targets:
            out["step_target"] = self._labels[number][labelled]
        if self._expressions is not None:
            out["expression"] = self._expressions[number][end]
        if mask is not None:
            out["mask"] = mask
        return out


def inputs_for_model(input_names: Sequence[str]) -> dict[str, bool]:
    """ClipDataset flags for a model's ``input_names`` ("clip", "audio", "mask")."""
    unknown = set(input_names) - {"clip", "audio", "mask"}
    if unknown:
        raise AvstanError(f"a model reads inputs {sorted(unknown)} that clips do not provide")
    return {"with_video": "clip" in input_names, "with_audio": "audio" in input_names,
            "with_masks": "mask" in input_names}


SKIPPED = ": skipped, it has no "  # how usable_recordings words a reason


def skipped_summary(reasons: Sequence[str]) -> list[str]:
    """:func:`usable_recordings`' reasons as one line per thing missing, naming a few of
    the recordings: a store of 500 videos without audio is one warning, not 500."""
    groups: dict[str, list[str]] = {}
    for reason in reasons:
        name, _, what = reason.partition(SKIPPED)
        groups.setdefault(what or reason, []).append(name)
    lines = []
    for what, names in groups.items():
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        lines.append(f"{len(names)} recording{'s' * (len(names) > 1)} skipped ({shown}): "
                     f"{'they have' if len(names) > 1 else 'it has'} no {what}")
    return lines


def usable_recordings(recordings: Sequence[Recording], input_names: Sequence[str]
                      ) -> tuple[list[Recording], list[str]]:
    """Split recordings into those that have every input a model reads and the rest.

    Returns (usable, reasons): one line per recording left out, naming it and what it lacks
    (e.g. a video without an audio track for an audio model).
    """
    usable, reasons = [], []
    for recording in recordings:
        missing = []
        if "clip" in input_names and recording.frames is None:
            missing.append("face frames (audio-only source)")
        if "audio" in input_names and recording.audio_features is None:
            missing.append("audio features (no or silent audio track)")
        if "mask" in input_names and recording.salient_mask is None:
            missing.append("a salient mask (synthetic corpora only)")
        if missing:
            reasons.append(f"{recording.name}{SKIPPED}{' and no '.join(missing)}")
        else:
            usable.append(recording)
    return usable, reasons
