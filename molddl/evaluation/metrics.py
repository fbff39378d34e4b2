"""The metric registry (SPEC §6): F1, ROC-AUC, PR-AUC for classes; MAPE, MAE, RMSE for values.

Every metric takes the truth of one label, shape ``n`` (NaN = missing, ignored), and the
predictions for it: for a binary label the probability of class 1, shape ``n``; for a
multiclass label class probabilities, shape ``n x C``; for a regression label values, shape
``n``. A metric that is undefined on the given rows (no rows, one class only) is NaN.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    mean_absolute_error,
    precision_recall_curve,
    roc_auc_score,
    root_mean_squared_error,
)

from molddl.data.labels import LABEL_KINDS, LabelSpec, kind_class, label_kind

log = logging.getLogger(__name__)

MetricFn = Callable[[np.ndarray, np.ndarray, float], float]


@dataclass(frozen=True, slots=True)
class Metric:
    """One registered metric.

    Attributes
    ----------
    name
        Registry key, e.g. ``"roc_auc"``.
    kinds
        The label kinds it applies to (``"binary"``, ``"multiclass"``, ``"regression"``).
    higher_is_better
        Whether a larger value is a better model (for model selection and tuning).
    fn
        ``fn(y_true, y_pred, threshold) -> float`` on rows with known truth only; ``y_true``
        has shape ``n``, ``y_pred`` shape ``n`` or ``n x C``; ``threshold`` is used by F1 only.
    """

    name: str
    kinds: tuple[str, ...]
    higher_is_better: bool
    fn: MetricFn


METRICS: dict[str, Metric] = {}


def register(
    name: str, kinds: tuple[str, ...], higher_is_better: bool
) -> Callable[[MetricFn], MetricFn]:
    """Decorator adding ``fn`` to :data:`METRICS` under ``name``."""
    unknown = set(kinds) - set(LABEL_KINDS)
    if unknown:
        raise ValueError(f"metric {name!r}: unknown label kinds {sorted(unknown)}")

    def decorator(fn: MetricFn) -> MetricFn:
        if name in METRICS:
            raise ValueError(f"metric {name!r} is already registered")
        METRICS[name] = Metric(name, tuple(kinds), higher_is_better, fn)
        return fn

    return decorator


def metrics_for(spec: LabelSpec) -> list[str]:
    """The SPEC §6 metric names for a label: classes F1, ROC-AUC, PR-AUC; values MAPE, MAE, RMSE."""
    return list(label_kind(spec).metrics)


def get_metric(name: str) -> Metric:
    """The registered metric ``name``; a ``KeyError`` listing the known names otherwise."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(sorted(METRICS))}") from None


def compute(
    name: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    threshold: float = 0.5,
    kind: str | None = None,
) -> float:
    """Metric ``name`` of predictions ``y_pred`` against ``y_true``, ignoring NaN truth.

    Parameters
    ----------
    name
        A key of :data:`METRICS`.
    y_true
        Truth, shape ``n``; NaN rows are left out.
    y_pred
        Class-1 probabilities (binary, shape ``n``), class probabilities (multiclass,
        shape ``n x C``) or values (regression, shape ``n``).
    threshold
        Probability at or above which a binary prediction counts as class 1 (F1 only).
    kind
        The label kind; by default multiclass for a 2-D ``y_pred``, else binary for a class
        metric and regression for a value metric. Pass it to have misuse caught, e.g.
        ``compute("mape", ..., kind="binary")`` raises.

    Returns
    -------
    float
        The value, or NaN when undefined on the remaining rows (logged at debug level).
    """
    metric = get_metric(name)
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if kind is None:  # a 2-D prediction is over classes; else the metric's first kind
        kind = "multiclass" if y_pred.ndim == 2 else metric.kinds[0]
    if kind not in metric.kinds:
        raise ValueError(
            f"metric {name!r} does not apply to a {kind} label (it applies to "
            f"{', '.join(metric.kinds)})"
        )
    kind_class(kind).check_predictions(name, y_true, y_pred)
    keep = ~np.isnan(y_true)
    y_true, y_pred = y_true[keep], y_pred[keep]
    if np.isnan(y_pred).any():
        raise ValueError(f"metric {name!r}: y_pred is NaN on a row with known truth")
    if y_true.size == 0:
        log.debug("metric %s undefined: no row with known truth", name)
        return float("nan")
    return float(metric.fn(y_true, y_pred, threshold))


def _both_classes(name: str, y: np.ndarray) -> bool:
    ok = 0 < y.sum() < y.size
    if not ok:
        log.debug("metric %s undefined: one class only in y_true", name)
    return bool(ok)


