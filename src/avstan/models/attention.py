"""The spatiotemporal attention branch of the ICASSP 2018 paper (Sec. 2.2).

    clip (B, 3, T, S, S)
      └─ SpatialEncoder: one 2D CNN on every frame ("Siamese"), n × [3×3 conv, ReLU, 2×2 pool]
         → (B, T, C, S/2^n, S/2^n)
      └─ TemporalDecoder: n × [3×3 ConvLSTM, tanh, ×2 upsampling]       → (B, T, C', S, S)
      └─ SpatialSoftmaxAttention: 1×1 conv → one logit per location, softmax over the S·S
         locations of each frame, from the decoder state of step t-1 (eq. 2) or t
         → (B, T, S, S), each frame's map sums to 1

Choices the papers leave open, fixed here (and in docs/architecture.md):

* Upsampling: a ×2 transposed convolution (kernel 4, stride 2, padding 1) as the papers
  say ("deconvolution"); ``upsampling="resize_conv"`` swaps in nearest-neighbour resizing
  plus a 3×3 convolution, which cannot produce the checkerboard pattern transposed
  convolutions are known for (Odena et al. 2016).
* H_{t-1}: the attention for frame t is computed from the decoder output of step t-1, as
  eq. 2 writes it; for the first frame that is the zero initial state, so frame 1's map is
  uniform. ``attention_from="current"`` uses step t instead.
* ``temperature`` divides the logits before the softmax (1 = the papers).
* The logit layer has no bias, and neither has the decoder's last upsampling (the 1×1 logit
  layer turns a constant per channel into a constant on every logit): the softmax over a
  frame's S·S locations is unchanged by a constant added to every logit, so such a bias
  could never learn (its gradient is zero in exact arithmetic). Model files written with
  them still load: the stored biases, which never changed an output, are dropped.
* ``padding_mode`` of the encoder convolutions: "zeros" as usual, or "reflect" so that the
  crop border is not a free cue for the attention (seen in a prototype: the branch learnt
  to dim the zero-padded border instead of finding the face).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from avstan.models.convlstm import ConvLSTMCell


class SpatialEncoder(nn.Module):
    """A 2D CNN applied to every frame with shared weights.

    Input (B, T, C_in, S, S) → output (B, T, channels[-1], S / 2^len(channels), ...).
    """

    def __init__(self, in_channels: int = 3, channels: Sequence[int] = (32, 64, 128),
                 padding_mode: str = "zeros") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            layers += [nn.Conv2d(previous, width, 3, padding=1, padding_mode=padding_mode),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            previous = width
        self.layers = nn.Sequential(*layers)
        self.out_channels = previous
        self.downsampling = 2 ** len(channels)

    def forward(self, frames: Tensor) -> Tensor:
        batch, steps = frames.shape[:2]
        features = self.layers(frames.flatten(0, 1))
        return features.view(batch, steps, *features.shape[1:])


class NearestUpsample2x(nn.Module):
    """×2 nearest-neighbour upsampling of (N, C, H, W), as ``nn.Upsample(scale_factor=2)``
    but as one broadcast copy, which is ~2.5× faster on CPU (measured; same values)."""

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        return x[:, :, :, None, :, None].expand(n, c, h, 2, w, 2).reshape(n, c, 2 * h, 2 * w)


def create_upsampling(channels: int, kind: str, bias: bool = True) -> nn.Module:
    """A ×2 spatial upsampling block of ``channels`` → ``channels``."""
    if kind == "transposed":
        return nn.ConvTranspose2d(channels, channels, kernel_size=4, stride=2, padding=1,
                                  bias=bias)
    if kind == "resize_conv":
        return nn.Sequential(NearestUpsample2x(),
                             nn.Conv2d(channels, channels, 3, padding=1, bias=bias))
    raise ValueError(f"unknown upsampling {kind!r}: use 'transposed' or 'resize_conv'")


class TemporalDecoder(nn.Module):
    """Stages of [ConvLSTM, tanh, ×2 upsampling] that bring features back to S×S.

    Input (B, T, C, s, s) with s = S / 2^n → output (B, T, channels[-1], S, S).

    ``output_bias=False`` leaves out the last upsampling's bias: in front of a linear map to
    attention logits and a softmax over locations (``SpatiotemporalAttention``), a constant
    per channel becomes one constant on every logit, which the softmax ignores, so that
    bias could never learn. Stored model files that hold it still load (it is dropped).
    """

    def __init__(self, in_channels: int, input_size: int, channels: Sequence[int] = (64, 32, 16),
                 upsampling: str = "transposed", peephole: bool = True,
                 output_bias: bool = True) -> None:
        super().__init__()
        self.cells = nn.ModuleList()
        self.upsamplers = nn.ModuleList()
        previous, size = in_channels, input_size
        for stage, width in enumerate(channels):
            self.cells.append(ConvLSTMCell(previous, width, (size, size), peephole=peephole))
            last = stage == len(channels) - 1
            self.upsamplers.append(create_upsampling(width, upsampling,
                                                     bias=output_bias or not last))
            previous, size = width, size * 2
        self.output_bias = output_bias
        self.out_channels = previous
        self.output_size = size

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        if not self.output_bias:  # files written when the last upsampling had a bias
            last = f"{prefix}upsamplers.{len(self.upsamplers) - 1}."
            for key in (last + "bias", last + "1.bias"):
                state_dict.pop(key, None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, features: Tensor) -> Tensor:
        return self.from_input_gates(self.cells[0].input_gates(features))

    def from_input_gates(self, input_gates: Tensor) -> Tensor:
        """The decoder from the first cell's input-to-state term (B, T, 4·C, s, s), which
        depends on each frame alone (sliding-window prediction computes it once per frame)."""
        batch, steps = input_gates.shape[:2]
        features = None
        for cell, upsample in zip(self.cells, self.upsamplers, strict=True):
            hidden, _ = cell.recur(input_gates if features is None
                                   else cell.input_gates(features))
            hidden = upsample(torch.tanh(hidden).flatten(0, 1))
            features = hidden.view(batch, steps, *hidden.shape[1:])
        return features


def spatial_softmax(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Softmax over the spatial locations of each map: (..., H, W) → (..., H, W), sums to 1."""
    flat = (logits / temperature).flatten(-2)
    return flat.softmax(dim=-1).view_as(logits)


