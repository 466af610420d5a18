"""The allowed values of the registered models' options, declared once.

Each factory annotates its keyword arguments with these (``crop_size: CropSize = 96``);
``registry.create_model`` converts every option it is given through the factory's own
annotations (``typed_config.convert_arguments``), so ``model.options`` in a config, a
``--set`` and the options stored in a model file are all checked the same way as the
rest of the config: one line naming the key and what to use, never a traceback. The
bounds are generous (no shipped or paper model comes near them); what keeps a model's
size within memory is ``registry.MAX_PARAMETERS``, checked on the whole model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from avstan.typed_config import OneOf, Range

MAX_STAGES = 16


def _stages(widths: Sequence[int]) -> str:
    """A rule for a list of layer widths: one stage at least, at most MAX_STAGES."""
    return "" if 1 <= len(widths) <= MAX_STAGES else f"a list of 1 to {MAX_STAGES} widths"


CropSize = Annotated[int, Range(ge=8, le=1024)]  # pixels of the square face crop
ClipLength = Annotated[int, Range(ge=1, le=100_000)]  # steps per clip
Width = Annotated[int, Range(ge=1, le=4096)]  # channels or hidden units of one layer
Widths = Annotated[Sequence[Width], _stages]  # one per stage
Depth = Annotated[int, Range(ge=1, le=64)]  # layers, convolutions per stage
PooledSize = Annotated[int, Range(ge=1, le=32)]  # side of the pooled feature map
Dropout = Annotated[float, Range(ge=0, lt=1)]
Temperature = Annotated[float, Range(ge=1e-3, le=1e3)]  # of an attention's softmax
FeatureCount = Annotated[int, Range(ge=1, le=100_000)]  # inputs per step
Count = Annotated[int, Range(ge=0, le=100_000)]  # 0 = off (classes, descriptors, steps)
NoiseLevel = Annotated[float, Range(ge=0, le=100)]  # in standard deviations
FeatureBound = Annotated[float, Range(gt=0, le=1e6)]  # |value| a feature is clipped to
Combine = Annotated[str, OneOf("product", "residual")]  # attention.apply_attention's rules
FusedVideoModel = Annotated[str, OneOf("sta3d", "cnn3d")]  # a 3D-CNN trunk to fuse with
