"""The configuration schema: every section and key molddl reads, with its default.

The dataclasses are built from YAML / dicts by :mod:`molddl.config.validate`, which names the
key of any unknown or bad value; inner code only ever sees these typed objects. The schema
imports neither the models nor the metric registry, so reading a config stays cheap.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from molddl.config.shipped import is_bare_name, shipped_config, shipped_configs
from molddl.config.space import TUNABLE_SECTIONS, ParamSpace, _check_space, _default_space
from molddl.config.validate import (
    ConfigError,
    _build,
    _suggest,
    bounded,
    check_choice,
    key_type,
    list_item_type,
)
from molddl.methods import NAMES as METHOD_NAMES


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
    feature_columns: list[str] | Literal["all"] | None = None
    """Numeric feature columns of a tabular dataset (an MLP encoder instead of a GNN), or
    ``all`` for every numeric column that is not a label, id or split column. A table
    without them needs a SMILES column."""
    id_column: str | None = None
    split: Literal["random", "scaffold", "column"] = "random"
    split_fractions: list[float] = bounded([0.8, 0.1, 0.1], ge=0, le=1)
    """Train / validation / test fractions; they sum to 1."""
    missing_rate: float | None = bounded(None, ge=0, lt=1)
    """Synthetic MCAR missing rate for train/val after the split; ``None`` keeps real labels."""
    featurizer: Literal["pyg", "deepchem", "morgan", "maccs"] = "pyg"
    strict_smiles: bool = False
    """Fail on any invalid SMILES instead of reporting and skipping it."""

    def __post_init__(self) -> None:
        fractions = self.split_fractions
        if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-6:
            raise ConfigError(
                f"config key 'data.split_fractions' must be three fractions (train, validation, "
                f"test) that sum to 1, got {fractions}"
            )
        labels = self.labels or []
        twice = sorted({n for n in labels if labels.count(n) > 1})
        if twice:
            raise ConfigError(
                f"config key 'data.labels' names {twice[0]!r} twice; a label is one column"
            )
        kinds = self.label_kinds
        if kinds is not None and self.labels is not None and len(kinds) != len(self.labels):
            raise ConfigError(
                f"config key 'data.label_kinds' lists {len(kinds)} kind(s) for the "
                f"{len(self.labels)} labels of 'data.labels'; give one per label"
            )


@dataclass(slots=True)
class ModelConfig:
    encoder: Literal["gine", "gin", "gcn", "gat", "sage", "mlp"] = "gine"
    hidden: int = bounded(128, ge=1)
    """Width of the encoder; the embedding ``h`` has this size."""
    layers: int = bounded(3, ge=1)
    dropout: float = bounded(0.1, ge=0, lt=1)
    pooling: Literal["mean", "sum", "max", "attention"] = "mean"
    label_dim: int = bounded(16, ge=1)
    """Size of the label embeddings ``L1``, ``L2``."""
    tower_hidden: int = bounded(128, ge=1)
    tower_layers: int = bounded(2, ge=1)
    gaussian: bool = False
    """Regression heads predict mean and log-variance (needed for ``loss_dual`` on values)."""


@dataclass(slots=True)
class TrainConfig:
    alpha1: float = bounded(1.0, ge=0)
    alpha2: float = bounded(1.0, ge=0)
    beta1: float = bounded(1.0, ge=0)
    beta2: float = bounded(1.0, ge=0)
    gamma: float = bounded(0.1, ge=0)
    losses: list[Literal["sup", "rec", "dual"]] = field(
        default_factory=lambda: ["sup", "rec", "dual"]
    )
    """Loss terms in use: ``[sup]`` = ablation (a), ``[sup, rec]`` = (a+b), all = (a+b+c)."""
    freeze_scope: Literal["tower", "imputation"] = "tower"
    """``tower``: the imputing tower and its label embedding get no gradient, the encoder
    still learns through the imputed label of ``loss_rec``; ``imputation``: the imputed label
    is a constant. Under either scope ``loss_dual`` takes the imputed label as a constant (the
    expectation weights of a class label, the imputed value of a value label): a gradient
    there would shrink the duality gap by making the imputation confident where the gap is
    small rather than by making the towers agree with the marginals."""
    dual_imputed: Literal["expectation", "argmax"] = "expectation"
    """How ``loss_dual`` treats an imputed class label: expectation over its probabilities,
    or its most probable class."""
    lr: float = bounded(1e-3, gt=0)
    weight_decay: float = bounded(0.0, ge=0)
    batch_size: int = bounded(128, ge=1)
    max_epochs: int = bounded(40, ge=1)
    patience: int = bounded(6, ge=0)
    monitor: str = "val_loss"
    """``val_loss`` or ``val_<metric>`` (e.g. ``val_roc_auc``, ``val_mae``) on single reveal."""
    warm_start: bool = True
    """Initialise the dual model's encoder from the trained marginal model."""
    marginal_epochs: int | None = bounded(None, ge=1)
    """Epoch budget of the marginal model; ``None`` uses ``max_epochs``."""
    progress_bar: bool = False
    log_dir: str | None = None
    """Where Lightning's CSV log of every loss term per epoch goes; ``None`` for no log."""
    logger: Literal["csv", "tensorboard"] = "csv"
    """``csv``: ``<log_dir>/<phase>/metrics.csv``, one row per epoch; ``tensorboard``: event
    files there as well (tensorboard or tensorboardX; the lock installs tensorboardX)."""
    devices: int = bounded(1, ge=1)
    """Processes (CPU) or GPUs for data-parallel training; more than 1 uses DDP."""
    num_nodes: int = bounded(1, ge=1)
    """Machines for multi-node DDP (with torchrun or SLURM setting the rendezvous)."""
    strategy: Literal["auto", "ddp", "ddp_spawn"] = "auto"
    """Lightning strategy: ``ddp`` under torchrun / SLURM or from the command line,
    ``ddp_spawn`` from Python sessions (notebooks, tests)."""