class SpatialSoftmaxAttention(nn.Module):
    """A 1×1 conv to one logit per location, then a softmax over each frame (eq. 2).

    Input decoder states (B, T, C, S, S) → attention (B, T, S, S).

    Args:
        attention_from: "previous" — frame t's map from the state of step t-1 (the papers);
            "current" — from step t.
        zero_init: start the logit layer at zero, so the initial attention is exactly
            uniform and the trunk first trains as a plain 3D-CNN.

    The 1×1 conv has no bias: one constant added to every logit of a frame leaves its
    softmax as it is, so the bias would get no gradient and never learn.
    """

    def __init__(self, in_channels: int, attention_from: str = "previous",
                 temperature: float = 1.0, zero_init: bool = False) -> None:
        super().__init__()
        if attention_from not in ("previous", "current"):
            raise ValueError("attention_from must be 'previous' or 'current', "
                             f"got {attention_from!r}")
        self.logit = nn.Conv2d(in_channels, 1, kernel_size=1, bias=False)
        self.attention_from = attention_from
        self.temperature = temperature
        self.zero_init = zero_init

    def reset_parameters(self) -> None:
        if self.zero_init:
            nn.init.zeros_(self.logit.weight)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # Files written before the bias was removed hold ``logit.bias``: a constant on every
        # logit of a frame, which never changed a softmax, so dropping it changes nothing.
        state_dict.pop(prefix + "logit.bias", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, states: Tensor) -> Tensor:
        batch, steps, channels, height, width = states.shape
        # The 1×1 convolution as a product over channels: the same numbers, about twice as
        # fast on CPU as the convolution path at the decoder's full resolution (measured).
        weight = self.logit.weight.view(1, channels)
        logits = torch.matmul(weight, states.flatten(3)).view(batch, steps, height, width)
        if self.attention_from == "previous":
            # H_{t-1}: shift by one step; step 0 sees the zero initial state, whose logits
            # are zero (shifting the one-channel logits, not the states, saves a copy).
            logits = torch.cat([logits.new_zeros(batch, 1, height, width), logits[:, :-1]],
                               dim=1)
        return spatial_softmax(logits, self.temperature)


