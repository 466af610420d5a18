"""Video models: 3D-CNN + spatiotemporal attention (``sta3d``) and its two baselines.

All take a clip ``(B, 3, T, S, S)`` of RGB values in [0, 1] and return a dict:

    prediction  (B, K)        the emotion at the clip's last step, K = len(targets)
    features    (B, F)        the activations before the last linear layer (Z^I of the MM paper)
    attention   (B, T, S, S)  only for models with attention; each frame's map sums to 1

Predicting the last step keeps the models causal, so a recording is scored by sliding the
clip one step at a time and streaming works with past frames only.

The recognition trunk (Sec. 2.3): conv3d(32) on the raw clip at full resolution, ReLU,
attention weighting, then max-pool, conv3d(64), max-pool, conv3d(128), max-pool,
conv3d(256), global average pool, FC → ReLU → dropout 0.5 → FC. The papers give the filter
counts, the three pools and the two FC layers; the 3×3×3 kernels, 2×2×2 pools (C3D's), the
global pool and the FC width (``fc_hidden``) are our choices.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from avstan.models.attention import SpatiotemporalAttention, StaticAttention, apply_attention
from avstan.models.init import xavier_uniform_init
from avstan.models.options import (
    ClipLength,
    Combine,
    CropSize,
    Dropout,
    PooledSize,
    Temperature,
    Width,
    Widths,
)
from avstan.models.registry import register_model
from avstan.targets import LABEL_NAMES

# Inputs in [0, 1] are shifted and scaled to roughly zero mean and unit spread.
INPUT_MEAN, INPUT_SCALE = 0.5, 0.25


class RegressionHead(nn.Module):
    """FC → ReLU → dropout → FC: pooled features (B, C) to (features (B, H), prediction (B, K))."""

    def __init__(self, in_features: int, hidden: int, outputs: int, dropout: float) -> None:
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True),
                                    nn.Dropout(dropout))
        self.output = nn.Linear(hidden, outputs)

    def forward(self, pooled: Tensor) -> tuple[Tensor, Tensor]:
        features = self.hidden(pooled)
        return features, self.output(features)


class Recognition3DCNN(nn.Module):
    """The emotion recognition 3D-CNN, optionally weighting its first features by attention.

    Input clip (B, 3, T, S, S) normalised, attention (B, T, S, S) or None (= uniform).
    """

    def __init__(self, channels: Sequence[int] = (32, 64, 128, 256), fc_hidden: int = 256,
                 outputs: int = 2, dropout: float = 0.5, combine: str = "product",
                 pooled_size: int = 1) -> None:
        super().__init__()
        if len(channels) != 4:
            raise ValueError("the recognition 3D-CNN has four conv3d layers")
        self.stem = nn.Sequential(nn.Conv3d(3, channels[0], 3, padding=1), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        for previous, width in zip(channels[:-1], channels[1:], strict=True):
            layers += [nn.MaxPool3d(2, ceil_mode=True), nn.Conv3d(previous, width, 3, padding=1),
                       nn.ReLU(inplace=True)]
        layers += [nn.AdaptiveAvgPool3d((1, pooled_size, pooled_size)), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.head = RegressionHead(channels[-1] * pooled_size ** 2, fc_hidden, outputs, dropout)
        self.combine = combine

    def forward(self, clip: Tensor, attention: Tensor | None = None) -> tuple[Tensor, Tensor]:
        features = self.stem(clip)  # X' (B, 32, T, S, S)
        if attention is not None:
            features = apply_attention(features, attention, self.combine)  # X'' = A ⊙ X'
        return self.head(self.body(features))


class AttentionVideoModel(nn.Module):
    """The 3D-CNN trunk with an optional attention branch (sta3d; static3d's one learnt map;
    or cnn3d without one).

    ``forward(clip, attention=...)`` also accepts fixed maps (B, T, S, S) in place of the
    branch's. ``fixed_attention`` builds the attention study's two bounds as models of their
    own: "mask" weights the trunk by the ground-truth salient mask, normalised per frame
    (it then reads ``mask`` (B, T, S, S) as an input, so training and evaluation pass it);
    "uniform" by uniform maps, which equals no attention but reports them.
    """

    input_names = ("clip",)  # batch entries passed to forward as keyword arguments

    def __init__(self, trunk: Recognition3DCNN,
                 attention: SpatiotemporalAttention | StaticAttention | None,
                 targets: Sequence[str], crop_size: int, clip_length: int,
                 fixed_attention: str | None = None) -> None:
        super().__init__()
        if fixed_attention not in (None, "mask", "uniform"):
            raise ValueError(f"fixed_attention must be 'mask', 'uniform' or None, "
                             f"got {fixed_attention!r}")
        if fixed_attention is not None and attention is not None:
            raise ValueError("a model with fixed attention has no attention branch")
        self.trunk = trunk
        self.attention_branch = attention
        self.targets = tuple(targets)
        self.crop_size = crop_size
        self.clip_length = clip_length
        self.fixed_attention = fixed_attention
        if fixed_attention == "mask":
            self.input_names = ("clip", "mask")

    def forward(self, clip: Tensor, attention: Tensor | None = None,
                mask: Tensor | None = None) -> dict[str, Tensor]:
        clip = (clip - INPUT_MEAN) / INPUT_SCALE
        if attention is None and self.fixed_attention == "mask":
            if mask is None:
                raise ValueError("this model attends to the salient mask: pass mask=(B, T, S, S)")
            attention = mask_attention(mask)
        elif attention is None and self.fixed_attention == "uniform":
            steps, height, width = clip.shape[2:]
            attention = clip.new_full((len(clip), steps, height, width), 1.0 / (height * width))
        if attention is None and self.attention_branch is not None:
            attention = self.attention_branch(clip)
        features, prediction = self.trunk(clip, attention)
        out = {"prediction": prediction, "features": features}
        if attention is not None:
            out["attention"] = attention
        return out


def mask_attention(mask: Tensor) -> Tensor:
    """Attention spread evenly over a salient mask: (..., H, W) bool → (..., H, W) float,
    each map summing to 1; a frame with an empty mask gets uniform attention."""
    weights = mask.float()
    area = weights.sum(dim=(-2, -1), keepdim=True)
    uniform = torch.full_like(weights, 1.0 / (weights.shape[-2] * weights.shape[-1]))
    return torch.where(area > 0, weights / area.clamp(min=1.0), uniform)


class FrameStack2DCNN(nn.Module):
    """The 2D-CNN baseline (Khorrami et al. 2016): the T frames stacked as 3·T channels.

    Mirrors the 3D trunk (four convs of 32/64/128/256 filters, three 2×2 max-pools, global
    pool, FC → dropout → FC) so the ablation isolates 2D vs 3D convolution.
    """

    input_names = ("clip",)

    def __init__(self, clip_length: int, targets: Sequence[str], crop_size: int,
                 channels: Sequence[int] = (32, 64, 128, 256), fc_hidden: int = 256,
                 dropout: float = 0.5, pooled_size: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3 * clip_length, channels[0], 3, padding=1),
                                   nn.ReLU(inplace=True)]
        for previous, width in zip(channels[:-1], channels[1:], strict=True):
            layers += [nn.MaxPool2d(2), nn.Conv2d(previous, width, 3, padding=1),
                       nn.ReLU(inplace=True)]
        layers += [nn.AdaptiveAvgPool2d(pooled_size), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.head = RegressionHead(channels[-1] * pooled_size ** 2, fc_hidden, len(targets),
                                   dropout)
        self.targets = tuple(targets)
        self.crop_size = crop_size
        self.clip_length = clip_length

    def forward(self, clip: Tensor) -> dict[str, Tensor]:
        clip = (clip - INPUT_MEAN) / INPUT_SCALE
        features, prediction = self.head(self.body(clip.flatten(1, 2)))
        return {"prediction": prediction, "features": features}


@register_model
def sta3d(crop_size: CropSize = 96, clip_length: ClipLength = 16,
          targets: Sequence[str] = LABEL_NAMES, encoder_channels: Widths = (32, 64, 128),
          decoder_channels: Widths = (64, 32, 16), upsampling: str = "transposed",
          attention_from: str = "previous", temperature: Temperature = 1.0,
          zero_init_logits: bool = False, padding_mode: str = "zeros",
          combine: Combine = "product", peephole: bool = True,
          trunk_channels: Widths = (32, 64, 128, 256), fc_hidden: Width = 256,
          dropout: Dropout = 0.5, pooled_size: PooledSize = 1) -> AttentionVideoModel:
    """3D-CNN + STA: the ICASSP 2018 model (ConvLSTM attention weighting a 3D-CNN)."""
    attention = SpatiotemporalAttention(crop_size, encoder_channels, decoder_channels, upsampling,
                                        attention_from, temperature, zero_init_logits,
                                        padding_mode, peephole)
    trunk = Recognition3DCNN(trunk_channels, fc_hidden, len(targets), dropout, combine,
                             pooled_size)
    model = AttentionVideoModel(trunk, attention, targets, crop_size, clip_length)
    _initialise(model)
    return model


@register_model
def static3d(crop_size: CropSize = 96, clip_length: ClipLength = 16,
             targets: Sequence[str] = LABEL_NAMES, temperature: Temperature = 1.0,
             combine: Combine = "product", trunk_channels: Widths = (32, 64, 128, 256),
             fc_hidden: Width = 256, dropout: Dropout = 0.5, pooled_size: PooledSize = 1
             ) -> AttentionVideoModel:
    """The 3D-CNN weighted by one learnt S×S map, the same for every clip and frame (no
    ConvLSTM): the attention study's static-attention baseline. Its map starts uniform,
    so it starts as ``cnn3d``; ``training.attention_lr`` applies to the map."""
    trunk = Recognition3DCNN(trunk_channels, fc_hidden, len(targets), dropout, combine,
                             pooled_size)
    model = AttentionVideoModel(trunk, StaticAttention(crop_size, temperature), targets,
                                crop_size, clip_length)
    _initialise(model)
    return model


@register_model
def cnn3d(crop_size: CropSize = 96, clip_length: ClipLength = 16,
          targets: Sequence[str] = LABEL_NAMES, trunk_channels: Widths = (32, 64, 128, 256),
          fc_hidden: Width = 256, dropout: Dropout = 0.5, combine: Combine = "product",
          pooled_size: PooledSize = 1, fixed_attention: str | None = None
          ) -> AttentionVideoModel:
    """The same 3D-CNN without attention (Table 1, row 2); fixed maps may still be passed in.

    ``fixed_attention``: "mask" — the ground-truth salient mask as attention, an upper bound
    for what a learnt attention can give (reads the batch's ``mask``; synthetic corpora
    only); "uniform" — uniform maps (the same model as None, with maps in its output).
    """
    trunk = Recognition3DCNN(trunk_channels, fc_hidden, len(targets), dropout, combine,
                             pooled_size)
    model = AttentionVideoModel(trunk, None, targets, crop_size, clip_length, fixed_attention)
    _initialise(model)
    return model


@register_model
def cnn2d(crop_size: CropSize = 96, clip_length: ClipLength = 16,
          targets: Sequence[str] = LABEL_NAMES, channels: Widths = (32, 64, 128, 256),
          fc_hidden: Width = 256, dropout: Dropout = 0.5, pooled_size: PooledSize = 1
          ) -> FrameStack2DCNN:
    """2D-CNN on the T frames stacked as channels (Table 1, row 1; Khorrami et al. 2016)."""
    model = FrameStack2DCNN(clip_length, targets, crop_size, channels, fc_hidden, dropout,
                            pooled_size)
    _initialise(model)
    return model


def _initialise(model: nn.Module) -> None:
    xavier_uniform_init(model)
    # Modules with their own rules (ConvLSTM peepholes and forget bias, zero-init logits).
    for module in model.modules():
        if module is not model and hasattr(module, "reset_parameters") and not isinstance(
                module, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)):
            module.reset_parameters()
