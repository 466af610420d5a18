"""The shared typed-config converter: unions, nested dataclasses, numbers, one error per
mistake naming the source and the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from avstan.errors import AvstanError
from avstan.typed_config import convert_fields, convert_value, dataclass_from_dict


@dataclass
class Inner:
    size: int = 1
    rate: float = 0.5


@dataclass
class Outer:
    name: str = "outer"
    flag: bool = False
    inner: Inner = field(default_factory=Inner)
    maybe: Inner | None = None
    limit: float | int | None = None
    tags: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    anything: Any = None


def test_defaults_fill_what_the_dict_leaves_out():
    assert dataclass_from_dict(Outer, {}, "f.yaml") == Outer()
    built = dataclass_from_dict(Outer, {"name": "x", "inner": {"rate": 2}}, "f.yaml")
    assert built.name == "x" and built.inner == Inner(size=1, rate=2.0)
    assert type(built.inner.rate) is float


def test_nested_dataclasses_are_built_and_named_with_their_path():
    built = dataclass_from_dict(Outer, {"maybe": {"size": 3}}, "f.yaml")
    assert built.maybe == Inner(size=3)
    assert dataclass_from_dict(Outer, {"maybe": None}, "f.yaml").maybe is None
    with pytest.raises(AvstanError, match=r"^f\.yaml: unknown key inner\.sise; known keys "
                                          r"here: inner\.size, inner\.rate$"):
        dataclass_from_dict(Outer, {"inner": {"sise": 3}}, "f.yaml")
    with pytest.raises(AvstanError, match=r"^f\.yaml: inner must be a mapping$"):
        dataclass_from_dict(Outer, {"inner": 3}, "f.yaml")
    with pytest.raises(AvstanError, match=r"^f\.yaml: maybe\.size must be int, got 'big'$"):
        dataclass_from_dict(Outer, {"maybe": {"size": "big"}}, "f.yaml")


def test_unknown_key_names_the_source_the_key_and_the_known_keys():
    with pytest.raises(AvstanError) as info:
        dataclass_from_dict(Inner, {"size": 2, "zzz": 1, "aaa": 1}, "run.yaml", "data.")
    assert str(info.value) == ("run.yaml: unknown key data.aaa; known keys here: data.size, "
                               "data.rate")
    with pytest.raises(AvstanError, match=r"^run\.yaml: config must be a mapping$"):
        dataclass_from_dict(Inner, ["size"], "run.yaml")


def test_unions_take_none_then_the_first_option_that_fits():
    assert convert_value(float | int | None, None, "w", "k") is None
    # a number tries the option of its own kind first: 1 stays an int, 1.0 a float
    one = convert_value(float | int | None, 1, "w", "k")
    assert one == 1 and type(one) is int
    one = convert_value(int | float | None, 1.0, "w", "k")
    assert one == 1.0 and type(one) is float
    assert type(convert_value(float | None, 1, "w", "k")) is float  # else converted
    assert convert_value(int | str, "many", "w", "k") == "many"
    assert convert_value(int | str, 3, "w", "k") == 3
    with pytest.raises(AvstanError, match=r"^w: k must be int, got \[1\]$"):  # the first error
        convert_value(int | str, [1], "w", "k")
    with pytest.raises(AvstanError, match="must be float"):
        convert_value(float | None, "lots", "w", "k")


def test_float_from_a_string_such_as_yamls_1e_4():
    value = convert_value(float, "1e-4", "w", "k")
    assert value == 1e-4 and type(value) is float
    assert dataclass_from_dict(Inner, {"rate": "3e-2"}, "w").rate == pytest.approx(0.03)
    with pytest.raises(AvstanError, match=r"^w: k must be float, got 'lots'$"):
        convert_value(float, "lots", "w", "k")
    with pytest.raises(AvstanError, match="must be int"):  # only floats parse strings
        convert_value(int, "3", "w", "k")


@pytest.mark.parametrize("hint", [int, float])
@pytest.mark.parametrize("value", [True, False, np.bool_(True)])
def test_a_bool_is_not_a_number(hint, value):
    with pytest.raises(AvstanError, match=f"k must be {hint.__name__}"):
        convert_value(hint, value, "w", "k")


@pytest.mark.parametrize("value", [0, 1, "yes", 1.0, None])
def test_only_true_and_false_are_bools(value):
    with pytest.raises(AvstanError, match="k must be bool"):
        convert_value(bool, value, "w", "k")


def test_numpy_scalars_become_python_values():
    for hint, value, expected in [(bool, np.bool_(True), True), (int, np.int64(7), 7),
                                  (int, np.uint8(7), 7), (float, np.float32(0.5), 0.5),
                                  (float, np.int32(2), 2.0), (int, np.float64(4.0), 4)]:
        got = convert_value(hint, value, "w", "k")
        assert got == expected and type(got) is hint, (hint, value)


def test_integral_floats_are_ints_and_others_are_refused():
    got = convert_value(int, 2.0, "w", "k")
    assert got == 2 and type(got) is int
    for value in (2.5, float("inf"), float("nan"), np.float32(0.5)):
        with pytest.raises(AvstanError, match="k must be int"):
            convert_value(int, value, "w", "k")
    got = convert_value(float, 3, "w", "k")
    assert got == 3.0 and type(got) is float


def test_lists_dicts_any_and_other_classes():
    assert dataclass_from_dict(Outer, {"tags": ["a", "b"]}, "w").tags == ["a", "b"]
    with pytest.raises(AvstanError, match=r"^w: tags must be a list, got 'a'$"):
        dataclass_from_dict(Outer, {"tags": "a"}, "w")
    with pytest.raises(AvstanError, match=r"^w: tags must be str, got 3$"):
        dataclass_from_dict(Outer, {"tags": ["a", 3]}, "w")
    options = {"depth": 2}
    built = dataclass_from_dict(Outer, {"options": options, "anything": [1, "x"]}, "w")
    assert built.options == options and built.options is not options
    assert built.anything == [1, "x"]
    with pytest.raises(AvstanError, match=r"^w: options must be a mapping, got \[1\]$"):
        dataclass_from_dict(Outer, {"options": [1]}, "w")
    with pytest.raises(AvstanError, match=r"^w: name must be str, got 3$"):
        dataclass_from_dict(Outer, {"name": 3}, "w")


def test_convert_fields_gives_only_the_fields_present_and_skips_extra_keys():
    values = convert_fields(Inner, {"preset": "hard", "rate": 1}, "w", extra_keys=("preset",))
    assert values == {"rate": 1.0} and type(values["rate"]) is float
    with pytest.raises(AvstanError, match=r"^w: unknown key rat; known keys here: preset, "
                                          r"size, rate$"):
        convert_fields(Inner, {"rat": 1}, "w", extra_keys=("preset",))
    with pytest.raises(AvstanError, match="unknown key preset"):
        convert_fields(Inner, {"preset": "hard"}, "w")


def test_every_number_must_be_finite():
    for value in (float("nan"), float("inf"), -float("inf"), "nan", "inf"):
        with pytest.raises(AvstanError, match=r"^w: k must be a finite number, got "):
            convert_value(float, value, "w", "k")
        with pytest.raises(AvstanError, match=r"^w: k must be"):
            convert_value(int | None, value, "w", "k")


def test_declared_ranges_and_choices_are_checked_with_the_type():
    from typing import Annotated

    from avstan.typed_config import OneOf, Range

    rate = Annotated[float, Range(gt=0)]
    assert convert_value(rate, "3e-4", "w", "training.lr") == pytest.approx(3e-4)
    with pytest.raises(AvstanError, match=r"^w: training.lr -1.0: use a number > 0$"):
        convert_value(rate, -1, "w", "training.lr")
    count = Annotated[int | None, Range(ge=1, le=8)]
    assert convert_value(count, None, "w", "k") is None and convert_value(count, 8, "w", "k") == 8
    with pytest.raises(AvstanError, match=r"^w: k 0: use an integer from 1 to 8$"):
        convert_value(count, 0, "w", "k")
    decay = Annotated[float, Range(ge=0, lt=1)]
    with pytest.raises(AvstanError, match=r"^w: k 1.0: use a number in \[0, 1\)$"):
        convert_value(decay, 1, "w", "k")
    choice = Annotated[str, OneOf("mse", "ccc")]
    assert convert_value(choice, "ccc", "w", "k") == "ccc"
    with pytest.raises(AvstanError, match=r"^w: k 'mae': use mse or ccc$"):
        convert_value(choice, "mae", "w", "k")

    def even(value):
        return "" if value % 2 == 0 else "an even number"

    with pytest.raises(AvstanError, match=r"^w: k 3: use an even number$"):
        convert_value(Annotated[int, even], 3, "w", "k")
    assert convert_value(Annotated[int, even], 4, "w", "k") == 4
