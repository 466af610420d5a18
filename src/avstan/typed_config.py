"""Typed configs: dataclasses built from plain dicts (YAML sections), every key and type checked.

:func:`dataclass_from_dict` builds a dataclass from a mapping, :func:`convert_fields`
checks and converts the fields a mapping gives (for callers that merge them over their
own defaults), and :func:`convert_value` checks and converts one value against a type
hint. Every mistake is one AvstanError, one line, naming ``where`` (a file, or e.g.
"synthetic config") and the dotted key (``training.lr``); an unknown key lists the known
ones. The experiment configs (:mod:`avstan.training.config`) and the synthetic corpus
config (:class:`avstan.data.synthetic.SyntheticConfig`) both read theirs through here.

What each hint accepts (the union of what those two accepted when each had its own
converter):

* ``bool``: True / False, also numpy bools (``np.bool_``); nothing else (not 0 / 1);
* ``int``: ints and numpy integers, and floats (also numpy floats) with an integral,
  finite value (``2.0`` becomes 2); never a bool;
* ``float``: ints, floats, numpy integers and floats (all become a Python float), and
  strings that parse as a float (YAML reads ``1e-4``, without a dot, as a string); never
  a bool;
* ``str``: strings;
* ``float`` and ``int`` values must be finite;
* ``X | Y`` and ``X | None``: None where None is an option, else the options in order,
  the first that accepts the value wins, except that a number tries the option of its own
  kind first (``1`` for ``float | int`` stays ``1``, ``1.0`` stays ``1.0``; ``1`` for
  ``float | None`` becomes ``1.0``); when none does, the first option's error is raised;
* ``list[X]``: a list, each item converted to X; ``Sequence[X]``: a list or a tuple (kept
  as it is), each item converted to X; ``dict[...]``: a dict, copied, its items not
  checked; ``Any``: anything, as is;
* a dataclass: a mapping, built recursively (its keys named ``field.key``);
* any other class: an instance of it, as is.

Every number must be finite (NaN and ±inf are refused for every key). What else a field
allows is declared with its type, ``Annotated[hint, Range(...)]`` for a number's range or
``Annotated[str, OneOf(...)]`` for a choice, and checked by the same converter, so every
key of every config is checked the same way (the field's ``__post_init__`` keeps only the
checks that span several fields).

Only the standard library (numpy scalars are recognised without importing numpy).

"""

from __future__ import annotations

import collections.abc
import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

from avstan.errors import AvstanError

__all__ = ["OneOf", "Range", "check_declared", "convert_arguments", "convert_fields",
           "convert_value", "dataclass_from_dict"]


