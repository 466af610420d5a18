"""A frame model: a 2D CNN over one aligned face crop (``frame2d``).

The papers' models read 16-step clips; this one reads the clip's **last frame** only, so
it can learn from labelled face *images* (FER2013, AffectNet: one image = one step of an
image store, ``data.images``) and still run wherever a clip model runs (training,
sliding-window evaluation, ``predict``, the stream, export): with ``clip_length: 1`` every
step of a video is one prediction from its own crop. On video its per-step values are
smoothed by the fixed filter recorded in the model file (``apply.predict``).

    clip (B, 3, T, S, S) in [0, 1] → last frame (B, 3, S, S)
      → [grey: luminance (B, 1, S, S)] → (x - 0.5) / 0.25
      → stages of 2 × [3×3 conv, batch norm, ReLU], 2×2 max-pool between stages
      → global average pool → FC → ReLU → dropout → FC → (valence, arousal)

``grey=True`` (the default) turns colour crops into luminance (ITU-R BT.601 weights) before
the network: a model trained on grey faces (FER2013) then reads colour video as it read its
training faces, and the model file records it (it is a model option). The convolutions
before a batch norm have no bias: the norm subtracts each channel's mean, so a bias there
could never change an output (tests/models/test_registry.py declares it).

``expression_classes`` > 0 adds an expression head beside the valence/arousal output
(``out["expression_logits"]`` (B, E), over ``data.corpora.images.EXPRESSIONS``), trained by
a cross-entropy term (``training.expression_weight``) where a sample's expression is known.
``va_from_expressions`` makes valence/arousal the **expected point** of that head's class
probabilities under the circumplex table (``data.corpora.acted``; the points are kept in
the model file), instead of a regression layer: on a corpus labelled only by category
(FER2013) the two outputs then agree, and a face between two expressions lands between
their points. ``flip_average`` averages, at evaluation, the outputs for the crop and its
mirror image (test-time flip).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from avstan.data.corpora.acted import CIRCUMPLEX
from avstan.data.corpora.images import EXPRESSIONS
from avstan.models.init import xavier_uniform_init
from avstan.models.options import ClipLength, Count, CropSize, Depth, Dropout, Width, Widths
from avstan.models.registry import register_model
from avstan.models.video import INPUT_MEAN, INPUT_SCALE
from avstan.targets import LABEL_NAMES

# ITU-R BT.601 luma weights: how grey images (FER2013's) were made from colour ones.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def to_grey(frames: Tensor) -> Tensor:
    """RGB frames (B, 3, H, W) → luminance (B, 1, H, W), BT.601 weights."""
    weights = frames.new_tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)
    return (frames * weights).sum(dim=1, keepdim=True)


def conv_norm_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    """3×3 conv (no bias: the batch norm removes it) → batch norm → ReLU."""
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class FrameCNN(nn.Module):
    """The 2D CNN of ``frame2d``: ``forward(clip (B, 3, T, S, S))`` reads the last frame."""

    input_names = ("clip",)

    def __init__(self, targets: Sequence[str], crop_size: int, clip_length: int = 1,
                 channels: Sequence[int] = (32, 64, 128, 256), convs_per_stage: int = 2,
                 fc_hidden: int = 256, dropout: float = 0.5, grey: bool = True,
                 expression_classes: int = 0, va_from_expressions: bool = False,
                 flip_average: bool = False) -> None:
        super().__init__()
        if convs_per_stage < 1 or not channels:
            raise ValueError("frame2d needs at least one stage of at least one convolution")
        if crop_size % 2 ** (len(channels) - 1):
            raise ValueError(f"crop_size {crop_size} must be divisible by "
                             f"{2 ** (len(channels) - 1)} ({len(channels) - 1} pooling stages)")
        if va_from_expressions and expression_classes != len(EXPRESSIONS):
            raise ValueError(f"va_from_expressions needs expression_classes = "
                             f"{len(EXPRESSIONS)} ({', '.join(EXPRESSIONS)})")
        layers: list[nn.Module] = []
        previous = 1 if grey else 3
        for stage, width in enumerate(channels):
            if stage:
                layers.append(nn.MaxPool2d(2))
            for _ in range(convs_per_stage):
                layers += conv_norm_relu(previous, width)
                previous = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.hidden = nn.Sequential(nn.Linear(previous, fc_hidden), nn.ReLU(inplace=True),
                                    nn.Dropout(dropout))
        # valence/arousal either regressed, or the expected point of the expression head's
        # probabilities under the circumplex table (kept in the model file as a buffer)
        self.output = None if va_from_expressions else nn.Linear(fc_hidden, len(targets))
        self.expression = nn.Linear(fc_hidden, expression_classes) if expression_classes else None
        if va_from_expressions:
            columns = [LABEL_NAMES.index(t) for t in targets]
            points = torch.tensor([CIRCUMPLEX[e] for e in EXPRESSIONS])[:, columns]
            self.register_buffer("expression_points", points)
        self.targets = tuple(targets)
        self.crop_size = crop_size
        self.clip_length = clip_length
        self.grey = grey
        self.flip_average = flip_average
        self.expression_classes = expression_classes  # predict's and stream's CSV columns

    def forward(self, clip: Tensor) -> dict[str, Tensor]:
        frame = clip[:, :, -1]  # (B, 3, S, S): the step being predicted
        if self.grey:
            frame = to_grey(frame)
        frame = (frame - INPUT_MEAN) / INPUT_SCALE
        if self.flip_average and not self.training:
            # the frame and its mirror image, averaged: faces are (nearly) symmetric and the
            # training flips them, so the two readings differ only by the model's noise
            out = self._from_frames(torch.cat([frame, frame.flip(-1)]))
            # (2·B, ...) → (2, B, ...) → mean: a reshape, so an export keeps the batch free
            return {k: v.unflatten(0, (2, -1)).mean(dim=0) for k, v in out.items()}
        return self._from_frames(frame)

    def _from_frames(self, frames: Tensor) -> dict[str, Tensor]:
        features = self.hidden(self.body(frames))
        out = {"features": features}
        if self.expression is not None:
            out["expression_logits"] = self.expression(features)
        if self.output is not None:
            out["prediction"] = self.output(features)
        else:
            probabilities = out["expression_logits"].softmax(dim=-1)
            out["prediction"] = probabilities @ self.expression_points
        return out


@register_model
def frame2d(crop_size: CropSize = 48, clip_length: ClipLength = 1,
            targets: Sequence[str] = LABEL_NAMES, channels: Widths = (32, 64, 128, 256),
            convs_per_stage: Depth = 2, fc_hidden: Width = 256, dropout: Dropout = 0.5,
            grey: bool = True, expression_classes: Count = 0,
            va_from_expressions: bool = False, flip_average: bool = False) -> FrameCNN:
    """A 2D CNN over one aligned face crop (the clip's last frame): the real-face model,
    trained on face images (FER2013, AffectNet) and run on video frame by frame."""
    model = FrameCNN(targets, crop_size, clip_length, channels, convs_per_stage, fc_hidden,
                     dropout, grey, expression_classes, va_from_expressions, flip_average)
    xavier_uniform_init(model)
    return model