def _one_vs_rest(name: str, score: Callable, y_true: np.ndarray, P: np.ndarray) -> float:
    """Binary ``score`` (binary label) or its macro mean over classes (multiclass, one-vs-rest).

    A class absent from, or alone in, ``y_true`` is left out of the mean.
    """
    if P.ndim == 1:
        return float(score(y_true, P)) if _both_classes(name, y_true) else float("nan")
    per_class = [
        score(y_true == c, P[:, c])
        for c in range(P.shape[1])
        if 0 < (y_true == c).sum() < y_true.size
    ]
    if not per_class:
        log.debug("metric %s undefined: fewer than two classes in y_true", name)
        return float("nan")
    return float(np.mean(per_class))


@register("f1", ("binary", "multiclass"), higher_is_better=True)
def f1(y_true: np.ndarray, y_pred: np.ndarray, threshold: float) -> float:
    """F1 of class 1 with ``y_pred >= threshold`` (binary), or macro F1 of the arg-max class
    over the classes in truth or prediction (multiclass). NaN when no positive is in truth
    or prediction (binary)."""
    if y_pred.ndim == 2:
        return float(f1_score(y_true, y_pred.argmax(axis=1), average="macro", zero_division=0))
    value = f1_score(y_true, (y_pred >= threshold).astype(float), zero_division=np.nan)
    if np.isnan(value):
        log.debug("metric f1 undefined: no positive in truth or prediction")
    return float(value)


@register("roc_auc", ("binary", "multiclass"), higher_is_better=True)
def roc_auc(y_true: np.ndarray, y_pred: np.ndarray, threshold: float) -> float:
    """Area under the ROC curve; one-vs-rest macro mean for a multiclass label."""
    return _one_vs_rest("roc_auc", roc_auc_score, y_true, y_pred)


@register("pr_auc", ("binary", "multiclass"), higher_is_better=True)
def pr_auc(y_true: np.ndarray, y_pred: np.ndarray, threshold: float) -> float:
    """Area under the precision-recall curve as average precision
    ``sum_k (R_k - R_{k-1}) P_k``; one-vs-rest macro mean for a multiclass label."""
    return _one_vs_rest("pr_auc", average_precision_score, y_true, y_pred)


@register("mape", ("regression",), higher_is_better=False)
def mape(y_true: np.ndarray, y_pred: np.ndarray, threshold: float) -> float:
    """Mean absolute percentage error in percent, ``100 * mean(|y - p| / |y|)``.

    Rows with ``y == 0`` are left out (their relative error is undefined); NaN if none is left.
    """
    keep = y_true != 0
    if not keep.any():
        log.debug("metric mape undefined: every y_true is 0")
        return float("nan")
    return float(100.0 * np.mean(np.abs(y_true[keep] - y_pred[keep]) / np.abs(y_true[keep])))


@register("mae", ("regression",), higher_is_better=False)
def mae(y_true: np.ndarray, y_pred: np.ndarray, threshold: float) -> float:
    """Mean absolute error ``mean(|y - p|)``."""
    return float(mean_absolute_error(y_true, y_pred))


@register("rmse", ("regression",), higher_is_better=False)
def rmse(y_true: np.ndarray, y_pred: np.ndarray, threshold: float) -> float:
    """Root mean squared error ``sqrt(mean((y - p)^2))``."""
    return float(root_mean_squared_error(y_true, y_pred))


def choose_threshold(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """The cut ``t`` maximising the F1 of ``y_prob >= t`` (binary label, validation data).

    Parameters
    ----------
    y_true
        Truth in {0, 1}, shape ``n``; NaN rows are left out.
    y_prob
        Probabilities of class 1, shape ``n``.

    Returns
    -------
    float
        One of the predicted probabilities (ties go to the lowest); 0.5 with a warning when
        ``y_true`` holds no positive.
    """
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    y_prob = np.asarray(y_prob, dtype=np.float64)
    kind_class("binary").check_predictions("f1", y_true, y_prob)
    keep = ~np.isnan(y_true)
    y_true, y_prob = y_true[keep], y_prob[keep]
    if not (y_true == 1).any():
        log.warning("choose_threshold: no positive in y_true, keeping threshold 0.5")
        return 0.5
    P, R, T = precision_recall_curve(y_true, y_prob)
    P, R = P[: len(T)], R[: len(T)]
    denom = P + R
    F = np.divide(2 * P * R, denom, out=np.zeros_like(denom), where=denom > 0)
    return float(T[np.argmax(F)])