@dataclasses.dataclass(frozen=True)
class Range:
    """The allowed values of a number field, declared with its type:
    ``lr: Annotated[float, Range(gt=0)] = 1e-4``. Bounds left None are open."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def allows(self, value: float) -> bool:
        return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le)
                and (self.lt is None or value < self.lt))

    def describe(self, integer: bool) -> str:
        """E.g. "a number > 0", "an integer from 1 to 65536", "a number in [0, 1)"."""
        def number(bound: float) -> str:
            return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"

        low = (self.ge, "[") if self.ge is not None else (self.gt, "(")
        high = (self.le, "]") if self.le is not None else (self.lt, ")")
        kind = "an integer" if integer else "a number"
        if low[0] is not None and high[0] is not None:
            if integer and low[1] == "[" and high[1] == "]":
                return f"{kind} from {number(low[0])} to {number(high[0])}"
            return f"{kind} in {low[1]}{number(low[0])}, {number(high[0])}{high[1]}"
        if low[0] is not None:
            return f"{kind} {'>=' if low[1] == '[' else '>'} {number(low[0])}"
        if high[0] is not None:
            return f"{kind} {'<=' if high[1] == ']' else '<'} {number(high[0])}"
        return kind


@dataclasses.dataclass(frozen=True)
class OneOf:
    """The allowed values of a string field: ``loss: Annotated[str, OneOf("mse", "ccc")]``."""

    choices: tuple[str, ...]

    def __init__(self, *choices: str) -> None:
        object.__setattr__(self, "choices", tuple(choices))


def dataclass_from_dict(cls: type, raw: Any, where: str, prefix: str = "") -> Any:
    """An instance of dataclass ``cls`` from the mapping ``raw``, every key and type checked.

    Fields missing from ``raw`` take the dataclass defaults. ``where`` names the source in
    error messages (a file path, or e.g. "synthetic config"); ``prefix`` is prepended to
    every key in them (``"training."`` for a nested section).
    """
    values = convert_fields(cls, raw, where, prefix)
    missing = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in values
               and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise AvstanError(f"{where}: missing key {prefix}{missing[0]}")
    return cls(**values)


def convert_fields(cls: type, raw: Any, where: str, prefix: str = "",
                   extra_keys: Iterable[str] = ()) -> dict[str, Any]:
    """The fields of dataclass ``cls`` that the mapping ``raw`` gives, each converted by
    :func:`convert_value`; fields that ``raw`` leaves out are left out here too.

    ``extra_keys``: keys that the caller reads from ``raw`` itself (e.g. ``preset``). They
    are not unknown keys: they are skipped here, and listed first among the known keys
    when an unknown key is reported.
    """
    if not isinstance(raw, dict):
        raise AvstanError(f"{where}: {prefix.rstrip('.') or 'config'} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    known = [*extra_keys, *fields]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise AvstanError(f"{where}: unknown key {prefix}{unknown[0]}; known keys here: "
                          f"{', '.join(prefix + k for k in known)}")
    hints = typing.get_type_hints(cls, include_extras=True)
    values = {}
    for name, value in raw.items():
        if name in fields:
            values[name] = convert_value(hints[name], value, where, prefix + name)
    return values


def convert_arguments(function: Callable, raw: dict[str, Any], where: str,
                      prefix: str = "") -> dict[str, Any]:
    """The keyword arguments ``raw`` for ``function``, each converted by
    :func:`convert_value` against the function's own annotation (its parameters declare
    their allowed values as a dataclass field does: ``dropout: Annotated[float,
    Range(ge=0, lt=1)] = 0.5``); a parameter without an annotation is passed as is, and
    names the function does not take are left to its caller."""
    hints = typing.get_type_hints(function, include_extras=True)
    return {name: convert_value(hints[name], value, where, prefix + name)
            if name in hints else value for name, value in raw.items()}


def check_declared(instance: Any, where: str, prefix: str = "") -> None:
    """Check the fields of a dataclass instance that declare their allowed values
    (``Annotated``) against them: for a ``__post_init__``, so a config built in code is
    held to the same declarations as one read from a file."""
    hints = typing.get_type_hints(type(instance), include_extras=True)
    for field in dataclasses.fields(instance):
        hint = hints[field.name]
        if typing.get_origin(hint) is typing.Annotated:
            convert_value(hint, getattr(instance, field.name), where, prefix + field.name)


def convert_value(hint: Any, value: Any, where: str, key: str) -> Any:
    """``value`` checked against the type ``hint`` and converted (see the module docstring
    for what each hint accepts); an AvstanError naming ``where`` and ``key`` if it does not
    fit."""
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        base, *declared = typing.get_args(hint)
        value = convert_value(base, value, where, key)
        for rule in declared:
            _check(rule, base, value, where, key)
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        # an option of the value's own type first (2.0 for ``int | float`` stays a float)
        exact = [o for o in options if o in (int, float) and _is_integer(value) == (o is int)
                 and _is_real(value)]
        for option in exact + [o for o in options if o not in exact]:
            if option is type(None):
                continue
            try:
                return convert_value(option, value, where, key)
            except AvstanError as exc:
                errors.append(str(exc))
        raise AvstanError(errors[0] if errors else f"{where}: bad value for {key}")
    if dataclasses.is_dataclass(hint):
        return dataclass_from_dict(hint, value, where, key + ".")
    if hint is Any:
        return value
    if origin is list:
        if not isinstance(value, list):
            raise AvstanError(f"{where}: {key} must be a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return [convert_value(item, v, where, key) for v in value]
    if origin is collections.abc.Sequence:
        if not isinstance(value, list | tuple):
            raise AvstanError(f"{where}: {key} must be a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return type(value)(convert_value(item, v, where, key) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise AvstanError(f"{where}: {key} must be a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if isinstance(value, bool) or _numpy_kind(value) == "b":
            return bool(value)
    elif hint is int:
        if _is_integer(value):
            return int(value)
        if _is_real(value) and math.isfinite(value) and float(value).is_integer():
            return int(value)
    elif hint is float:
        number = None
        if _is_real(value):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)  # YAML reads 1e-4 (no dot) as a string
            except ValueError:
                pass
        if number is not None:
            if not math.isfinite(number):
                raise AvstanError(f"{where}: {key} must be a finite number, got {value!r}")
            return number
    elif isinstance(value, hint):
        return value
    raise AvstanError(f"{where}: {key} must be {getattr(hint, '__name__', hint)}, got {value!r}")


def _numpy_kind(value: Any) -> str:
    """The dtype kind of a numpy scalar (``b`` bool, ``i`` / ``u`` integer, ``f`` float, …),
    or "" for anything else; found without importing numpy."""
    if any(c.__name__ == "generic" and c.__module__ == "numpy" for c in type(value).__mro__):
        return value.dtype.kind
    return ""


def _is_integer(value: Any) -> bool:
    """An int or a numpy integer, not a bool."""
    if isinstance(value, int):
        return not isinstance(value, bool)
    return _numpy_kind(value) in ("i", "u")


def _is_real(value: Any) -> bool:
    """An int, a float, a numpy integer or a numpy float, not a bool."""
    return _is_integer(value) or isinstance(value, float) or _numpy_kind(value) == "f"


def _check(rule: Any, base: Any, value: Any, where: str, key: str) -> None:
    """One declared rule on a converted value: a :class:`Range`, a :class:`OneOf`, or a
    function of the value returning what to use instead (or "" when the value is fine).
    None (an optional field left out) passes."""
    if value is None:
        return
    if isinstance(rule, Range) and not rule.allows(value):
        integer = base is int or int in typing.get_args(base) and float not in typing.get_args(base)
        raise AvstanError(f"{where}: {key} {value!r}: use {rule.describe(integer)}")
    if isinstance(rule, OneOf) and value not in rule.choices:
        raise AvstanError(f"{where}: {key} {value!r}: use {' or '.join(rule.choices)}")
    if callable(rule):  # a rule of its own: returns what to use instead, or None when fine
        advice = rule(value)
        if advice:
            raise AvstanError(f"{where}: {key} {value!r}: use {advice}")
