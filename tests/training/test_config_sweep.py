"""Every key of the experiment config, swept with hostile values (issue 32 §3).

Each key is set, as ``--set key=value`` would set it, to NaN, ±inf, −1, 0, a huge number
and a string. The config either refuses it with one line that names the key, or takes it;
what it takes must be usable: a number that is finite and inside what the field declares.
The expected outcomes are not listed per key: they follow from the declarations, so a new
key is swept as soon as it is declared.
"""

import dataclasses
import math
import typing

import pytest

from avstan.errors import AvstanError
from avstan.training.config import ExperimentConfig, apply_overrides, config_from_dict

HOSTILE = (".nan", ".inf", "-.inf", "-1", "0", "1e30", "abc")


def dotted_keys(cls: type, prefix: str = "") -> list[tuple[str, typing.Any]]:
    """(key, type hint) of every leaf field, recursing into nested dataclass sections."""
    keys = []
    hints = typing.get_type_hints(cls, include_extras=True)
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        bare = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
        options = [o for o in typing.get_args(bare) if o is not type(None)] or [bare]
        nested = [o for o in options if dataclasses.is_dataclass(o)]
        if nested:
            keys += dotted_keys(nested[0], f"{prefix}{field.name}.")
        else:
            keys.append((prefix + field.name, hint))
    return keys


KEYS = dotted_keys(ExperimentConfig)


def test_the_sweep_covers_the_sections_and_their_nested_ones():
    names = {key for key, _ in KEYS}
    assert {"training.lr", "training.seed", "data.clip_length", "data.augment.shift",
            "training.limit_train_batches", "model.options"} <= names
    assert len(names) > 40


def value_of(config: ExperimentConfig, key: str):
    node = config
    for part in key.split("."):
        node = getattr(node, part)
    return node


def declared_rules(hint) -> list:
    if typing.get_origin(hint) is typing.Annotated:
        return list(typing.get_args(hint)[1:])
    return []


@pytest.mark.parametrize("key", [key for key, _ in KEYS])
def test_every_key_refuses_a_hostile_value_in_one_line_naming_it_or_takes_a_usable_one(key):
    hint = dict(KEYS)[key]
    for text in HOSTILE:
        raw = apply_overrides({"data": {"store": "s"}}, [f"{key}={text}"])
        try:
            config = config_from_dict(raw, "run.yaml")
        except AvstanError as error:
            message = str(error)
            assert "\n" not in message and message.startswith("run.yaml: "), message
            assert key in message, (key, text, message)
            continue
        taken = value_of(config, key)
        if isinstance(taken, float):
            assert math.isfinite(taken), (key, text)
        for rule in declared_rules(hint):
            if taken is None:
                continue
            allows = getattr(rule, "allows", None)
            if allows is not None:
                assert allows(taken), (key, text, taken)
            choices = getattr(rule, "choices", None)
            if choices is not None:
                assert taken in choices, (key, text, taken)
            if callable(rule):
                assert not rule(taken), (key, text, taken)


@pytest.mark.parametrize(("override", "words"), [
    ("training.weight_decay=-1", "training.weight_decay -1.0: use a number >= 0"),
    ("training.weight_decay=.nan", "training.weight_decay must be a finite number"),
    ("training.threads=-2", "training.threads -2: use an integer from 1 to 1024"),
    ("training.gradient_clip=.nan", "training.gradient_clip must be a finite number"),
    ("training.limit_train_batches=0", "training.limit_train_batches 0: use a number of "
                                       "batches >= 1 or a fraction in (0, 1]"),
    ("training.seed=-1", "training.seed -1: use an integer from 0 to 4294967295"),
    ("data.clip_length=0", "data.clip_length 0: use an integer from 1 to 100000"),
    ("training.lr=.inf", "training.lr must be a finite number"),
    ("training.precision=foo", "training.precision 'foo': use 32-true or bf16-mixed or "
                               "16-mixed"),
    ("data.targets=[valence, dominance]", "data.targets 'dominance': use valence or arousal"),
])
def test_the_issues_cases_are_one_line_naming_the_key(override, words):
    with pytest.raises(AvstanError) as info:
        config_from_dict(apply_overrides({}, [override]), "run.yaml")
    assert words in str(info.value) and "\n" not in str(info.value)


def test_limit_train_batches_keeps_an_integer_a_count_and_a_fraction_a_fraction():
    def limit(text):
        raw = apply_overrides({}, [f"training.limit_train_batches={text}"])
        return config_from_dict(raw).training.limit_train_batches

    assert limit("2") == 2 and type(limit("2")) is int
    assert limit("0.5") == 0.5 and type(limit("1.0")) is float
    with pytest.raises(AvstanError, match="a fraction in"):
        limit("2.5")


def test_a_section_built_in_code_is_held_to_the_same_declarations():
    from avstan.data.clips import AugmentConfig
    from avstan.training.config import DataSection, TrainingSection

    with pytest.raises(AvstanError, match=r"^training config: training.lr -1.0: use a number > 0$"):
        TrainingSection(lr=-1)
    with pytest.raises(AvstanError, match=r"^data config: data.clip_length 0: use an integer"):
        DataSection(clip_length=0)
    with pytest.raises(AvstanError, match=r"data.augment.flip 2.0: use a number in \[0, 1\]"):
        AugmentConfig(flip=2)
    assert TrainingSection(lr=3e-4, seed=7).seed == 7