@dataclass(slots=True)
class InferenceConfig:
    method: Literal["jacobi", "gauss_seidel"] = "jacobi"
    tol: float = bounded(1e-4, gt=0)
    """A sample has converged when no label state moves by more than this."""
    max_iter: int = bounded(1000, ge=0)
    damping: float = bounded(0.0, ge=0, lt=1)
    """``y ← (1 - damping) · new + damping · old``; 0 is the paper's plain iteration."""
    init: Literal["marginal", "prior"] = "marginal"
    batch_size: int | None = None
    """Samples per encoder call at prediction; unset: 256 on the CPU, 4,096 on a GPU. On the
    CPU a large batch is slower, not faster: its activations are tens of MB, which the
    allocator takes from and gives back to the operating system on every operation
    (``benchmarks/encoder.py`` measures both). The predictions do not depend on it."""
    max_abs_z: float = bounded(10.0, gt=0)
    """Divergence guard: an unconverged sample whose value label ends more than this many
    training standard deviations from the training mean gets the marginal prediction
    (source ``marginal``) instead of the runaway iterate."""
    cycles: Literal["stop", "fixed_point", "continue"] = "stop"
    """A sample in a period-2 cycle: its state comes back to within ``tol / 100`` of itself
    every two iterations while still moving by ``tol`` or more each iteration. Plain (Jacobi)
    iteration of a strongly coupled pair does this when its two interleaved chains settle on
    two different fixed points; it then never converges and the state at ``max_iter`` pairs
    label 1 of one fixed point with label 2 of the other. ``stop``: leave the loop with the
    state it would hold at ``max_iter`` (the same output, fewer iterations); ``fixed_point``:
    return the one of the two fixed points nearest the initial state (Jacobi without damping;
    otherwise as ``stop``); ``continue``: iterate to ``max_iter``. Such samples stay
    unconverged in every case."""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """Precision of the encoder pass at prediction (autocast; fp16 needs CUDA). The
    iterations run in fp32: a tolerance of 1e-4 means nothing in half precision."""
    kernel: Literal["auto", "numba", "torch"] = "auto"
    """How alternate inference iterates. ``numba``: a loop over blocks of samples on the CPU,
    compiled by numba on first use and kept in molddl's cache folder
    (``molddl.inference.kernel``); a model on a GPU has its iteration inputs copied to the CPU
    for it. ``torch``: the PyTorch loop, on the model's device. ``auto``: ``numba`` for a
    model on the CPU, the PyTorch loop for one on a GPU. The two agree to float rounding;
    ``numba`` is an error where it cannot run."""
    sync_every: int | None = bounded(None, ge=1)
    """Iterations of the PyTorch loop between the moments it asks the device whether any
    sample is left and drops the samples that left; only there does the host wait for the
    device. In between, a sample that converges or enters a period-2 cycle is recorded and
    frozen on the device and keeps its place in the batch. Unset: 1 on the CPU, where there is
    no device to wait for and a smaller batch is cheaper at once; 32 on a GPU, where each wait
    drains the queue of small kernels (the loop was bound by these waits), so 32 makes them
    rare while a sample that leaves early is carried, frozen, at most 31 iterations. The
    predictions do not depend on it: every sample goes through the same operations, and only
    their float rounding can differ, since PyTorch's kernels (a matrix product, a vectorised
    sigmoid) may round a row by its place in the batch, as they already do while samples
    leave; tested."""

    def __post_init__(self) -> None:
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(
                f"config key 'inference.batch_size' must be at least 1, got {self.batch_size}"
            )

    def encoder_batch_size(self, device: str) -> int:
        """:attr:`batch_size`, or its default for ``device`` (``"cpu"`` / ``"cuda"``)."""
        if self.batch_size is not None:
            return self.batch_size
        return 4096 if device == "cuda" else 256

    def iterations_per_sync(self, device: str) -> int:
        """:attr:`sync_every`, or its default for ``device`` (``"cpu"`` / ``"cuda"``)."""
        if self.sync_every is not None:
            return self.sync_every
        return 1 if device == "cpu" else 32


