"""Decision thresholds of binary labels: where a probability becomes a hard 0/1 call.

A prediction table always carries probabilities; a hard label (``<label>_class``) is added
only at a threshold that was chosen on the validation part when the model was trained, or
that the user gives. Imbalanced assays are why 0.5 is never assumed: on Tox21's SR-ARE a
cut at 0.5 calls no compound positive.

A row's threshold depends on how it was predicted, because the two inputs give
probabilities on different scales (SPEC §6):

=============================  ==========================================================
row ``<label>_source``         threshold chosen on the validation predictions of
=============================  ==========================================================
``direct``                     the Single task (the partner label revealed)
``alternate``, ``marginal``    the Double task (nothing revealed)
=============================  ==========================================================

Each is the F1-optimal cut (:func:`~molddl.evaluation.metrics.choose_threshold`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from molddl.data.dataset import DualLabelDataset
from molddl.data.labels import LabelSpec
from molddl.evaluation.reveal import Predictor, task_labels, tuned_thresholds

#: label name → {"direct": t, "alternate": t}; a label without a threshold is absent
Thresholds = dict[str, dict[str, float]]

#: the reveal task (its name's prefix) whose validation predictions choose each source's cut
_TASK_OF_SOURCE = {"direct": "Single", "alternate": "Double"}
#: the threshold a row's ``<label>_source`` uses
_CUT_OF_SOURCE = {"direct": "direct", "alternate": "alternate", "marginal": "alternate"}


def choose(predict: Predictor, val: DualLabelDataset) -> Thresholds:
    """The F1-optimal thresholds of every binary label on the validation part ``val``,
    per source; labels (or sources) that ``val`` cannot score (no sample with both labels,
    no positive) get none."""
    per_task = tuned_thresholds(predict, val)
    tasks = task_labels(len(val.labels))
    out: Thresholds = {}
    for source, prefix in _TASK_OF_SOURCE.items():
        for task, k in tasks.items():
            if task.startswith(prefix + "-") and task in per_task:
                out.setdefault(val.labels[k].name, {})[source] = per_task[task]
    return out


def per_task(thresholds: Thresholds, labels: Sequence[LabelSpec]) -> dict[str, float]:
    """The reveal-task thresholds ``thresholds`` stand for (the inverse of :func:`choose`),
    as :func:`~molddl.evaluation.reveal.evaluate` takes them."""
    out: dict[str, float] = {}
    for task, k in task_labels(len(labels)).items():
        for source, prefix in _TASK_OF_SOURCE.items():
            cut = thresholds.get(labels[k].name, {}).get(source)
            if task.startswith(prefix + "-") and cut is not None:
                out[task] = cut
    return out


def parse(values: Sequence[str], labels: Sequence[LabelSpec]) -> dict[str, float]:
    """User thresholds from ``--threshold`` values: ``0.3`` (every binary label) or
    ``NAME=0.3`` (one label); label name → threshold. An error names the bad value."""
    binary = [s.name for s in labels if s.behaviour.threshold_name is not None]
    out: dict[str, float] = {}
    for value in values:
        name, sep, number = value.rpartition("=")
        try:
            t = float(number)
        except ValueError:
            raise ValueError(
                f"--threshold {value!r}: expected a number in (0, 1), or LABEL=NUMBER"
            ) from None
        if not 0.0 < t < 1.0:
            raise ValueError(f"--threshold {value!r}: {t:g} is not in (0, 1)")
        if not sep:
            if not binary:
                raise ValueError(f"--threshold {value!r}: the model has no binary label")
            out.update(dict.fromkeys(binary, t))
            continue
        if name not in binary:
            known = ", ".join(binary) or "none"
            what = "is not a binary label" if name in {s.name for s in labels} else "is unknown"
            raise ValueError(
                f"--threshold {value!r}: label {name!r} {what}; binary labels: {known}"
            )
        out[name] = t
    return out


def merged(chosen: Thresholds, given: Mapping[str, float] | None) -> Thresholds:
    """``chosen`` with the user's ``given`` thresholds (one per label, every source) on top."""
    out = {name: dict(cuts) for name, cuts in chosen.items()}
    for name, t in (given or {}).items():
        out[name] = dict.fromkeys(_TASK_OF_SOURCE, float(t))
    return out


def row_cuts(cuts: Mapping[str, float] | None, source: np.ndarray) -> np.ndarray | None:
    """The threshold of each row of one label by its ``source`` (NaN for given rows, rows
    without a prediction and sources without a threshold); ``None`` without any threshold."""
    if not cuts:
        return None
    out = np.full(len(source), np.nan)
    for src, key in _CUT_OF_SOURCE.items():
        if key in cuts:
            out[source == src] = cuts[key]
    return out


def to_payload(thresholds: Thresholds) -> dict[str, dict[str, float]]:
    """For the model file (plain floats)."""
    return {n: {s: float(t) for s, t in c.items()} for n, c in thresholds.items()}


def from_payload(payload: object, labels: Sequence[LabelSpec]) -> Thresholds:
    """Thresholds read from a model file; absent in files written before they existed."""
    if payload is None:
        return {}
    names = {s.name for s in labels}
    if not isinstance(payload, dict) or not all(
        n in names and isinstance(c, dict) and set(c) <= set(_TASK_OF_SOURCE)
        for n, c in payload.items()
    ):
        raise ValueError(f"damaged decision thresholds: {payload!r:.200}")
    return {n: {s: float(t) for s, t in c.items()} for n, c in payload.items()}
