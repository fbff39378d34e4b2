"""Conversion to and from DeepChem datasets.

DeepChem marks a missing label as ``y = 0`` with weight ``w = 0``; molddl keeps it as NaN.
The conversion happens here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from molddl.data.dataset import DualLabelDataset
from molddl.data.labels import LabelSpec, infer_label_spec, make_spec


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


#: how many ids :func:`from_deepchem` parses to decide whether they are SMILES
SMILES_PROBE = 50


def from_deepchem(
    dataset,
    labels: Sequence[str | LabelSpec] | None = None,
    *,
    smiles: Sequence[str] | None = None,
    ids_are_smiles: bool | None = None,
    label_kinds: Sequence[str | None] | None = None,
    name: str = "deepchem",
) -> DualLabelDataset:
    """A :class:`DualLabelDataset` from any DeepChem dataset (labels with ``w == 0`` → NaN).

    Parameters
    ----------
    labels
        Names or specs of the label columns, one per DeepChem task; or the names of the
        tasks to take from a dataset with more (two of MoleculeNet Tox21's twelve, matched
        against ``dataset.get_task_names()``). Defaults to every task name, with inferred
        kinds. A dataset without any label (every ``w`` is 0, as DeepChem makes one built
        without ``y``) takes the given labels, all missing: data to predict.
    label_kinds
        ``binary`` / ``multiclass`` / ``regression`` per label name (``data.label_kinds``),
        ``None`` to infer.
    smiles, ids_are_smiles
        Where the molecules are. ``smiles``: an explicit list. ``ids_are_smiles=True``:
        ``dataset.ids`` (DeepChem's MoleculeNet loaders keep each molecule's SMILES there);
        ``False``: none, a numeric 2-D ``X`` is the tabular features. ``None`` (default)
        infers it: the ids when most of the first :data:`SMILES_PROBE` parse as SMILES
        (RDKit), else ``X`` when it holds SMILES strings (as :func:`to_deepchem` and
        DeepChem's ``DummyFeaturizer`` leave it), else a numeric 2-D ``X`` as features;
        otherwise a ``ValueError`` names ``X`` and ``ids``. A featurized ``X`` (fingerprints, graphs) is not used when the
        ids are SMILES: molddl featurizes the molecules itself (``data.featurizer``).
    """
    n = len(dataset)
    y = np.asarray(dataset.y, dtype=np.float64).reshape(n, -1)
    w = np.asarray(dataset.w, dtype=np.float64).reshape(n, -1)
    w = np.broadcast_to(w, y.shape)
    y = np.where(w > 0, y, np.nan)
    tasks = [str(t) for t in dataset.get_task_names()]
    names = list(labels) if labels is not None else tasks
    wanted = [s.name if isinstance(s, LabelSpec) else str(s) for s in names]
    if len(names) != y.shape[1]:
        if np.isnan(y).all() and labels is not None:  # no label at all: data to predict
            y = np.full((n, len(names)), np.nan)
        elif set(wanted) <= set(tasks) and len(tasks) == y.shape[1]:
            y = y[:, [tasks.index(t) for t in wanted]]
        else:
            raise ValueError(
                f"{len(names)} label names {wanted} for the {y.shape[1]} tasks of the "
                f"DeepChem dataset (its y has {y.shape[1]} column(s), task names "
                f"{tasks[:12]}); give one name per task, or names of its tasks to take"
            )
    kinds = list(label_kinds) if label_kinds is not None else [None] * len(names)
    if len(kinds) != len(names):
        raise ValueError(f"{len(kinds)} label kinds for the {len(names)} labels {wanted}")
    specs = []
    for k, (s, kind) in enumerate(zip(names, kinds, strict=True)):
        if isinstance(s, LabelSpec):
            specs.append(s)
        elif kind is not None:
            specs.append(make_spec(str(s), kind, y[:, k]))
        else:
            specs.append(infer_label_spec(str(s), y[:, k]))
    ids = np.asarray(dataset.ids).astype(str)
    first = repr(ids[0]) if n else "none"
    if smiles is None and ids_are_smiles is not False:
        parsed = _share_of_smiles(ids[:SMILES_PROBE])
        if ids_are_smiles and parsed == 0:
            raise ValueError(
                f"ids_are_smiles=True, but no DeepChem id parses as a SMILES (the first is "
                f"{first}); pass smiles=..."
            )
        if ids_are_smiles or parsed > 0.5:
            smiles = list(ids)
    if smiles is None and ids_are_smiles is None:  # SMILES as X (to_deepchem, DummyFeaturizer)
        raw = np.asarray(dataset.X)
        if raw.ndim == 1 and raw.dtype.kind in "OU" and n:
            texts = np.array([str(v) for v in raw[:SMILES_PROBE]])
            if _share_of_smiles(texts) > 0.5:
                smiles = [str(v) for v in raw]
    X = None
    if smiles is None:
        X = np.asarray(dataset.X)
        if X.ndim != 2 or X.dtype.kind not in "biuf":
            raise ValueError(
                f"DeepChem dataset: no molecules and no features found: X is not a numeric "
                f"2-D array (shape {X.shape}, dtype {X.dtype}) and ids are not SMILES (the "
                f"first is {first}); pass smiles=... or ids_are_smiles=True"
            )
        X = X.astype(np.float32)
    return DualLabelDataset(
        y=y,
        labels=tuple(specs),
        ids=ids,
        row=np.arange(len(y)),
        smiles=None if smiles is None else np.asarray(smiles, dtype=str),
        X=X,
        feature_names=tuple(f"x{j}" for j in range(X.shape[1])) if X is not None else (),
        name=name,
    )


def _share_of_smiles(values: np.ndarray) -> float:
    """The share of ``values`` that RDKit reads as a molecule (0 for none)."""
    from molddl.data.featurizers.base import parse_smiles

    if len(values) == 0:
        return 0.0
    return sum(parse_smiles(str(v)) is not None for v in values) / len(values)
