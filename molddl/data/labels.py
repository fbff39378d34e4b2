"""Label columns and label kinds: the one place that knows what each kind of label means.

A :class:`LabelSpec` describes a column of the data (its name, ``binary`` / ``multiclass`` /
``regression`` and the number of classes). A :class:`LabelKind` is the behaviour of a label
inside the model, looked up in a registry the way chemprop v2 registers its predictors:

=================  =====================================================================
``binary``         one logit; state = P(class 1); BCE; a two-row embedding table
``multiclass``     C logits; state = class probabilities; CE; a C-row embedding table
``regression``     one value (standardised); state = z; MSE; a linear embedding
``gaussian``       a value with mean and log-variance heads; Gaussian NLL, so it has a
                   log-probability and takes part in ``loss_dual``
=================  =====================================================================

Each kind owns its raw size, the state a raw output stands for, the state of a known label,
its loss and log-probability, the support ``loss_dual`` averages over, the label embedding
and its folded projection for alternate inference, its prior, and the conversion of a state
into the user's value. No other module of molddl branches on a label kind.

Every label travels through the model as a *state* vector:

* binary → probability of class 1, shape ``b x 1``
* multiclass → class probabilities, shape ``b x C``
* regression → standardised value ``z``, shape ``b x 1``

A hard label is the one-hot (or 0/1) state, a predicted label its probabilities, so soft
labels and hard labels take the same path (SPEC §2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DataKind = Literal["binary", "multiclass", "regression"]
#: the kinds a label column of the data can have (``data.label_kinds``)
LABEL_KINDS: tuple[str, ...] = ("binary", "multiclass", "regression")
LOG_2PI = math.log(2 * math.pi)

#: how many distinct non-negative integers a column may hold to be inferred multiclass
MAX_INFERRED_CLASSES = 20


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """One label column of a dual-label dataset.

    Attributes
    ----------
    name
        Column name in the source table.
    kind
        ``"binary"`` (values 0/1), ``"multiclass"`` (integers ``0 .. n_classes-1``) or
        ``"regression"`` (real values).
    n_classes
        Number of classes; 2 for binary, 0 for regression.
    """

    name: str
    kind: DataKind
    n_classes: int = 0

    def __post_init__(self) -> None:
        if self.kind not in LABEL_KINDS:
            raise ValueError(
                f"label {self.name!r}: kind {self.kind!r} is not one of {', '.join(LABEL_KINDS)}"
            )
        object.__setattr__(self, "n_classes", _KINDS[self.kind].check_classes(self))

    @property
    def behaviour(self) -> LabelKind:
        """The label's kind as data: values and metrics (the plain head, no Gaussian)."""
        return label_kind(self)

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "n_classes": self.n_classes}

    @classmethod
    def from_dict(cls, d: dict) -> LabelSpec:
        return cls(name=d["name"], kind=d["kind"], n_classes=int(d.get("n_classes", 0)))


def _table(module: nn.Module) -> torch.Tensor:
    """The per-class embedding table that ``build_embedding`` gave ``module``."""
    return cast(torch.Tensor, module.table)


