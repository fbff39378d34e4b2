"""What every molddl estimator shares: scikit-learn's constructor contract over one config."""

from __future__ import annotations

from molddl.config import Config


class ConfiguredEstimator:
    """``__init__`` only stores the config (a :class:`Config`, a dict in its schema, or
    ``None`` for defaults); :attr:`config_` is the validated :class:`Config`."""

    def __init__(self, config: Config | dict | None = None) -> None:
        self.config = config

    @property
    def config_(self) -> Config:
        c = self.config
        return c if isinstance(c, Config) else Config.from_dict(c)
