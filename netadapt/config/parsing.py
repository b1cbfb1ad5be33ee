"""The generic typed parser: a nested mapping checked against a section dataclass's annotations
and its fields' bounds, every failure a one-line `ConfigError` naming the full key.

Nothing here knows a section: `build` walks any dataclass of the schema. Every float must be
finite (no `.nan`, `.inf`); a value shown in a message stays short and on one line.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
import unicodedata
from typing import Any, Literal, get_args, get_origin

from netadapt.errors import ConfigError


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def coerce(key: str, tp: Any, value: Any) -> Any:
    """Check `value` against annotation `tp`; return it (ints widened to float where asked)."""
    origin = get_origin(tp)
    if origin is Literal:
        if value not in get_args(tp) or isinstance(value, bool):
            raise ConfigError(f"{key}: must be {_type_name(tp)}, got {value!r}")
        return value
    if origin is list:  # a list of one item type (`data.mean`), each item checked as its own key
        if not isinstance(value, list):
            raise ConfigError(f"{key}: must be a list, got {value!r}")
        return [coerce(f"{key}.{i}", get_args(tp)[0], item) for i, item in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return coerce(key, args[0], value)
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            try:
                value = float(value)
            except OverflowError:  # an integer beyond a float's range (~1.8e308)
                raise ConfigError(f"{key}: must be a finite number, got {shown(value)}") from None
            if not math.isfinite(value):  # .nan, .inf, -.inf, or 1.0e+400 read as inf
                raise ConfigError(f"{key}: must be a finite number, got {value!r}")
    elif tp is str:
        ok = isinstance(value, str)
    else:  # pragma: no cover - schema error, not user error
        raise TypeError(f"unsupported annotation {tp} for {key}")
    if not ok:
        raise ConfigError(f"{key}: must be {_type_name(tp)}, got {value!r}")
    return value


def shown(value: Any) -> str:
    """A value in a message: short, on one line (an integer of 400 digits is not quoted whole)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        digits = str(abs(value))
        return f"{'-' if value < 0 else ''}{digits[0]}.{digits[1:4]}e{len(digits) - 1}"
    return repr(value)


def short(text: str, limit: int = 60) -> str:
    """A string in a message: quoted whole up to `limit` characters, cut with its length beyond."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def lookalike(key: Any) -> str:
    """For a key in a message: its characters that are not plain ASCII, by code point and name, since
    `budgеt` (a Cyrillic е) or `budget` with a zero-width space prints like `budget`; "" for a plain key."""
    odd = [ch for ch in dict.fromkeys(str(key)) if not (ch.isascii() and ch.isprintable())]
    if not odd:
        return ""
    named = [f"U+{ord(ch):04X} {unicodedata.name(ch, 'unnamed')}" for ch in odd[:5]]
    return f" (it has non-ASCII characters: {', '.join(named)}{', ...' if len(odd) > 5 else ''})"


def _bound(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() and abs(bound) < 10**15 else f"{bound:g}"


def check_bounds(key: str, value: Any, raw: Any, meta: typing.Mapping[str, float]) -> None:
    """`value` (parsed from `raw`) within a field's bounds (`ge`, `gt`, `le`, `lt` in `meta`)."""
    tests = {"ge": (lambda v, b: v >= b, ">="), "gt": (lambda v, b: v > b, ">"),
             "le": (lambda v, b: v <= b, "<="), "lt": (lambda v, b: v < b, "<")}
    for name, bound in meta.items():
        test, symbol = tests[name]
        if not test(value, bound):
            raise ConfigError(f"{key}: must be {symbol} {_bound(bound)}, got {shown(raw)}")


def field_bounds(cls: type, name: str) -> typing.Mapping[str, float]:
    """The bounds of field `name` of section `cls` (for a value parsed outside its section)."""
    return next(f.metadata for f in dataclasses.fields(cls) if f.name == name)


def build(cls: type, raw: Any, prefix: str) -> Any:
    """An instance of section `cls` from mapping `raw`, its keys named `<prefix><field>`: unknown
    keys first, then each field in the schema's order (type, then bounds); nested sections recurse."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'params'}: must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            raise ConfigError(f"{prefix}{key}: unknown key{lookalike(key)} (known: {', '.join(sorted(names))})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            continue
        key, tp = prefix + f.name, hints[f.name]
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = build(tp, raw[f.name], key + ".")
        elif get_origin(tp) is dict:  # `devices`: checked by `rules.check_devices`; `model.kwargs`: by rules too
            kwargs[f.name] = raw[f.name]
        else:
            value = coerce(key, tp, raw[f.name])
            if value is not None:
                check_bounds(key, value, raw[f.name], f.metadata)
            kwargs[f.name] = value
    return cls(**kwargs)
