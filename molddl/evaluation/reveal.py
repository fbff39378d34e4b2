"""Reveal-mode evaluation (SPEC §6), the one evaluator for DLL and every baseline.

Test samples that have all labels are scored in each reveal mode: some labels are shown to
the model as inputs, the others are hidden, predicted and scored against the truth.

==============  ===========  ===========  ========================
mode            revealed     predicted    tasks
==============  ===========  ===========  ========================
``single_y1``   y2           y1           ``Single-y1``
``single_y2``   y1           y2           ``Single-y2``
``double``      nothing      y1, y2       ``Double-y1``, ``Double-y2``
==============  ===========  ===========  ========================
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from molddl.data.dataset import DualLabelDataset
from molddl.evaluation.metrics import choose_threshold, compute, metrics_for

log = logging.getLogger(__name__)

#: Label indices each mode hides (and scores); K > 2 labels would only add entries here.
HIDDEN: dict[str, tuple[int, ...]] = {
    "single_y1": (0,),
    "single_y2": (1,),
    "double": (0, 1),
}
REVEAL_MODES: tuple[str, ...] = tuple(HIDDEN)

Predictor = Callable[[DualLabelDataset], list[np.ndarray]]

#: validation-tuned thresholds: one per label (every task of that label), or per task name
Thresholds = Sequence[float | None] | Mapping[str, float | None]


def task_name(mode: str, k: int) -> str:
    """The SPEC name of scoring label ``k`` in reveal mode ``mode``, e.g. ``"Single-y1"``."""
    return f"{mode.split('_')[0].capitalize()}-y{k + 1}"


def task_labels(n_labels: int) -> dict[str, int]:
    """Every task name of :data:`REVEAL_MODES` for ``n_labels`` labels -> its label index."""
    return {
        task_name(mode, k): k for mode, hidden in HIDDEN.items() for k in hidden if k < n_labels
    }


@dataclass(frozen=True, slots=True, eq=False)
class RevealTask:
    """The input and the answer of one reveal mode.

    Attributes
    ----------
    mode
        One of :data:`REVEAL_MODES`.
    rows
        Positions, in the given label array, of the samples with all labels, shape ``m``.
    revealed
        Labels shown to the model, shape ``m x K``; NaN where hidden.
    truth
        All labels of those samples, shape ``m x K``.
    scored
        Indices of the hidden labels, which are predicted and scored.
    """

    mode: str
    rows: np.ndarray
    revealed: np.ndarray
    truth: np.ndarray
    scored: tuple[int, ...]

    def task_name(self, k: int) -> str:
        """The SPEC name of scoring label ``k`` in this mode, e.g. ``"Single-y1"``."""
        if k not in self.scored:
            raise ValueError(f"label {k} is revealed, not scored, in mode {self.mode!r}")
        return task_name(self.mode, k)


def reveal(y: np.ndarray, mode: str) -> RevealTask:
    """Hide the labels of ``mode`` on the samples of ``y`` that have all labels.

    Parameters
    ----------
    y
        Labels, shape ``n x K`` with NaN for missing; not modified.
    mode
        One of :data:`REVEAL_MODES`.
    """
    if mode not in HIDDEN:
        raise ValueError(f"unknown reveal mode {mode!r}; expected one of {', '.join(REVEAL_MODES)}")
    y = np.asarray(y, dtype=np.float64)
    hidden = HIDDEN[mode]
    if y.ndim != 2 or y.shape[1] <= max(hidden):
        raise ValueError(f"mode {mode!r} needs labels of shape n x K with K > {max(hidden)}")
    rows = np.flatnonzero(~np.isnan(y).any(axis=1))
    if rows.size == 0:
        raise ValueError("no sample has all labels; reveal-mode evaluation needs some")
    truth = y[rows].copy()
    revealed = truth.copy()
    revealed[:, list(hidden)] = np.nan
    return RevealTask(mode=mode, rows=rows, revealed=revealed, truth=truth, scored=hidden)


def evaluate(
    predict: Predictor,
    data: DualLabelDataset,
    *,
    modes: Sequence[str] = REVEAL_MODES,
    thresholds: Thresholds | None = None,
    metrics: dict[int, list[str]] | None = None,
) -> pd.DataFrame:
    """Score ``predict`` on ``data`` in each reveal mode.

    Parameters
    ----------
    predict
        Takes a dataset whose hidden labels are NaN and returns one array per label for
        every row: class-1 probabilities (binary, shape ``m``), class probabilities
        (multiclass, ``m x C``) or values (regression, ``m``). Only hidden labels are scored.
    data
        Test samples; those without all labels are skipped.
    modes
        Reveal modes to run, a subset of :data:`REVEAL_MODES`.
    thresholds
        Validation-tuned thresholds: a sequence with one per label (``None`` for none),
        used in every task of that label, or a mapping from task name (``"Single-y1"``,
        ``"Double-y1"``, ...) to a threshold, so that each task has its own (a Double task
        predicts without the partner label, on another scale). A binary task with one is
        also scored as ``f1_tuned``, the F1 at that threshold.
    metrics
        Per label index, metric names replacing :func:`metrics_for` of that label.

    Returns
    -------
    pandas.DataFrame
        One row per task and metric, columns ``task, label, metric, value, n, threshold``;
        ``threshold`` is set on ``f1_tuned`` rows and NaN on the others.
    """
    K = len(data.labels)
    unknown = [m for m in modes if m not in HIDDEN]
    if unknown:
        raise ValueError(
            f"unknown reveal modes {unknown}; expected some of {', '.join(REVEAL_MODES)}"
        )
    names = _metric_names(data, metrics or {})
    tuned = _tuned_thresholds(data, thresholds)
    records: list[dict[str, object]] = []
    for mode in modes:
        task = reveal(data.y, mode)
        preds = predict(data.subset(task.rows).with_labels(task.revealed))
        if len(preds) != K:
            raise ValueError(f"predict returned {len(preds)} arrays, expected one per label ({K})")
        for k in task.scored:
            spec = data.labels[k]
            y_true, y_pred = task.truth[:, k], np.asarray(preds[k])
            task_name = task.task_name(k)
            row = {"task": task_name, "label": spec.name, "n": len(task.rows)}
            scored: list[dict[str, Any]] = [
                {**row, "metric": name, "threshold": np.nan,
                 "value": compute(name, y_true, y_pred, kind=spec.kind)}
                for name in names[k]
            ]  # fmt: skip
            cut = tuned.get(task_name)
            if cut is not None:
                value = compute("f1", y_true, y_pred, threshold=cut, kind=spec.kind)
                scored.append({**row, "metric": "f1_tuned", "value": value, "threshold": cut})
            undefined = [r["metric"] for r in scored if np.isnan(r["value"])]
            if undefined:
                log.warning(
                    "%s %s: %s undefined (NaN): %s",
                    task_name, spec.name, ", ".join(undefined), _why_undefined(y_true),
                )  # fmt: skip
            records.extend(scored)
        log.debug("evaluated mode %s on %d samples", mode, len(task.rows))
    columns = ["task", "label", "metric", "value", "n", "threshold"]
    return pd.DataFrame.from_records(records, columns=columns)


def tuned_thresholds(predict: Predictor, val: DualLabelDataset) -> dict[str, float]:
    """Per task of a binary label, the F1-optimal threshold on the validation part's
    predictions in that task's own reveal mode: a Single task's on single-reveal
    predictions, a Double task's on predictions with nothing revealed (another input, so
    probabilities on another scale). Keyed by task name, as :func:`evaluate` takes them."""
    out: dict[str, float] = {}
    binary = [spec.behaviour.threshold_name is not None for spec in val.labels]
    for mode in REVEAL_MODES:
        try:
            task = reveal(val.y, mode)
        except ValueError:  # no validation sample with both labels
            return out
        scored = [k for k in task.scored if binary[k]]
        if not scored:
            continue
        preds = predict(val.subset(task.rows).with_labels(task.revealed))
        for k in scored:
            out[task.task_name(k)] = choose_threshold(task.truth[:, k], preds[k])
    return out


def _why_undefined(y_true: np.ndarray) -> str:
    """Why a metric of these truth values can be undefined, for the user."""
    present = y_true[~np.isnan(y_true)]
    if present.size == 0:
        return "no sample of the task has a known value of this label"
    classes = np.unique(present)
    if classes.size == 1:
        return (
            f"all {present.size} samples hold the value {classes[0]:g}; ROC-AUC and PR-AUC "
            f"need both classes, F1 needs a positive"
        )
    return f"not defined on these {present.size} samples"


def _metric_names(data: DualLabelDataset, metrics: dict[int, list[str]]) -> list[list[str]]:
    """Metric names per label, checked before any prediction is made."""
    extra = set(metrics) - set(range(len(data.labels)))
    if extra:
        raise ValueError(
            f"metrics names label indices {sorted(extra)}; labels are 0..{len(data.labels) - 1}"
        )
    names = []
    for k, spec in enumerate(data.labels):
        chosen = list(metrics.get(k, metrics_for(spec)))
        for name in chosen:
            if name not in spec.behaviour.metrics:
                raise ValueError(
                    f"metric {name!r} does not apply to {spec.kind} label {spec.name!r}"
                )
        names.append(chosen)
    return names


def _tuned_thresholds(data: DualLabelDataset, thresholds: Thresholds | None) -> dict[str, float]:
    """Task name -> threshold, for the tasks that have one, checked before any prediction."""
    K = len(data.labels)
    tasks = task_labels(K)
    if thresholds is None:
        return {}
    if isinstance(thresholds, Mapping):
        unknown = [t for t in thresholds if t not in tasks]
        if unknown:
            raise ValueError(
                f"thresholds name unknown task {unknown[0]!r}; tasks are {', '.join(tasks)}"
            )
        per_task = dict(thresholds)
    else:
        if len(thresholds) != K:
            raise ValueError(
                f"thresholds has {len(thresholds)} entries, expected one per label ({K})"
            )
        per_task = {t: thresholds[k] for t, k in tasks.items()}
    out: dict[str, float] = {}
    for task, t in per_task.items():
        spec = data.labels[tasks[task]]
        if t is None:
            continue
        if spec.behaviour.threshold_name is None:
            raise ValueError(f"a threshold is given for {spec.kind} label {spec.name!r}")
        out[task] = float(t)
    return out
