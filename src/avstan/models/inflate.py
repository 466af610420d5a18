"""Start a clip model from a trained frame model (``training.init_encoder``).

The papers' video models learn their convolutions from scratch on a few hours of video; a
frame model (``frame2d``) has learnt faces from tens of thousands of photos. Its
convolutions can start theirs:

* **2D → 3D** (I3D, Carreira & Zisserman 2017): a 3×3 kernel is repeated over the temporal
  kernel's ``k_t`` steps and divided by ``k_t``, so on a static clip the 3D convolution
  gives the 2D convolution's output at every frame whose temporal neighbourhood lies inside
  the clip (:func:`inflate_conv_weight`).
* **Batch norm folded in**: frame2d's convolutions are followed by a batch norm; with its
  running statistics it is an affine map per channel, folded into the convolution's weight
  and bias (:func:`fold_batch_norm`), since the clip models have no batch norm.
* **Grey → colour**: a grey frame model's first kernel reads luminance; the clip models'
  reads RGB, so its weight is split over the channels by the BT.601 luma weights
  (:func:`grey_to_rgb`): on any RGB input the result equals the grey kernel on the
  luminance (both normalise inputs by the same ``(x - 0.5) / 0.25``, which commutes with
  luma weights that sum to 1).
* **Stacked frames** (``cnn2d`` reads the T frames as 3·T channels): the first kernel is
  divided by T and repeated over the frames, so a static clip gives the 2D output.

Which layers start from which: frame2d has stages of (conv, norm, ReLU) × n with a pool
between stages; a clip model has one convolution per stage. The **first convolution of
each stage** starts the clip model's convolution of the same stage (the recognition trunk
of ``cnn3d``, ``static3d`` and ``sta3d``, and ``cnn2d``'s; ``sta3d``'s attention encoder
from the first stages as far as they go). A layer whose shapes differ is left at its
start and named in one warning; the frame model's other layers (its second convolutions,
its head) are not used.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from avstan.models.frame import LUMA_WEIGHTS, FrameCNN


def inflate_conv_weight(weight: Tensor, time_kernel: int) -> Tensor:
    """A 2D kernel (O, I, kH, kW) as a 3D one (O, I, k_t, kH, kW): repeated over time and
    divided by ``time_kernel``."""
    return weight.unsqueeze(2).repeat(1, 1, time_kernel, 1, 1) / time_kernel


def fold_batch_norm(weight: Tensor, bias: Tensor | None, norm: nn.BatchNorm2d
                    ) -> tuple[Tensor, Tensor]:
    """(weight, bias) of a convolution followed by ``norm`` in evaluation mode, as one
    convolution: norm(conv(x)) = conv'(x)."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    shifted = (bias if bias is not None else torch.zeros_like(norm.running_mean))
    folded_bias = (shifted - norm.running_mean) * scale + norm.bias
    return weight * scale.view(-1, *([1] * (weight.dim() - 1))), folded_bias


def grey_to_rgb(weight: Tensor) -> Tensor:
    """A kernel reading one grey channel (O, 1, ...) as one reading RGB (O, 3, ...): the
    grey weight times each channel's luma weight."""
    luma = weight.new_tensor(LUMA_WEIGHTS).view(1, 3, *([1] * (weight.dim() - 2)))
    return weight * luma


def stage_kernels(frame: FrameCNN) -> list[tuple[Tensor, Tensor]]:
    """(weight, bias) of the first convolution of each of frame2d's stages, its batch norm
    folded in, and the first one read as RGB when the model is grey."""
    layers = list(frame.body)
    kernels = []
    for index, layer in enumerate(layers):
        starts_stage = index == 0 or isinstance(layers[index - 1], nn.MaxPool2d)
        if isinstance(layer, nn.Conv2d) and starts_stage:
            weight, bias = fold_batch_norm(layer.weight.detach(), None, layers[index + 1])
            if not kernels and frame.grey:
                weight = grey_to_rgb(weight)
            kernels.append((weight.contiguous(), bias.detach()))
    return kernels


def targets_of(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """The convolutions of a clip model that a frame model's stages can start, in stage
    order: (name, layer, kind) with kind "3d", "2d" or "stacked" (cnn2d's first layer)."""
    found = []
    trunk = getattr(model, "trunk", None)
    if trunk is not None:  # cnn3d, static3d, sta3d: the recognition 3D-CNN
        convolutions = [("trunk.stem.0", trunk.stem[0])] + [
            (f"trunk.body.{i}", layer) for i, layer in enumerate(trunk.body)
            if isinstance(layer, nn.Conv3d)]
        found += [(name, layer, "3d") for name, layer in convolutions]
        encoder = getattr(getattr(model, "attention_branch", None), "encoder", None)
        if encoder is not None:  # sta3d: the attention branch's per-frame encoder
            found += [(f"attention_branch.encoder.layers.{i}", layer, "2d")
                      for i, layer in enumerate(encoder.layers) if isinstance(layer, nn.Conv2d)]
    elif hasattr(model, "body") and not isinstance(model, FrameCNN):  # cnn2d
        convolutions = [(f"body.{i}", layer) for i, layer in enumerate(model.body)
                        if isinstance(layer, nn.Conv2d)]
        found += [(name, layer, "stacked" if not number else "2d")
                  for number, (name, layer) in enumerate(convolutions)]
    return found


def init_from_frame_model(model: nn.Module, frame: FrameCNN, source: str = ""
                          ) -> dict[str, list[str]]:
    """Start ``model``'s convolutions from ``frame``'s (see the module docstring), in place.
    Returns {"started": [layer names], "left": [layer names whose shapes differ]}; the
    left ones are named in one warning."""
    kernels = stage_kernels(frame)
    started, left = [], []
    # the trunk and the attention encoder each start from the frame model's first stages
    groups: dict[str, list[tuple[str, nn.Module, str]]] = {}
    for name, layer, kind in targets_of(model):
        groups.setdefault(name.rsplit(".", 2)[0] if "encoder" in name else "main",
                          []).append((name, layer, kind))
    with torch.no_grad():
        for members in groups.values():
            for stage, (name, layer, kind) in enumerate(members):
                if stage >= len(kernels):
                    left.append(name)
                    continue
                weight, bias = kernels[stage]
                if kind == "3d":
                    weight = inflate_conv_weight(weight, layer.weight.shape[2])
                elif kind == "stacked":  # (O, 3, k, k) → (O, 3·T, k, k), channel c·T + t
                    frames = layer.weight.shape[1] // max(1, weight.shape[1])
                    weight = (weight / frames).repeat_interleave(frames, dim=1)
                if layer.weight.shape != weight.shape or layer.bias is None:
                    left.append(name)
                    continue
                layer.weight.copy_(weight)
                layer.bias.copy_(bias)
                started.append(name)
    if left:
        warnings.warn(f"{source or 'the frame model'}: these layers differ in shape from its "
                      f"stages and keep their start: {', '.join(left)}", stacklevel=2)
    return {"started": started, "left": left}


__all__ = ["fold_batch_norm", "grey_to_rgb", "inflate_conv_weight", "init_from_frame_model"]