class SpatiotemporalAttention(nn.Module):
    """Encoder → decoder → spatial softmax: a clip (B, 3, T, S, S) to maps (B, T, S, S)."""

    def __init__(self, crop_size: int, encoder_channels: Sequence[int] = (32, 64, 128),
                 decoder_channels: Sequence[int] = (64, 32, 16), upsampling: str = "transposed",
                 attention_from: str = "previous", temperature: float = 1.0,
                 zero_init_logits: bool = False, padding_mode: str = "zeros",
                 peephole: bool = True) -> None:
        super().__init__()
        if len(encoder_channels) != len(decoder_channels):
            raise ValueError("the decoder needs one stage per encoder stage to return to S×S")
        downsampling = 2 ** len(encoder_channels)
        if crop_size % downsampling:
            raise ValueError(f"crop_size {crop_size} must be divisible by {downsampling} "
                             f"({len(encoder_channels)} pooling stages)")
        self.encoder = SpatialEncoder(3, encoder_channels, padding_mode)
        # No bias on the decoder's last upsampling: the 1×1 logit layer maps it to one
        # constant on every logit of a frame, which the softmax ignores.
        self.decoder = TemporalDecoder(self.encoder.out_channels, crop_size // downsampling,
                                       decoder_channels, upsampling, peephole,
                                       output_bias=False)
        self.attention = SpatialSoftmaxAttention(self.decoder.out_channels, attention_from,
                                                 temperature, zero_init_logits)

    def forward(self, clip: Tensor) -> Tensor:
        frames = clip.transpose(1, 2)  # (B, T, 3, S, S)
        return self.attention(self.decoder(self.encoder(frames)))


class StaticAttention(nn.Module):
    """One learnt S×S map for every clip and frame: a static-attention baseline.

    A logit per location (starting at zero: uniform attention), a softmax over the S·S
    locations; ``forward(clip (B, 3, T, S, S))`` returns that map for every frame,
    (B, T, S, S). It can learn *where faces usually are* but not follow a face, which is
    what the attention study asks of the ConvLSTM branch (docs/attention.md).
    """

    def __init__(self, crop_size: int, temperature: float = 1.0) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(crop_size, crop_size))
        self.temperature = temperature

    def forward(self, clip: Tensor) -> Tensor:
        batch, _, steps = clip.shape[:3]
        attention = spatial_softmax(self.logits, self.temperature)
        return attention.expand(batch, steps, *attention.shape)


def attention_entropy(attention: Tensor) -> Tensor:
    """Mean entropy of maps (..., S, S) that each sum to 1, divided by log(S·S): 1 for
    uniform maps, 0 for a map on one location. As a training penalty it asks for sharper
    maps without saying where (the study's unsupervised sharpness term)."""
    flat = attention.flatten(-2)
    entropy = -(flat * flat.clamp_min(1e-12).log()).sum(-1)
    return entropy.mean() / torch.log(torch.tensor(float(flat.shape[-1])))


def apply_attention(features: Tensor, attention: Tensor, combine: str = "product") -> Tensor:
    """Weight 3D-CNN features (B, C, T, S, S) by attention maps (B, T, S, S).

    The maps sum to 1 over S·S locations, so they are rescaled by S·S: uniform attention
    is then exactly the identity and the trunk's activations keep their scale (without it,
    a 48×48 map would shrink every activation 2304-fold).

    ``combine="product"`` is eq. 3, X'' = (S·S·A) ⊙ X'. ``combine="residual"`` is
    X'' = (1 + S·S·A) / 2 ⊙ X', which is also the identity under uniform attention but never
    switches a location fully off, so the trunk keeps a gradient path everywhere.
    """
    height, width = attention.shape[-2:]
    gain = attention.unsqueeze(1) * (height * width)
    if combine == "product":
        return features * gain
    if combine == "residual":
        return features * (1.0 + gain) * 0.5
    raise ValueError(f"unknown attention combine {combine!r}: use 'product' or 'residual'")

