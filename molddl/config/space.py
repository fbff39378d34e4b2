"""The tuning search space: what ``tune.space`` may name and the ranges it accepts.

Optuna never sees an invalid range: every ``tune.space`` entry is checked against the type
of the setting it names when the config is built, not when the first trial samples it.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Literal

from molddl.config.validate import ConfigError, _check, _suggest


@dataclass(slots=True)
class ParamSpace:
    """The search range of one config key (``tune.space``)."""

    type: Literal["float", "int", "categorical"] = "float"
    """How Optuna samples it: ``suggest_float``, ``suggest_int`` or ``suggest_categorical``."""
    low: float | None = None
    """Lower bound (``float`` / ``int``), inclusive."""
    high: float | None = None
    """Upper bound (``float`` / ``int``), inclusive."""
    log: bool = False
    """Sample on a log scale (``float`` / ``int``; needs ``low > 0``)."""
    choices: list[bool | int | float | str] | None = None
    """The values to pick from (``categorical``)."""


def _default_space() -> dict[str, ParamSpace]:
    """The loss weights, ``lr``, ``hidden``, ``layers`` and ``dropout``: ``tune.space`` unless
    a config gives its own."""
    space = {
        f"train.{k}": ParamSpace("float", 0.1, 2.0) for k in ("alpha1", "alpha2", "beta1", "beta2")
    }
    space["train.gamma"] = ParamSpace("float", 1e-3, 1.0, log=True)
    space["train.lr"] = ParamSpace("float", 1e-4, 3e-3, log=True)
    space["model.hidden"] = ParamSpace("categorical", choices=[64, 128, 256])
    space["model.layers"] = ParamSpace("int", 2, 4)
    space["model.dropout"] = ParamSpace("float", 0.0, 0.3)
    return space


#: the sections whose keys ``tune.space`` may name (the data splits are loaded once)
TUNABLE_SECTIONS: tuple[str, ...] = ("model", "train")


def _check_space(key: str, spec: ParamSpace, sections: Mapping[str, type]) -> None:
    """``tune.space[key]`` names a ``model`` / ``train`` setting and a range it accepts.

    ``sections`` maps each of :data:`TUNABLE_SECTIONS` to its dataclass; the caller (the
    schema's ``Config``) passes them, so that this module does not import the schema.
    """
    where = f"config key 'tune.space.{key}'"
    section, _, name = key.partition(".")
    if section not in TUNABLE_SECTIONS or not name:
        raise ConfigError(
            f"{where}: the search space takes keys like 'train.lr' or 'model.hidden' "
            f"(sections {', '.join(TUNABLE_SECTIONS)}), got {key!r}"
        )
    cls = sections[section]
    allowed = [f.name for f in fields(cls)]
    if name not in allowed:
        raise ConfigError(
            f"{where}: unknown config key {key!r}{_suggest(name, allowed)}; "
            f"allowed keys in {section}: {', '.join(allowed)}"
        )
    if spec.type == "categorical":
        if not spec.choices:
            raise ConfigError(f"{where}: a categorical range needs a non-empty 'choices' list")
        if spec.low is not None or spec.high is not None or spec.log:
            raise ConfigError(f"{where}: a categorical range takes 'choices', not low/high/log")
        values = list(spec.choices)
    else:
        if spec.low is None or spec.high is None:
            raise ConfigError(f"{where}: a {spec.type} range needs 'low' and 'high'")
        if spec.choices is not None:
            raise ConfigError(f"{where}: 'choices' is only for type categorical")
        if not spec.low < spec.high:
            raise ConfigError(f"{where}: 'low' ({spec.low}) must be below 'high' ({spec.high})")
        if spec.log and spec.low <= 0:
            raise ConfigError(f"{where}: a log range needs 'low' > 0, got {spec.low}")
        if spec.type == "int" and not all(float(b).is_integer() for b in (spec.low, spec.high)):
            raise ConfigError(f"{where}: an int range needs whole-number bounds")
        values = [int(spec.low), int(spec.high)] if spec.type == "int" else [spec.low, spec.high]
    tp = typing.get_type_hints(cls)[name]
    for v in values:
        try:
            _check(tp, v, key)
        except ConfigError as err:
            raise ConfigError(f"{where}: {spec.type} values do not fit {key}: {err}") from None
