"""The one configuration schema: YAML / dict in, typed dataclasses out, validated once.

Unknown keys and bad values raise :class:`ConfigError` naming the key (``train.lr``) and
what is allowed; inner code only ever sees the typed objects.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A configuration key or value that molddl cannot use."""


@dataclass(slots=True)
class DataConfig:
    dataset: str = "tox21"
    """``tox21``, ``higgs``, ``mof`` or a path to a CSV / Parquet file."""
    labels: list[str] | None = None
    """The two label columns; ``None`` takes the dataset's default pair."""
    label_kinds: list[str] | None = None
    """``binary`` / ``multiclass`` / ``regression`` per label; ``None`` infers them."""
    data_dir: str | None = None
    """Folder with the data files; default ``$MOLDDL_DATA_DIR``, then the cache."""
    smiles_column: str | None = None
    feature_columns: list[str] | None = None
    id_column: str | None = None
    split: Literal["random", "scaffold", "column"] = "random"
    split_fractions: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    missing_rate: float | None = None
    """Synthetic MCAR missing rate for train/val after the split; ``None`` keeps real labels."""
    featurizer: Literal["pyg", "deepchem", "morgan", "maccs"] = "pyg"
    strict_smiles: bool = False
    """Fail on any invalid SMILES instead of reporting and skipping it."""


@dataclass(slots=True)
class ModelConfig:
    encoder: Literal["gine", "gin", "gcn", "gat", "sage", "mlp"] = "gine"
    hidden: int = 128
    """Width of the encoder; the embedding ``h`` has this size."""
    layers: int = 3
    dropout: float = 0.1
    pooling: Literal["mean", "sum", "max", "attention"] = "mean"
    label_dim: int = 16
    """Size of the label embeddings ``L1``, ``L2``."""
    tower_hidden: int = 128
    tower_layers: int = 2
    gaussian: bool = False
    """Regression heads predict mean and log-variance (needed for ``loss_dual`` on values)."""


@dataclass(slots=True)
class TrainConfig:
    alpha1: float = 1.0
    alpha2: float = 1.0
    beta1: float = 1.0
    beta2: float = 1.0
    gamma: float = 0.1
    losses: list[Literal["sup", "rec", "dual"]] = field(
        default_factory=lambda: ["sup", "rec", "dual"]
    )
    """Loss terms in use: ``[sup]`` = ablation (a), ``[sup, rec]`` = (a+b), all = (a+b+c)."""
    freeze_scope: Literal["tower", "imputation"] = "tower"
    """``tower``: the imputing tower and its label embedding get no gradient, the encoder
    still learns through the imputed label; ``imputation``: the imputed label is a constant."""
    dual_imputed: Literal["expectation", "argmax"] = "expectation"
    """How ``loss_dual`` treats an imputed class label: expectation over its probabilities,
    or its most probable class."""
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    max_epochs: int = 40
    patience: int = 6
    monitor: str = "val_loss"
    """``val_loss`` or ``val_<metric>`` (e.g. ``val_roc_auc``, ``val_mae``) on single reveal."""
    warm_start: bool = True
    """Initialise the dual model's encoder from the trained marginal model."""
    marginal_epochs: int | None = None
    """Epoch budget of the marginal model; ``None`` uses ``max_epochs``."""
    progress_bar: bool = False
    log_dir: str | None = None
    """Where Lightning's CSV log of every loss term per epoch goes; ``None`` for no log."""


@dataclass(slots=True)
class InferenceConfig:
    method: Literal["jacobi", "gauss_seidel"] = "jacobi"
    tol: float = 1e-4
    """A sample has converged when no label state moves by more than this."""
    max_iter: int = 1000
    damping: float = 0.0
    """``y ← (1 - damping) · new + damping · old``; 0 is the paper's plain iteration."""
    init: Literal["marginal", "prior"] = "marginal"
    batch_size: int = 4096


@dataclass(slots=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @classmethod
    def from_dict(cls, d: dict | None) -> Config:
        return _build(cls, d or {}, "")

    @classmethod
    def from_yaml(cls, path: str | Path) -> Config:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist")
        with open(path) as fh:
            try:
                raw = yaml.safe_load(fh)
            except yaml.YAMLError as err:
                raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
        if raw is not None and not isinstance(raw, dict):
            raise ConfigError(f"config file {path} must hold a mapping of sections")
        return cls.from_dict(raw)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def override(self, assignments: list[str]) -> Config:
        """Apply ``section.key=value`` overrides (values parsed as YAML)."""
        d = self.to_dict()
        for item in assignments:
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"override {item!r} must look like section.key=value")
            node = d
            parts = key.strip().split(".")
            for p in parts[:-1]:
                if not isinstance(node.get(p), dict):
                    raise ConfigError(f"unknown config section {p!r} in override {item!r}")
                node = node[p]
            node[parts[-1]] = yaml.safe_load(value)
        return Config.from_dict(d)


def _suggest(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _build(cls: type, d: Any, prefix: str) -> Any:
    if not isinstance(d, dict):
        raise ConfigError(f"config section {prefix or '<root>'} must be a mapping, got {d!r}")
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
    obj = cls(**kwargs)
    for f in fields(cls):
        if f.default is MISSING and f.default_factory is MISSING:  # pragma: no cover
            raise ConfigError(f"config key {prefix + f.name!r} is required")
    return obj


def _check(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if is_dataclass(tp):
        return _build(tp, value, key + ".")
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
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(
                f"config key {key!r}: {value!r} is not allowed; choose one of "
                f"{', '.join(map(str, choices))}"
            )
        return value
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
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {key!r} must be a string, got {value!r}")
        return value
    raise ConfigError(f"config key {key!r}: unsupported type {tp}")  # pragma: no cover
