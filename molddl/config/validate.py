"""The generic validator: a dict in, typed dataclasses out, or one :class:`ConfigError` with
every problem found, each naming its key (``train.lr``) and what it allows.

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
    """Configuration keys or values that molddl cannot use: one problem per line, each naming
    its key. :attr:`problems` holds them one by one (the CLI joins them on one line)."""

    def __init__(self, *problems: str) -> None:
        super().__init__(*problems)  # the problems, so that a pickled copy keeps them apart
        self.problems: list[str] = list(problems)

    def __str__(self) -> str:
        return "\n".join(self.problems)

    @classmethod
    def of(cls, errors: Sequence[ConfigError]) -> ConfigError:
        """One error holding every problem of ``errors``."""
        return cls(*(p for err in errors for p in err.problems))


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
    """A :class:`ConfigError` if ``value`` (or any number of a list) lies outside the range of
    ``bounded`` field ``f``; one problem per number outside it."""
    bounds = f.metadata.get("bounds")
    if not bounds or value is None:
        return
    values = value if isinstance(value, list) else [value]
    allowed = " and ".join(f"{_RELATIONS[n][0]} {lim:g}" for n, lim in bounds.items())
    problems = [
        f"config key {key!r} must be {allowed}, got {v!r}"
        for v in values
        if not all(_RELATIONS[name][1](float(v), float(lim)) for name, lim in bounds.items())
    ]
    if problems:
        raise ConfigError(*problems)


def key_type(cls: type, path: Sequence[str]) -> Any:
    """The type hint of the key at ``path`` (``["data", "labels"]``) of the dataclass
    ``cls``, or ``None`` where ``path`` names no key of it."""
    tp: Any = cls
    for name in path:
        if not is_dataclass(tp):
            return None
        if name not in {f.name for f in fields(tp)}:
            return None
        tp = typing.get_type_hints(tp)[name]
    return tp


def list_item_type(tp: Any) -> Any:
    """The item type of the list that ``tp`` (a key's type hint) takes, itself or as one
    member of a union (``list[str] | None``); ``None`` if it takes no list."""
    union = typing.get_origin(tp) in (typing.Union, types.UnionType)
    for member in typing.get_args(tp) if union else (tp,):
        if typing.get_origin(member) is list:
            return typing.get_args(member)[0]
    return None


def _suggest(key: str, allowed: list[str]) -> str:
    """The hint ``(did you mean 'x'?)`` for the closest of ``allowed``, or ``""``."""
    close = difflib.get_close_matches(key, allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _build(cls: type, d: Any, prefix: str) -> Any:
    """An instance of the dataclass ``cls`` from the mapping ``d``; ``prefix`` (``train.``)
    makes the keys in errors full paths.

    Every problem is found before one :class:`ConfigError` reports them all: each unknown key,
    each bad value (in nested sections too), then the checks of the dataclass itself
    (``__post_init__``) on the values that passed, the others left at their defaults.
    """
    if not isinstance(d, dict):
        raise ConfigError(
            f"config section {prefix.rstrip('.') or '<root>'} must be a mapping, got {d!r}"
        )
    hints = typing.get_type_hints(cls)
    allowed = [f.name for f in fields(cls)]
    errors = [
        ConfigError(
            f"unknown config key {prefix + str(k)!r}{_suggest(str(k), allowed)}; "
            f"allowed keys: {', '.join(allowed)}"
        )
        for k in d
        if k not in allowed
    ]
    required = [
        ConfigError(f"config key {prefix + f.name!r} is required")
        for f in fields(cls)
        if f.name not in d and f.default is MISSING and f.default_factory is MISSING
    ]
    if required:  # pragma: no cover - every key of the schema has a default
        raise ConfigError.of(errors + required)
    kwargs = {}
    for f in fields(cls):
        if f.name not in d:
            continue
        try:
            value = _check(hints[f.name], d[f.name], prefix + f.name)
            _check_bounds(f, value, prefix + f.name)
        except ConfigError as err:
            errors.append(err)
            continue
        kwargs[f.name] = value
    try:
        obj = cls(**kwargs)
    except ConfigError as err:
        errors.append(err)
    if errors:
        raise ConfigError.of(errors)
    return obj


def _each(items: typing.Iterable[tuple[Any, Any, str]], tp: Any) -> list[tuple[Any, Any]]:
    """``(name, value as tp)`` for every ``(name, value, key)`` of ``items``, or one
    :class:`ConfigError` with the problems of all of them."""
    out, errors = [], []
    for name, value, key in items:
        try:
            out.append((name, _check(tp, value, key)))
        except ConfigError as err:
            errors.append(err)
    if errors:
        raise ConfigError.of(errors)
    return out


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
                errors.append(err)
        raise errors[0] if errors else ConfigError(f"config key {key!r} may not be empty")
    if origin is Literal:
        return check_choice(key, value, typing.get_args(tp))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} must be a mapping, got {value!r}")
        _, item = typing.get_args(tp)
        return dict(_each(((str(k), v, f"{key}.{k}") for k, v in value.items()), item))
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"config key {key!r} must be a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [v for _, v in _each(((i, v, f"{key}[{i}]") for i, v in enumerate(value)), item)]
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