@dataclass(slots=True)
class TuneConfig:
    trials: int = 20
    """Trials per ``molddl tune`` run (added to the study's earlier ones)."""
    metric: str = "val_loss"
    """The validation value to optimise: ``val_loss`` or ``val_<metric>`` of the metric
    registry (e.g. ``val_roc_auc``, ``val_mae``); the direction follows from it. ``val_loss``
    sums the weighted loss terms, so it is biased when the loss weights are in the space.
    Checked when a tune run starts (:mod:`molddl.tuning`), where the metric registry is at
    hand; the config does not import it."""
    study: str = "molddl"
    """Study name; runs with the same name and storage continue one study."""
    storage: str | None = None
    """Optuna RDB URL (``sqlite:///…``, ``postgresql://…``); ``None`` is
    ``sqlite:///<output>/study.db``."""
    heartbeat: int = 60
    """Seconds between a running trial's heartbeats in the storage. A trial whose worker
    stopped beating for twice as long (killed, preempted, out of memory) is marked failed by
    the next trial that starts, and its parameters are tried once more; 0 turns this off."""
    pruner: Literal["median", "none"] = "median"
    """``median``: stop a trial whose validation value is worse than the median of earlier
    trials at the same epoch."""
    space: dict[str, ParamSpace] = field(default_factory=_default_space)
    """``section.key`` of a ``model`` or ``train`` setting -> its search range; a space given
    in a config replaces the default one (loss weights, ``lr``, ``hidden``, ``layers``,
    ``dropout``)."""

    def __post_init__(self) -> None:
        problems = []
        if self.heartbeat < 0:
            problems.append(
                f"config key 'tune.heartbeat' must be 0 (off) or more seconds, got {self.heartbeat}"
            )
        if self.trials < 1:
            problems.append(f"config key 'tune.trials' must be at least 1, got {self.trials}")
        if not self.study:
            problems.append("config key 'tune.study' may not be empty")
        if self.storage is not None and not re.match(r"^[A-Za-z0-9+_.-]+://", self.storage):
            problems.append(
                f"config key 'tune.storage': {self.storage!r} is not a database URL such as "
                "sqlite:///study.db or postgresql://user@host/db"
            )
        if problems:
            raise ConfigError(*problems)


