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
* ``X | Y`` and ``X | None``: None where None is an option, else the options in order,
  the first that accepts the value wins (so ``1`` for ``float | int`` becomes ``1.0``);
  when none does, the first option's error is raised;
* ``list[X]``: a list, each item converted to X; ``dict[...]``: a dict, copied, its items
  not checked; ``Any``: anything, as is;
* a dataclass: a mapping, built recursively (its keys named ``field.key``);
* any other class: an instance of it, as is.

Only the standard library (numpy scalars are recognised without importing numpy).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable
from typing import Any

from avstan.errors import AvstanError

__all__ = ["convert_fields", "convert_value", "dataclass_from_dict"]


def dataclass_from_dict(cls: type, raw: Any, where: str, prefix: str = "") -> Any:
    """An instance of dataclass ``cls`` from the mapping ``raw``, every key and type checked.

    Fields missing from ``raw`` take the dataclass defaults. ``where`` names the source in
    error messages (a file path, or e.g. "synthetic config"); ``prefix`` is prepended to
    every key in them (``"training."`` for a nested section).
    """
    return cls(**convert_fields(cls, raw, where, prefix))


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
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in raw.items():
        if name in fields:
            values[name] = convert_value(hints[name], value, where, prefix + name)
    return values


def convert_value(hint: Any, value: Any, where: str, key: str) -> Any:
    """``value`` checked against the type ``hint`` and converted (see the module docstring
    for what each hint accepts); an AvstanError naming ``where`` and ``key`` if it does not
    fit."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
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
        if _is_real(value):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML reads 1e-4 (no dot) as a string
            except ValueError:
                pass
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
