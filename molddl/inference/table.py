"""The result table of a prediction: one row per input sample, none dropped."""

from __future__ import annotations

import numpy as np
import pandas as pd

from molddl.data.dataset import DualLabelDataset
from molddl.data.preprocess import Preprocessor
from molddl.inference.predict import Prediction
from molddl.inference.thresholds import Thresholds, row_cuts


def prediction_table(
    pre: Preprocessor,
    data: DualLabelDataset,
    pred: Prediction,
    positions: np.ndarray,
    thresholds: Thresholds | None = None,
) -> pd.DataFrame:
    """``id`` (and ``smiles``), then per label the columns of its kind
    (:meth:`~molddl.data.labels.LabelKind.user_columns`: the given value or the prediction;
    ``<label>_prob`` and, at a decision threshold, ``<label>_class`` for binary labels;
    ``<label>_prob_<c>`` for multiclass) and ``<label>_source``; then ``iterations``,
    ``converged`` and ``error``.

    ``pred`` holds the samples at ``positions`` of ``data``; the others had an invalid
    SMILES and get an error and no prediction. Known labels are returned as given.
    ``thresholds`` (:mod:`molddl.inference.thresholds`) cut each row by its source."""
    n = len(data)
    cols: dict[str, object] = {"id": data.ids}
    if data.smiles is not None:
        cols["smiles"] = data.smiles
    users = pre.arrays_from_states(pred.states, positions, n)
    for k, kind in enumerate(pre.kinds):
        given = data.y[:, k]
        src = np.full(n, "", dtype=object)
        src[positions] = pred.source[:, k]
        src[~np.isnan(given)] = "given"
        cuts = row_cuts((thresholds or {}).get(kind.spec.name), src)
        cols.update(kind.user_columns(users[k], given, cuts))
        cols[f"{kind.spec.name}_source"] = src
    iters = np.zeros(n, dtype=np.int64)
    conv = np.zeros(n, dtype=bool)
    iters[positions], conv[positions] = pred.iterations, pred.converged
    cols["iterations"], cols["converged"] = iters, conv
    err = np.full(n, "", dtype=object)
    unpredicted = np.setdiff1d(np.arange(n), positions)
    err[unpredicted] = "invalid SMILES"
    if data.smiles is not None:  # an empty cell (or an SDF record RDKit cannot read)
        err[unpredicted[data.smiles[unpredicted] == ""]] = "no molecule (empty SMILES)"
    cols["error"] = err
    return pd.DataFrame(cols)