@dataclass(slots=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    methods: list[str] = field(default_factory=lambda: list(METHOD_NAMES))
    """Methods ``molddl benchmark compare / missing-rate`` runs (DLL and SPEC §5's
    baselines; the names of :mod:`molddl.methods`), unless ``--methods`` names others."""

    def __post_init__(self) -> None:
        sections = {s: type(getattr(self, s)) for s in TUNABLE_SECTIONS}
        errors = []
        for key, spec in self.tune.space.items():
            try:
                _check_space(key, spec, sections)
            except ConfigError as err:
                errors.append(err)
        for i, name in enumerate(self.methods):
            try:
                check_choice(f"methods[{i}]", name, METHOD_NAMES)
            except ConfigError as err:
                errors.append(err)
        if errors:
            raise ConfigError.of(errors)

    @classmethod
    def from_dict(cls, d: dict | None) -> Config:
        return _build(cls, d or {}, "")

    @classmethod
    def from_yaml(cls, path: str | Path) -> Config:
        """The config of a YAML file, or of a shipped config by name (``"tox21"``: the
        repository's ``configs/tox21.yaml``, whatever the working folder; see
        :mod:`molddl.config.shipped`). A name is a string without a folder or a suffix; a
        file of that name in the working folder is read instead."""
        if is_bare_name(path) and not Path(path).is_file():
            path = shipped_config(str(path))
        path = Path(path)
        if not path.exists():
            names = ", ".join(shipped_configs())
            shipped = f" (shipped configs, by name: {names})" if names else ""
            raise ConfigError(f"config file {path} does not exist{shipped}")
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

    def override(self, assignments: Sequence[str | tuple[str, Any]]) -> Config:
        """Apply ``section.key=value`` overrides, or ``(section.key, value)`` pairs whose value
        is taken as it is (the command-line flags that stand for a key).

        A value is read as YAML (``0.01``, ``true``, ``[a, b]``); a key that takes a list also
        takes its items separated by commas (``data.labels=a,b``). Every bad override is
        reported at once, each naming its key.
        """
        d = self.to_dict()
        errors = []
        for item in assignments:
            try:
                key, value = item if isinstance(item, tuple) else _parse_assignment(item)
                node = d
                parts = key.strip().split(".")
                for p in parts[:-1]:
                    if not isinstance(node.get(p), dict):
                        sections = [k for k, v in node.items() if isinstance(v, dict)]
                        raise ConfigError(
                            f"unknown config section {p!r}{_suggest(p, sections)} in override "
                            f"{key}={value}"
                        )
                    node = node[p]
                node[parts[-1]] = value
            except ConfigError as err:
                errors.append(err)
        try:
            cfg = Config.from_dict(d)
        except ConfigError as err:
            errors.append(err)
        if errors:
            raise ConfigError.of(errors)
        return cfg


def _parse_assignment(item: str) -> tuple[str, Any]:
    """``section.key=value`` as the key and its value: YAML, or for a key that takes a list,
    also items separated by commas (each read as YAML unless the list holds text)."""
    key, sep, text = item.partition("=")
    if not sep:
        raise ConfigError(f"override {item!r} must look like section.key=value")
    key = key.strip()
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        reason = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"config key {key!r}: {text!r} is not a valid value ({reason})") from None
    item_type = list_item_type(key_type(Config, key.split(".")))
    if item_type is None or not isinstance(value, str) or "," not in value:
        return key, value
    items = [part.strip() for part in value.split(",")]
    if "" in items:
        raise ConfigError(
            f"config key {key!r}: {text!r} has an empty item; write the list as a,b or [a, b]"
        )
    if item_type is not str and typing.get_origin(item_type) is not Literal:
        try:
            return key, [yaml.safe_load(part) for part in items]
        except yaml.YAMLError:
            pass  # each item as text: the validator names the key of the one that is wrong
    return key, items