class LabelKind:
    """The behaviour of one kind of label; subclasses register under :attr:`name`.

    Raw outputs, states and labels are tensors in *model space*: class indices, or values
    standardised with the training part's mean and standard deviation.
    """

    name: ClassVar[str]
    #: ``LabelSpec.kind`` this kind serves
    data_kind: ClassVar[str]
    #: whether the label takes a finite set of classes
    categorical: ClassVar[bool] = True
    #: the metrics reported for it (SPEC §6)
    metrics: ClassVar[tuple[str, ...]] = ("f1", "roc_auc", "pr_auc")
    #: the probability column a decision threshold applies to (binary labels only)
    threshold_name: ClassVar[str | None] = None
    #: the figure of a trained run that shows its predictions (:mod:`molddl.evaluation.plots`)
    plot: ClassVar[Literal["roc_pr", "parity"] | None] = None
    #: output activation code shared with the alternate-inference kernel
    activation: ClassVar[int]

    def __init__(self, spec: LabelSpec) -> None:
        self.spec = spec

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.name!r})"

    # ------------------------------------------------------------------ the data
    @classmethod
    def check_classes(cls, spec: LabelSpec) -> int:
        """``spec.n_classes`` as it must be for this kind, or a ``ValueError``."""
        return spec.n_classes

    @classmethod
    def spec_from_values(cls, name: str, values: np.ndarray) -> LabelSpec:
        """A spec of this kind for a column: classes counted from the present values."""
        present = values[~np.isnan(values)]
        n = int(present.max()) + 1 if present.size else 2
        return LabelSpec(name, cls.data_kind, n)  # type: ignore[arg-type]

    def bad_values(self, values: np.ndarray) -> np.ndarray:
        """Mask of present values that this label cannot take."""
        present = ~np.isnan(values)
        ok = (values == np.round(values)) & (values >= 0) & (values < self.spec.n_classes)
        return present & ~ok

    def allowed(self) -> str:
        return f"an integer class in 0..{self.spec.n_classes - 1}"

    def describe(self, present: np.ndarray) -> str:
        """A one-line summary of a column's present values (``molddl data describe``)."""
        freq = np.bincount(present.astype(int), minlength=self.spec.n_classes) / present.size
        return "class shares " + ", ".join(f"{c}: {f:.1%}" for c, f in enumerate(freq))

    def scale(self, present: np.ndarray) -> tuple[float, float]:
        """``(mean, std)`` that standardise the label in model space (classes: ``(0, 1)``)."""
        return 0.0, 1.0

    def prior(self, present: np.ndarray) -> list[float]:
        """The label's prior state from its present training values."""
        freq = np.bincount(present.astype(int), minlength=self.spec.n_classes) / present.size
        return [float(f) for f in freq]

    # ------------------------------------------------------------------ heads
    @property
    def raw_size(self) -> int:
        """Width of a head's raw output: logits, or mean (and log-variance)."""
        return self.state_size

    @property
    def state_size(self) -> int:
        return self.spec.n_classes

    def to_state(self, raw: torch.Tensor) -> torch.Tensor:
        """The state a head's raw output stands for (``b x state_size``)."""
        return torch.softmax(raw, dim=-1)

    def target_state(self, y: torch.Tensor) -> torch.Tensor:
        """The state of known labels ``y`` (shape ``b``: class index or ``z``); NaN → 0."""
        y = torch.nan_to_num(y, nan=0.0)
        return F.one_hot(y.long(), self.spec.n_classes).to(torch.float32)

    def loss(self, raw: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample supervised loss ``ℓ`` (shape ``b``); ``y`` has no NaN."""
        return F.cross_entropy(raw, y.long(), reduction="none")

    @property
    def has_log_prob(self) -> bool:
        """Whether the head defines a probability (``loss_dual`` needs one)."""
        return True

    def log_prob(self, raw: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """``log P(y = value)`` per sample, shape ``b``."""
        return self.log_prob_all(raw).gather(1, value.long().unsqueeze(-1)).squeeze(-1)

    def log_prob_all(self, raw: torch.Tensor) -> torch.Tensor:
        """``log P(y = c)`` for every class ``c``, shape ``b x C``."""
        return torch.log_softmax(raw, dim=-1)

    def class_probs(self, state: torch.Tensor) -> torch.Tensor:
        """Probabilities of every class from a state, ``b x C``."""
        return state

    def support(
        self, y: torch.Tensor, present: torch.Tensor, state: torch.Tensor, mode: str
    ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The values ``loss_dual`` averages the duality gap over, as ``(value b, state b x s,
        weight b)``: every class, with weight 1 for a known label's class and the imputed
        probability (``expectation``) or 1 for the most probable class (``argmax``) where the
        label was imputed. The weights keep the graph of ``state``; ``loss_dual`` passes a
        detached imputed state, so no gradient flows through them there."""
        C = self.spec.n_classes
        probs = self.class_probs(state)
        if mode == "argmax":
            probs = F.one_hot(probs.argmax(-1), C).to(probs.dtype)
        onehot_true = F.one_hot(torch.nan_to_num(y).long(), C).to(probs.dtype)
        weights = torch.where(present.unsqueeze(-1), onehot_true, probs)
        out = []
        for c in range(C):
            value = torch.full_like(y, float(c))
            out.append((value, self.target_state(value), weights[:, c]))
        return out

    def diverged(self, state: torch.Tensor, max_abs_z: float) -> torch.Tensor:
        """Samples whose state left the data's scale (probabilities cannot)."""
        return torch.zeros(state.shape[0], dtype=torch.bool, device=state.device)

    def prior_state(self, prior: list[float], n: int, device=None) -> torch.Tensor:
        p = torch.as_tensor(prior, dtype=torch.float32, device=device)
        return p.expand(n, -1).clone()

    def to_model_value(self, state: torch.Tensor, hard: bool) -> torch.Tensor:
        """A state as a label value in model space, shape ``b``: the most probable class."""
        return state.argmax(-1).float()

    # ------------------------------------------------------------------ embedding
    def build_embedding(self, module: nn.Module, dim: int) -> None:
        """Give ``module`` the parameters of ``L(y)``: a learned row per class."""
        module.table = nn.Parameter(torch.empty(self.spec.n_classes, dim))

    def reset_embedding(self, module: nn.Module) -> None:
        nn.init.normal_(_table(module), std=1.0)

    def embed(self, module: nn.Module, state: torch.Tensor) -> torch.Tensor:
        r""":math:`L(y) = \sum_c p_c e_c` with :math:`p` the class probabilities."""
        return self.class_probs(state) @ _table(module)

    def projection(self, module: nn.Module, W_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""``(M, c)`` with ``W_y L(s) = s M + c`` for every state ``s``: the label path folded
        into one ``state_size x hidden`` matrix."""
        return _table(module) @ W_y.T, torch.zeros_like(W_y[:, 0])

    # ------------------------------------------------------------------ user values
    def to_user(self, state: np.ndarray, mean: float, std: float) -> np.ndarray:
        """A state (``n x state_size``) as the user-facing prediction: P(class 1) (binary,
        ``n``), class probabilities (multiclass, ``n x C``) or the value (``n``)."""
        return state

    def user_columns(
        self, user: np.ndarray, given: np.ndarray, cut: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Prediction-table columns for ``n`` rows from :meth:`to_user` output (NaN where there
        is no prediction) and the given values (NaN where unknown).

        The label's column holds the given value where there is one, else the prediction; the
        probability columns hold predictions only (empty on given rows, so that a ROC curve over
        the file scores predictions, not the given labels). ``cut`` is a per-row decision
        threshold (NaN: none) for kinds with :attr:`threshold_name`."""
        name = self.spec.name
        predicted = np.isnan(given)
        value = np.where(np.isnan(user).any(axis=1), np.nan, np.nanargmax(_nan0(user), axis=1))
        cols = {name: np.where(predicted, value, given)}
        for c in range(self.spec.n_classes):
            cols[f"{name}_prob_{c}"] = np.where(predicted, user[:, c], np.nan)
        return cols

    def class_columns(self) -> list[str]:
        """The columns of :meth:`user_columns` that hold classes (integers, written without
        a decimal point)."""
        return [self.spec.name]

    def metric_input(self, pred: np.ndarray) -> np.ndarray:
        """What the metrics take for this label from :meth:`to_user` output."""
        return pred

    @classmethod
    def check_predictions(cls, metric: str, y_true: np.ndarray, y_pred: np.ndarray) -> None:
        """A ``ValueError`` when ``y_pred`` (as :meth:`to_user` gives it) has the wrong shape
        or ``y_true`` values this kind cannot take."""
        _check_rows(metric, cls, y_true, y_pred, 2)
        _check_classes(metric, cls, y_true, y_pred.shape[1])


def _check_classes(metric: str, kind: type[LabelKind], y_true: np.ndarray, n: int) -> None:
    present = y_true[~np.isnan(y_true)]
    if not np.all(np.isin(present, np.arange(n))):
        raise ValueError(
            f"metric {metric!r}: y_true of a {kind.data_kind} label must hold classes 0..{n - 1}"
        )


def _nan0(a: np.ndarray) -> np.ndarray:
    return np.nan_to_num(a, nan=-np.inf)


def _check_rows(metric: str, kind: type[LabelKind], y_true, y_pred, want: int) -> None:
    if y_pred.ndim != want or len(y_pred) != len(y_true):
        shape = "n x C" if want == 2 else "n"
        raise ValueError(
            f"metric {metric!r} on a {kind.data_kind} label expects y_pred of shape {shape} "
            f"with n = {len(y_true)}, got {y_pred.shape}"
        )


class BinaryKind(LabelKind):
    name = "binary"
    data_kind = "binary"
    activation = 0
    threshold_name = "prob"
    plot = "roc_pr"

    @classmethod
    def check_classes(cls, spec: LabelSpec) -> int:
        if spec.n_classes not in (0, 2):
            raise ValueError(f"label {spec.name!r}: a binary label has 2 classes")
        return 2

    @classmethod
    def spec_from_values(cls, name, values):
        return LabelSpec(name, "binary")

    def describe(self, present: np.ndarray) -> str:
        return f"positive rate {present.mean():.1%}"

    def prior(self, present: np.ndarray) -> list[float]:
        return [float((present == 1).mean())]

    @property
    def state_size(self) -> int:
        return 1

    def to_state(self, raw):
        return torch.sigmoid(raw)

    def target_state(self, y):
        return torch.nan_to_num(y, nan=0.0).to(torch.float32).unsqueeze(-1)

    def loss(self, raw, y):
        return F.binary_cross_entropy_with_logits(raw[:, 0], y.float(), reduction="none")

    def log_prob_all(self, raw):
        return torch.cat([F.logsigmoid(-raw), F.logsigmoid(raw)], dim=-1)

    def class_probs(self, state):
        return torch.cat([1 - state, state], dim=-1)

    def to_model_value(self, state, hard):
        return (state[:, 0] >= 0.5).float() if hard else state[:, 0]

    def projection(self, module, W_y):
        rows = module.table @ W_y.T  # 2 x hidden: classes 0 and 1
        return (rows[1] - rows[0]).unsqueeze(0), rows[0]

    def to_user(self, state, mean, std):
        return state[:, 0]

    def class_columns(self):
        return [f"{self.spec.name}_class"]

    def user_columns(self, user, given, cut=None):
        """``<label>``: the given value, else P(class 1) (as chemprop writes it);
        ``<label>_prob``: P(class 1) on predicted rows only; ``<label>_class``: the given
        value, else ``P >= cut`` on rows that have a threshold (no column without one)."""
        name = self.spec.name
        predicted = np.isnan(given)
        prob = np.where(predicted, user, np.nan)
        cols = {name: np.where(predicted, user, given), f"{name}_prob": prob}
        if cut is not None:
            cut = np.broadcast_to(np.asarray(cut, dtype=np.float64), user.shape)
            hard = np.where(np.isnan(prob) | np.isnan(cut), np.nan, (prob >= cut).astype(float))
            cols[f"{name}_class"] = np.where(predicted, hard, given)
        return cols

    @classmethod
    def check_predictions(cls, metric, y_true, y_pred):
        _check_rows(metric, cls, y_true, y_pred, 1)
        _check_classes(metric, cls, y_true, 2)


class MulticlassKind(LabelKind):
    name = "multiclass"
    data_kind = "multiclass"
    activation = 1

    @classmethod
    def check_classes(cls, spec: LabelSpec) -> int:
        if spec.n_classes < 2:
            raise ValueError(f"label {spec.name!r}: multiclass needs n_classes >= 2")
        return spec.n_classes


class ValueKind(LabelKind):
    """A real value, standardised in the model; one output, MSE, no probability."""

    name = "regression"
    data_kind = "regression"
    categorical = False
    metrics = ("mape", "mae", "rmse")
    plot = "parity"
    activation = 2

    @classmethod
    def check_classes(cls, spec: LabelSpec) -> int:
        if spec.n_classes != 0:
            raise ValueError(f"label {spec.name!r}: a regression label has no classes")
        return 0

    @classmethod
    def spec_from_values(cls, name, values):
        return LabelSpec(name, "regression")

    def bad_values(self, values):
        return ~np.isnan(values) & ~np.isfinite(values)

    def allowed(self) -> str:
        return "a finite number"

    def describe(self, present):
        return f"range {present.min():.4g} .. {present.max():.4g}, mean {present.mean():.4g}"

    def scale(self, present):
        return float(present.mean()), float(present.std()) or 1.0

    def prior(self, present):
        return [0.0]  # z = 0: the training mean

    @property
    def raw_size(self) -> int:
        return 1

    @property
    def state_size(self) -> int:
        return 1

    def to_state(self, raw):
        return raw[:, :1]

    def target_state(self, y):
        return torch.nan_to_num(y, nan=0.0).to(torch.float32).unsqueeze(-1)

    def loss(self, raw, y):
        return (raw[:, 0] - y) ** 2

    @property
    def has_log_prob(self) -> bool:
        return False

    def log_prob(self, raw, value):
        raise ValueError(
            f"label {self.spec.name!r}: a plain value head has no probability; set "
            "model.gaussian=true"
        )

    def log_prob_all(self, raw):
        raise ValueError(f"label {self.spec.name!r} is a value, it has no classes")

    def class_probs(self, state):
        raise ValueError(f"label {self.spec.name!r} is a value, it has no classes")

    def support(self, y, present, state, mode):
        """One point, the known or imputed standardised value, weight 1."""
        value = torch.where(present, torch.nan_to_num(y), state[:, 0])
        return [(value, value.unsqueeze(-1), torch.ones_like(value))]

    def diverged(self, state, max_abs_z):
        return ~torch.isfinite(state[:, 0]) | (state[:, 0].abs() > max_abs_z)

    def prior_state(self, prior, n, device=None):
        return torch.zeros(n, 1, device=device)

    def to_model_value(self, state, hard):
        return state[:, 0]

    def build_embedding(self, module, dim):
        module.linear = nn.Linear(1, dim)

    def reset_embedding(self, module):
        module.linear.reset_parameters()

    def embed(self, module, state):
        return module.linear(state)

    def projection(self, module, W_y):
        lin = module.linear
        return (W_y @ lin.weight).T, W_y @ lin.bias

    def to_user(self, state, mean, std):
        return state[:, 0] * std + mean

    def user_columns(self, user, given, cut=None):
        return {self.spec.name: np.where(np.isnan(given), user, given)}

    def class_columns(self):
        return []

    @classmethod
    def check_predictions(cls, metric, y_true, y_pred):
        _check_rows(metric, cls, y_true, y_pred, 1)


class GaussianValueKind(ValueKind):
    """A value with mean and log-variance heads: Gaussian NLL, so it has a log-probability."""

    name = "gaussian"

    @property
    def raw_size(self) -> int:
        return 2

    def loss(self, raw, y):
        return -self.log_prob(raw, y)

    @property
    def has_log_prob(self) -> bool:
        return True

    def log_prob(self, raw, value):
        mean, log_var = raw[:, 0], raw[:, 1].clamp(-10.0, 10.0)
        return -0.5 * (LOG_2PI + log_var + (value - mean) ** 2 / log_var.exp())


#: the registry: ``LabelKind.name`` → class
_KINDS: dict[str, type[LabelKind]] = {}


def register_kind(cls: type[LabelKind]) -> type[LabelKind]:
    """Add a label kind to the registry under ``cls.name``."""
    if cls.name in _KINDS:
        raise ValueError(f"label kind {cls.name!r} is already registered")
    _KINDS[cls.name] = cls
    return cls


for _cls in (BinaryKind, MulticlassKind, ValueKind, GaussianValueKind):
    register_kind(_cls)


def kind_names() -> tuple[str, ...]:
    return tuple(_KINDS)


def label_kind(spec: LabelSpec, gaussian: bool = False) -> LabelKind:
    """The behaviour of ``spec`` in a model; ``gaussian`` gives value labels mean and
    log-variance heads (``model.gaussian``)."""
    name = "gaussian" if gaussian and spec.kind == "regression" else spec.kind
    return _KINDS[name](spec)


def kind_class(name: str) -> type[LabelKind]:
    """The registered label kind ``name`` (a ``KeyError`` naming the known ones)."""
    try:
        return _KINDS[name]
    except KeyError:
        raise KeyError(f"unknown label kind {name!r}; known: {', '.join(_KINDS)}") from None


def make_spec(name: str, kind: str, values: np.ndarray) -> LabelSpec:
    """The spec of column ``name`` of the given data kind (``data.label_kinds``); a
    multiclass label takes its number of classes from the present values."""
    if kind not in LABEL_KINDS:
        raise ValueError(f"label {name!r}: kind {kind!r} is not one of {', '.join(LABEL_KINDS)}")
    return _KINDS[kind].spec_from_values(name, values)


#: share of a column's present values that makes it a 0/1 (or class) column whose other
#: values are strays to report, not evidence of another kind
STRAY_SHARE = 0.02


def infer_label_spec(name: str, values: np.ndarray, row_offset: int = 1) -> LabelSpec:
    """Guess a label's kind from its present values: {0,1} → binary, small non-negative
    integers → multiclass, anything else → regression.

    A column that is 0/1 (or small classes) but for a few values — at most
    :data:`STRAY_SHARE` of them, such as one ``-1`` or one ``2`` — is an error naming the
    first such row (``row_offset`` is added to its position): one stray cell must not turn
    an assay into a regression or three-class label. ``data.label_kinds`` settles it.
    """
    v = values[~np.isnan(values)]
    if v.size == 0:
        raise ValueError(f"label column {name!r} has no present value (all missing)")
    candidates = (  # (the spec if every value fits, what fits, which values fit)
        (lambda: LabelSpec(name, "binary"), "0/1", np.isin(values, (0.0, 1.0))),
        (lambda: LabelSpec(name, "multiclass", int(v.max()) + 1),
         f"classes 0 to {MAX_INFERRED_CLASSES - 1}",
         (values == np.round(values)) & (values >= 0) & (values < MAX_INFERRED_CLASSES)),
    )  # fmt: skip
    for spec, what, inside in candidates:
        n_in = int(inside.sum())  # NaN fits neither
        if n_in == v.size:
            return spec()
        if n_in >= (1 - STRAY_SHARE) * v.size:
            i = int(np.flatnonzero(~inside & ~np.isnan(values))[0])
            raise ValueError(
                f"label column {name!r} holds {what} in {n_in} of its {v.size} present rows, "
                f"but row {i + row_offset} holds {values[i]:g}; fix that cell (leave it empty "
                f"if the label is unknown there), or set data.label_kinds to this label's kind "
                f"(binary, multiclass or regression) to use the column as it is"
            )
    return LabelSpec(name, "regression")


def check_two_labels(names: Sequence[str]) -> None:
    """A ``ValueError`` unless ``names`` are two labels: training, tuning and the benchmarks
    take two today (``molddl data describe`` takes any number; K labels: docs/K_LABELS.md)."""
    if len(names) != 2:
        raise ValueError(
            f"data.labels: dual-label learning trains on two labels, got {len(names)} "
            f"({', '.join(map(str, names))}); 'molddl data describe' shows any number of them"
        )


def check_learnable(spec: LabelSpec, values: np.ndarray) -> None:
    """A ``ValueError`` when a class label of training data holds a single class: nothing
    can be learnt from it, and its ROC-AUC would be undefined."""
    if not label_kind(spec).categorical:
        return
    classes = np.unique(values[~np.isnan(values)])
    if classes.size == 1:
        raise ValueError(
            f"label column {spec.name!r} holds only the value {classes[0]:g} in its "
            f"{int((~np.isnan(values)).sum())} present rows; a {spec.kind} label needs at "
            f"least two classes to learn from"
        )


def check_label_values(
    spec: LabelSpec, values: np.ndarray, row_offset: int = 0, allow_empty: bool = False
) -> None:
    """Raise a ``ValueError`` naming the first row whose value does not fit ``spec``.

    ``row_offset`` is added to positions so that messages name rows of the user's file
    (e.g. 2 for a CSV with a header, counting lines from 1). A column with no present value
    is an error unless ``allow_empty`` (data to predict may know no label at all).
    """
    present = ~np.isnan(values)
    if not present.any() and not allow_empty:
        raise ValueError(f"label column {spec.name!r} has no present value (all missing)")
    kind = label_kind(spec)
    bad = kind.bad_values(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"label column {spec.name!r}, row {i + row_offset}: value {values[i]!r} is not "
            f"{kind.allowed()} ({spec.kind} label); leave the cell empty for a missing label"
        )
