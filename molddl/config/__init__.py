"""The one configuration schema: YAML / dict in, typed dataclasses out, validated once.

Unknown keys and bad values raise :class:`ConfigError` naming the key (``train.lr``) and
what is allowed; inner code only ever sees the typed objects.

- :mod:`~molddl.config.schema`: the sections and keys, with their defaults;
- :mod:`~molddl.config.space`: the tuning search space ``tune.space``;
- :mod:`~molddl.config.validate`: the dict → dataclass validator behind every error;
- :mod:`~molddl.config.shipped`: the repository's configs by name (``Config.from_yaml("tox21")``
  from any working folder) and its committed benchmark results.

The config depends on neither the models nor the metric registry (``tune.metric`` is
checked when a tune run starts), so it is the edge every other module can import.
"""

from molddl.config.schema import (
    Config,
    DataConfig,
    InferenceConfig,
    ModelConfig,
    TrainConfig,
    TuneConfig,
)
from molddl.config.shipped import shipped_config, shipped_configs, shipped_results
from molddl.config.space import TUNABLE_SECTIONS, ParamSpace
from molddl.config.validate import ConfigError, check_choice

__all__ = [
    "TUNABLE_SECTIONS",
    "Config",
    "ConfigError",
    "DataConfig",
    "InferenceConfig",
    "ModelConfig",
    "ParamSpace",
    "TrainConfig",
    "TuneConfig",
    "check_choice",
    "shipped_config",
    "shipped_configs",
    "shipped_results",
]
