"""The predictions behind the reveal table (SPEC §6), row by row: ``test_predictions.csv`` of
``molddl train``.

Each reveal mode of :mod:`molddl.evaluation.reveal` hides its labels on every row and has them
predicted as ``molddl predict`` would (the table of
:func:`~molddl.inference.table.prediction_table`); the hidden labels' columns are kept under
the task's name: ``Single-y1/<label 1>``, ``Single-y1/<label 1>_prob``,
``Single-y1/<label 1>_source``, ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from molddl.data.dataset import DualLabelDataset
from molddl.evaluation.reveal import HIDDEN, REVEAL_MODES, task_name

#: ``DualLabelModel.predict``: a dataset (unknown labels NaN) -> its prediction table
TablePredictor = Callable[[DualLabelDataset], pd.DataFrame]


def mode_title(mode: str) -> str:
    """The column prefix of a mode's shared columns (``iterations``, ``converged``): its
    task's name when it hides one label (``Single-y1``), else ``Double``."""
    hidden = HIDDEN[mode]
    return task_name(mode, hidden[0]) if len(hidden) == 1 else mode.capitalize()


def label_columns(table: pd.DataFrame, data: DualLabelDataset, k: int) -> list[str]:
    """The columns of label ``k`` in a prediction table of ``data``: those after the
    previous label's ``_source`` column (after ``id`` / ``smiles`` for the first label), up
    to and with its own ``<label>_source``."""
    columns = list(table.columns)
    end = columns.index(f"{data.labels[k].name}_source")
    if k > 0:
        start = columns.index(f"{data.labels[k - 1].name}_source") + 1
    else:
        start = columns.index("smiles" if data.smiles is not None else "id") + 1
    return columns[start : end + 1]


def reveal_predictions(
    predict: TablePredictor, data: DualLabelDataset, modes: Sequence[str] = REVEAL_MODES
) -> pd.DataFrame:
    """Every row of ``data`` with its true labels and each reveal task's predictions.

    Columns: ``id`` (and ``smiles``), the true value of every label (empty where unknown),
    then per mode the hidden labels' prediction columns prefixed by the task's name
    (``Single-y1/SR-ARE``, ``Single-y1/SR-ARE_prob``, ``Single-y1/SR-ARE_source``: ``direct``
    where the other label is known, ``alternate`` where it is not) and the mode's
    ``iterations`` and ``converged`` (``Single-y1/iterations``, ``Double/converged``).

    Rows with a missing label are predicted too; the reveal table scores only rows with all
    labels, which are the rows of this file where every true label is filled in.
    """
    cols: dict[str, object] = {"id": data.ids}
    if data.smiles is not None:
        cols["smiles"] = data.smiles
    for k, spec in enumerate(data.labels):
        cols[spec.name] = data.y[:, k]
    for mode in modes:
        hidden = HIDDEN[mode]
        y = data.y.copy()
        y[:, list(hidden)] = np.nan
        table = predict(data.with_labels(y))
        for k in hidden:
            task = task_name(mode, k)
            for c in label_columns(table, data, k):
                cols[f"{task}/{c}"] = table[c].to_numpy()
        title = mode_title(mode)
        cols[f"{title}/iterations"] = table["iterations"].to_numpy()
        cols[f"{title}/converged"] = table["converged"].to_numpy()
    return pd.DataFrame(cols)
