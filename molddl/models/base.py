"""What every molddl estimator shares: scikit-learn's estimator contract over one config.

``__init__`` only stores its arguments; ``get_params`` / ``set_params`` read and replace
them, and reach into the config with ``config__<section>__<key>`` (``config__train__lr``),
so that :func:`sklearn.base.clone`, ``GridSearchCV`` and pipelines work as on any
scikit-learn estimator.
"""

from __future__ import annotations

from dataclasses import is_dataclass
from typing import Any

from sklearn.base import BaseEstimator

from molddl.config import Config, ConfigError

#: the prefix of a config value among an estimator's parameters
CONFIG_PREFIX = "config__"


class ConfiguredEstimator(BaseEstimator):
    """``__init__`` only stores the config (a :class:`Config`, a dict in its schema, or
    ``None`` for defaults); :attr:`config_` is the validated :class:`Config`.

    ``clone(model)`` is an unfitted copy with an equal config; ``set_params`` never refits.
    """

    def __init__(self, config: Config | dict | None = None) -> None:
        self.config = config

    @property
    def config_(self) -> Config:
        c = self.config
        return c if isinstance(c, Config) else Config.from_dict(c)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters; with ``deep``, also every config value under the key
        ``set_params`` takes for it: ``config__<section>__<key>`` (``config__train__lr``),
        or ``config__<key>`` for a top-level key (``config__seed``)."""
        out = super().get_params(deep=False)
        if deep:
            config = self.config_
            for name, value in config.to_dict().items():
                if is_dataclass(getattr(config, name)):  # a section
                    out.update({f"{CONFIG_PREFIX}{name}__{k}": v for k, v in value.items()})
                else:
                    out[CONFIG_PREFIX + name] = value
        return out

    def set_params(self, **params: Any) -> ConfiguredEstimator:
        """Set constructor parameters (``config=...`` replaces the whole config) and config
        values (``config__train__lr=1e-4``), each validated as the config schema says: an
        unknown key or a bad value is a :class:`~molddl.config.ConfigError` naming it.
        Returns ``self``; a fitted model keeps its weights."""
        nested = {k: params.pop(k) for k in list(params) if k.startswith(CONFIG_PREFIX)}
        super().set_params(**params)
        if nested:
            pairs = [(k[len(CONFIG_PREFIX) :].replace("__", "."), v) for k, v in nested.items()]
            try:
                self.config = self.config_.override(pairs)
            except ConfigError as err:
                raise ConfigError(f"set_params({', '.join(nested)}): {err}") from None
        return self
