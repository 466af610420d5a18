"""Model registry in timm's manner: ``@register_model`` on a factory, ``create_model(name)``.

A factory takes explicit keyword arguments with defaults, annotated with their allowed
values (``models/options.py``); ``create_model`` checks the config keys against the
factory's signature and each value against its declaration, and the model's size (built
on the meta device first) against :data:`MAX_PARAMETERS`, so a typo in a config file is
one clear error instead of a TypeError deep inside a constructor or an exhausted memory.
Every registered model is covered by the registry sweep in ``tests/models/test_registry.py``
the moment it is registered.

This module imports no model file: ``avstan.models``' ``__init__`` imports the model
modules, whose decorators fill the registry (timm's ``_registry.py`` works the same way),
so importing any part of ``avstan.models`` registers every model and nothing is a cycle.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from avstan.errors import AvstanError
from avstan.typed_config import convert_arguments

# The most parameters a model may have: 100 times the largest one avstan ships or the
# papers describe (~2.4 M), so a typo in a width (``fc_hidden: 100000``) is one line
# instead of the machine's memory.
MAX_PARAMETERS = 250_000_000

_FACTORIES: dict[str, Callable[..., nn.Module]] = {}


def register_model(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``factory`` under its function name."""
    name = factory.__name__
    if name in _FACTORIES:
        raise ValueError(f"model {name!r} registered twice")
    _FACTORIES[name] = factory
    return factory


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_FACTORIES)


def model_arguments(name: str) -> dict[str, Any]:
    """The keyword arguments a model accepts, with their defaults."""
    factory = _factory(name)
    return {p.name: p.default for p in inspect.signature(factory).parameters.values()}


def create_model(name: str, **config: Any) -> nn.Module:
    """Build a registered model by name; unknown names or config keys raise AvstanError."""
    factory = _factory(name)
    allowed = set(inspect.signature(factory).parameters)
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise AvstanError(f"model {name!r} has no option {', '.join(map(repr, unknown))}; "
                          f"its options are: {', '.join(sorted(allowed))}")
    # each option against the factory's declaration (models/options.py)
    config = convert_arguments(factory, config, f"model {name!r}", "model.options.")
    try:
        with torch.device("meta"):  # its size first, without allocating a weight
            parameters = sum(p.numel() for p in factory(**config).parameters())
        if parameters > MAX_PARAMETERS:
            raise AvstanError(
                f"model {name!r}: these options make {parameters:,} parameters, more than "
                f"{MAX_PARAMETERS:,} ({MAX_PARAMETERS * 4 / 1e9:.1f} GB of weights); make "
                "it smaller (model.options: fewer channels, hidden units or stages)")
        model = factory(**config)
    except ValueError as exc:  # options that do not fit together, e.g. an odd crop size
        raise AvstanError(f"model {name!r}: {exc}; change its options "
                          "(model.options in the config, or --set)") from None
    convolutions_channels_last(model)
    model.model_name = name
    model.model_config = dict(config)
    return model


def convolutions_channels_last(model: nn.Module) -> nn.Module:
    """Store every 2D and 3D convolution's weight channels-last, in place.

    A convolution whose weight is channels-last gives a channels-last output, so the whole
    video path runs in that layout, which oneDNN runs faster on a CPU: on 2 cores it trains
    ``cnn3d`` about 1.5× and ``sta3d`` 1.05–1.17× as fast, forward passes 1.2–1.6×
    (docs/benchmarks.md, "channels-last convolutions"; cuDNN supports the layout too, not
    measured here). Only the layout changes: the values, the
    parameter names and the state dict are those of the contiguous model (tested equal to
    within float rounding), and a state dict loads into either.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv3d):
            module.to(memory_format=torch.channels_last_3d)
        elif isinstance(module, nn.Conv2d):
            module.to(memory_format=torch.channels_last)
    return model


def _factory(name: str) -> Callable[..., nn.Module]:
    if name not in _FACTORIES:
        raise AvstanError(f"unknown model {name!r}; available: {', '.join(sorted(_FACTORIES))}")
    return _FACTORIES[name]

