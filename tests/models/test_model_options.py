"""Every option of every registered model, swept with hostile values (issue 32 §3).

``model.options`` reach the factories through ``create_model``, which converts each one
against the factory's own annotation (``models/options.py``) and checks the model's size
on the meta device. Each option is set to NaN, ±inf, −1, 0, a huge number, a million and
a string: the model is refused with one line that names the option (or its size), or it
is built with a value inside what the option declares. The outcomes are not listed per
option: they follow from the declarations, so a new option is swept as it is added.
"""

import inspect
import math
import typing

import pytest
import torch

from avstan.errors import AvstanError
from avstan.models import registry
from avstan.models.model_file import TrainedModel
from avstan.models.registry import create_model, list_models, model_arguments
from tests.models.test_registry import TINY

HOSTILE = (float("nan"), float("inf"), float("-inf"), -1, 0, 1e30, 10**6, "abc")
OPTIONS = [(name, option) for name in list_models()
           for option in model_arguments(name) if option != "targets"]


def hints(name: str) -> dict[str, typing.Any]:
    return typing.get_type_hints(registry._factory(name), include_extras=True)


def tiny_options(name: str) -> dict:
    return {k: v for k, v in TINY.items() if k in model_arguments(name)}


@pytest.mark.parametrize(("name", "option"), OPTIONS)
def test_every_option_refuses_a_hostile_value_in_one_line_or_takes_a_declared_one(name,
                                                                                  option):
    hint = hints(name)[option]
    for value in HOSTILE:
        options = tiny_options(name) | {option: value}
        try:
            model = create_model(name, **options)
        except AvstanError as error:
            message = str(error)
            assert "\n" not in message and message.startswith(f"model {name!r}"), message
            assert f"model.options.{option}" in message or "parameters" in message \
                or option in message, (option, value, message)
            continue
        taken = model.model_config[option]
        if isinstance(taken, float):
            assert math.isfinite(taken), (option, value)
        for rule in (typing.get_args(hint)[1:] if typing.get_origin(hint) is typing.Annotated
                     else ()):
            if hasattr(rule, "allows"):
                assert rule.allows(taken), (option, value, taken)
            if hasattr(rule, "choices"):
                assert taken in rule.choices, (option, value, taken)


@pytest.mark.parametrize("name", list_models())
def test_every_number_option_declares_its_allowed_values(name):
    """A new int or float option without a declaration would take 1e30 or -1 unchecked."""
    for option, hint in hints(name).items():
        if option == "return":
            continue
        bare = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
        items = typing.get_args(bare) if typing.get_origin(bare) is not None else (bare,)
        if bare is bool or not {int, float} & set(items):
            continue
        assert typing.get_origin(hint) is typing.Annotated, f"{name}.{option}: {hint}"


def test_a_model_over_the_size_limit_is_refused_before_any_weight_is_allocated(monkeypatch):
    options = tiny_options("cnn3d")
    size = sum(p.numel() for p in create_model("cnn3d", **options).parameters())
    monkeypatch.setattr(registry, "MAX_PARAMETERS", size)
    assert sum(p.numel() for p in create_model("cnn3d", **options).parameters()) == size
    monkeypatch.setattr(registry, "MAX_PARAMETERS", size - 1)
    with pytest.raises(AvstanError, match=rf"^model 'cnn3d': these options make {size:,} "
                                          "parameters, more than"):
        create_model("cnn3d", **options)
    monkeypatch.undo()
    # at the real limit: widths within their declarations, but 18 billion weights together
    with pytest.raises(AvstanError, match="parameters, more than 250,000,000"):
        create_model("sta3d", trunk_channels=[4096] * 4, fc_hidden=4096, pooled_size=32)


def test_a_model_file_whose_stored_options_were_edited_is_one_line(tmp_path):
    torch.manual_seed(0)
    path = TrainedModel(create_model("cnn2d", **tiny_options("cnn2d")), ("valence", "arousal"),
                        4.0).save(tmp_path / "model.pt")
    payload = torch.load(path, weights_only=True)
    payload["model_options"]["fc_hidden"] = 10**9
    torch.save(payload, tmp_path / "edited.pt")
    with pytest.raises(AvstanError) as info:
        TrainedModel.load(tmp_path / "edited.pt")
    message = str(info.value)
    assert "\n" not in message and "model.options.fc_hidden 1000000000" in message
    assert "damaged or from another avstan version" in message


def test_options_given_as_tuples_in_code_keep_working():
    model = create_model("cnn2d", **tiny_options("cnn2d") | {"channels": (4, 8)})
    assert model.model_config["channels"] == (4, 8)
    assert inspect.signature(registry._factory("cnn2d")).parameters["channels"].default \
        == (32, 64, 128, 256)
