"""Conversion to and from DeepChem datasets.

DeepChem marks a missing label as ``y = 0`` with weight ``w = 0``; molddl keeps it as NaN.
The conversion happens here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from molddl.data.dataset import DualLabelDataset
from molddl.data.labels import LabelSpec, infer_label_spec


def to_deepchem(data: DualLabelDataset):
    """A ``deepchem.data.NumpyDataset``: ``y`` with NaN → 0 and ``w = 0`` where missing.

    ``X`` is the feature matrix for tabular / fingerprint data, DeepChem ``GraphData``
    objects for featurized graphs, else the SMILES. ``ids`` are the sample ids.
    """
    import deepchem as dc
    from deepchem.feat.graph_data import GraphData

    if data.X is not None:
        X = data.X
    elif data.graphs is not None:
        X = np.empty(len(data), dtype=object)
        for i in range(len(data)):
            g = data.graphs[i]
            X[i] = GraphData(
                node_features=g.x.numpy(),
                edge_index=g.edge_index.numpy(),
                edge_features=g.edge_attr.numpy(),
            )
    else:
        X = np.asarray(data.smiles, dtype=object)
    w = data.mask.astype(np.float32)
    y = np.where(data.mask, data.y, 0.0)
    return dc.data.NumpyDataset(X=X, y=y, w=w, ids=np.asarray(data.ids), n_tasks=y.shape[1])


def from_deepchem(
    dataset,
    labels: Sequence[str | LabelSpec] | None = None,
    *,
    smiles: Sequence[str] | None = None,
    ids_are_smiles: bool = False,
    name: str = "deepchem",
) -> DualLabelDataset:
    """A :class:`DualLabelDataset` from any DeepChem dataset (labels with ``w == 0`` → NaN).

    Parameters
    ----------
    labels
        Names or specs of the label columns; defaults to ``dataset.get_task_names()`` with
        inferred kinds.
    smiles, ids_are_smiles
        Where the molecules are: an explicit list, or DeepChem's MoleculeNet convention of
        SMILES as ids. Otherwise a 2-D numeric ``X`` is used as tabular features.
    """
    y = np.asarray(dataset.y, dtype=np.float64).reshape(len(dataset), -1)
    w = np.asarray(dataset.w, dtype=np.float64).reshape(y.shape[0], -1)
    w = np.broadcast_to(w, y.shape)
    y = np.where(w > 0, y, np.nan)
    names = labels if labels is not None else list(dataset.get_task_names())
    if len(names) != y.shape[1]:
        raise ValueError(f"{len(names)} label names for {y.shape[1]} DeepChem tasks")
    specs = tuple(
        n if isinstance(n, LabelSpec) else infer_label_spec(str(n), y[:, k])
        for k, n in enumerate(names)
    )
    ids = np.asarray(dataset.ids).astype(str)
    if ids_are_smiles:
        smiles = list(ids)
    X = None
    if smiles is None:
        X = np.asarray(dataset.X)
        if X.ndim != 2 or X.dtype == object:
            raise ValueError(
                "DeepChem X is not a numeric 2-D array; pass smiles=... or ids_are_smiles=True"
            )
        X = X.astype(np.float32)
    return DualLabelDataset(
        y=y,
        labels=specs,
        ids=ids,
        row=np.arange(len(y)),
        smiles=None if smiles is None else np.asarray(smiles, dtype=str),
        X=X,
        feature_names=tuple(f"x{j}" for j in range(X.shape[1])) if X is not None else (),
        name=name,
    )
