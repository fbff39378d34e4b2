"""The generic validator: a dict in, typed dataclasses out, or a :class:`ConfigError` that
names the key (``train.lr``) and what it allows.

It knows dataclasses, ``Literal``, unions, lists, dicts and the scalar types, not molddl's
schema, so that the schema (:mod:`molddl.config.schema`) and anything checked at run time
(``tune.metric``) report errors in one format.
"""

from __future__ import annotations

import contextlib
import difflib
import types
import typing
from collections.abc import Sequence
from dataclasses import MISSING, Field, field, fields, is_dataclass
from typing import Any, Literal


class ConfigError(ValueError):
    """A configuration key or value that molddl cannot use."""


def check_choice(key: str, value: Any, allowed: Sequence[Any]) -> Any:
    """``value`` if it is one of ``allowed``, else a :class:`ConfigError` naming ``key``,
    the closest allowed value and all of them."""
    if value not in allowed:
        names = [str(a) for a in allowed]
        raise ConfigError(
            f"config key {key!r}: {value!r} is not allowed{_suggest(str(value), names)}; "
            f"choose one of {', '.join(names)}"
        )
    return value


def bounded(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A dataclass field whose number (or every number of a list) must lie in the given
    range; :func:`_build` names the key of a value outside it."""
    bounds = {"ge": ge, "gt": gt, "le": le, "lt": lt}
    meta = {"bounds": {k: v for k, v in bounds.items() if v is not None}}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


_RELATIONS = {"ge": (">=", float.__ge__), "gt": (">", float.__gt__),
              "le": ("<=", float.__le__), "lt": ("<", float.__lt__)}  # fmt: skip


def _check_bounds(f: Field, value: Any, key: str) -> None:
    """A :class:`ConfigError` if ``value`` lies outside the range of ``bounded`` field ``f``."""
    bounds = f.metadata.get("bounds")
    if not bounds or value is None:
        return
    values = value if isinstance(value, list) else [value]
    for v in values:
        for name, limit in bounds.items():
            symbol, holds = _RELATIONS[name]
            if not holds(float(v), float(limit)):
                allowed = " and ".join(f"{_RELATIONS[n][0]} {lim:g}" for n, lim in bounds.items())
                raise ConfigError(f"config key {key!r} must be {allowed}, got {v!r}")


def _suggest(key: str, allowed: list[str]) -> str:
    """The hint ``(did you mean 'x'?)`` for the closest of ``allowed``, or ``""``."""
    close = difflib.get_close_matches(key, allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _build(cls: type, d: Any, prefix: str) -> Any:
    """An instance of the dataclass ``cls`` from the mapping ``d``; ``prefix`` (``train.``)
    makes the keys in errors full paths."""
    if not isinstance(d, dict):
        raise ConfigError(
            f"config section {prefix.rstrip('.') or '<root>'} must be a mapping, got {d!r}"
        )
    hints = typing.get_type_hints(cls)
    allowed = [f.name for f in fields(cls)]
    unknown = [k for k in d if k not in allowed]
    if unknown:
        k = unknown[0]
        raise ConfigError(
            f"unknown config key {prefix + str(k)!r}{_suggest(str(k), allowed)}; "
            f"allowed keys: {', '.join(allowed)}"
        )
    kwargs = {}
    for f in fields(cls):
        if f.name not in d:
            continue
        kwargs[f.name] = _check(hints[f.name], d[f.name], prefix + f.name)
        _check_bounds(f, kwargs[f.name], prefix + f.name)
    obj = cls(**kwargs)
    for f in fields(cls):
        if f.default is MISSING and f.default_factory is MISSING:  # pragma: no cover
            raise ConfigError(f"config key {prefix + f.name!r} is required")
    return obj


def _check(tp: Any, value: Any, key: str) -> Any:
    """``value`` as the type ``tp`` (a dataclass built, an int taken as a float), or a
    :class:`ConfigError` naming ``key``."""
    origin = typing.get_origin(tp)
    if is_dataclass(tp):
        # a type hint, so a dataclass type, never an instance
        return _build(typing.cast(type, tp), value, key + ".")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check(a, value, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"config key {key!r} may not be empty")
    if origin is Literal:
        return check_choice(key, value, typing.get_args(tp))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} must be a mapping, got {value!r}")
        _, item = typing.get_args(tp)
        return {str(k): _check(item, v, f"{key}.{k}") for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"config key {key!r} must be a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_check(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as text
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {key!r} must be a string, got {value!r}")
        return value
    raise ConfigError(f"config key {key!r}: unsupported type {tp}")  # pragma: no cover
