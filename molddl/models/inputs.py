"""What the scikit-learn-shaped entry points take and give, beyond a :class:`DualLabelDataset`.

``fit`` / ``predict`` / ``evaluate`` / ``predict_proba`` of :class:`DualLabelModel` accept

* a :class:`DualLabelDataset`, used as it is;
* a pandas ``DataFrame`` with named columns, read by
  :func:`~molddl.data.loaders.dataset_from_frame` as a CSV file is: the SMILES column
  (``data.smiles_column``, else the column named ``smiles`` in any case) or the feature
  columns (``data.feature_columns``; a fitted model takes the columns it was trained on),
  and the label columns (``data.labels``, else the dataset's default pair; a fitted model
  takes its own labels). Empty cells are missing labels; ``data.id_column`` gives the ids
  when the frame has it;
* a DeepChem dataset (``NumpyDataset``, ``DiskDataset``, …), converted by
  :func:`~molddl.data.deepchem.from_deepchem`: ``y`` with ``w = 0`` is a missing label,
  the SMILES come from ``ids`` (MoleculeNet's convention) or a numeric ``X`` is the
  features. Its tasks are named by ``data.labels`` (one per task, or the tasks to take).

Label columns must be present for ``fit`` and ``evaluate``; for ``predict`` and
``predict_proba`` a label column the frame lacks is unknown in every row. A missing column,
a wrong number of tasks or an unsupported type is an error naming it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
import pandas as pd
import torch

from molddl.config import Config
from molddl.data.dataset import DualLabelDataset
from molddl.data.labels import LabelSpec, label_kind
from molddl.data.loaders import DEFAULT_LABELS, check_header, dataset_from_frame, find_column

if TYPE_CHECKING:
    from molddl.data.preprocess import Preprocessor

#: what the entry points take: a dataset, a DataFrame or a DeepChem dataset (untyped)
ModelInput: TypeAlias = DualLabelDataset | pd.DataFrame | Any

#: ``required``: label columns must be there (training, scoring); ``optional``: a missing
#: label column is unknown everywhere (prediction)
LabelNeed = Literal["required", "optional"]


def fit_inputs(
    config: Config, train: ModelInput, val: ModelInput | None
) -> tuple[DualLabelDataset, DualLabelDataset | None]:
    """``fit``'s training and validation data as datasets; the validation part is read with
    the label kinds of the training part."""
    tr = as_dataset(train, config, None, "required", role="fit")
    va = None if val is None else as_dataset(val, config, None, "required", tr.labels, "fit")
    return tr, va


def as_dataset(
    data: ModelInput,
    config: Config,
    pre: Preprocessor | None,
    need: LabelNeed,
    labels: Sequence[LabelSpec] | None = None,
    role: str = "predict",
) -> DualLabelDataset:
    """``data`` as a :class:`DualLabelDataset` (see the module's docstring).

    ``pre`` is a fitted model's preprocessor (its labels and inputs), ``None`` for training
    data; ``labels`` fixes the label kinds (else the preprocessor's, else inferred); ``role``
    names the entry point in errors."""
    if isinstance(data, DualLabelDataset):
        return data
    specs = labels if labels is not None else (pre.labels if pre is not None else None)
    if isinstance(data, pd.DataFrame):
        return _from_frame(data, config, pre, need, specs)
    dc_data = sys.modules.get("deepchem.data")  # loaded if data is a DeepChem dataset
    if dc_data is not None and isinstance(data, dc_data.Dataset):
        return _from_deepchem(data, config, pre, specs)
    raise TypeError(
        f"{role}() takes a DualLabelDataset, a pandas DataFrame or a DeepChem dataset, "
        f"got {type(data).__module__}.{type(data).__qualname__}"
    )


def _label_names(config: Config, specs: Sequence[LabelSpec] | None) -> list[str]:
    if specs is not None:
        return [s.name for s in specs]
    names = config.data.labels or DEFAULT_LABELS.get(config.data.dataset)
    if not names:
        raise ValueError("name the DataFrame's two label columns in the config: data.labels")
    return list(names)


def _shown(columns: Sequence[Any]) -> str:
    return ", ".join(map(str, columns[:40])) + (" …" if len(columns) > 40 else "")


def _from_frame(
    df: pd.DataFrame,
    config: Config,
    pre: Preprocessor | None,
    need: LabelNeed,
    specs: Sequence[LabelSpec] | None,
) -> DualLabelDataset:
    dcfg = config.data
    names = _label_names(config, specs)
    columns = [str(c) for c in df.columns]
    check_header(columns, "DataFrame")
    absent = [n for n in names if n not in columns]
    if absent and need == "required":
        raise ValueError(
            f"the DataFrame has no label column {absent[0]!r} (labels: {names}, config "
            f"data.labels); its columns: {_shown(columns)}"
        )
    df = df.set_axis(columns, axis=1).assign(**{n: np.nan for n in absent})
    inputs: dict[str, Any]
    features: list[str] | None = None
    if pre is not None:  # the model's own inputs
        features = None if pre.featurizer is not None else list(pre.feature_names)
    elif dcfg.feature_columns == "all":  # as molddl.data.loaders.load_table reads it
        skip = {*names, dcfg.id_column, "split"}
        features = [c for c in columns if c not in skip and pd.api.types.is_numeric_dtype(df[c])]
    elif dcfg.feature_columns is not None:
        features = list(dcfg.feature_columns)
    if features is not None:
        lacking = [c for c in features if c not in columns]
        if lacking:
            raise ValueError(
                f"the DataFrame has no feature column {lacking[0]!r} ({len(lacking)} of "
                f"{len(features)} missing, config data.feature_columns); its columns: "
                f"{_shown(columns)}"
            )
        inputs = {"feature_columns": list(features)}
    else:
        wanted = dcfg.smiles_column or "smiles"
        found = find_column(columns, wanted)
        if found is None:
            raise ValueError(
                f"the DataFrame has no SMILES column {wanted!r} (config data.smiles_column; "
                f"a table of numeric features is named by data.feature_columns); its "
                f"columns: {_shown(columns)}"
            )
        inputs = {"smiles_column": found}
    id_column = dcfg.id_column if dcfg.id_column in columns else None
    return dataset_from_frame(
        df,
        names,
        id_column=id_column,
        split_column=None,
        label_kinds=dcfg.label_kinds if specs is None else None,
        label_specs=specs,
        name="frame",
        source="DataFrame",
        **inputs,
    )


def _from_deepchem(
    data: Any, config: Config, pre: Preprocessor | None, specs: Sequence[LabelSpec] | None
) -> DualLabelDataset:
    from molddl.data.deepchem import from_deepchem

    dcfg = config.data
    labels: Sequence[str | LabelSpec] | None = specs if specs is not None else dcfg.labels
    tasks = [str(t) for t in data.get_task_names()]
    if labels is None and len(tasks) != 2:
        raise ValueError(
            f"the DeepChem dataset has {len(tasks)} tasks ({', '.join(tasks[:12])}); name "
            f"the two to learn from in the config: data.labels"
        )
    if pre is not None:  # the model's inputs: molecules (SMILES in ids) or features
        ids_are_smiles: bool | None = pre.featurizer is not None
    else:
        ids_are_smiles = False if dcfg.feature_columns is not None else None
    kinds = dcfg.label_kinds if specs is None else None
    out = from_deepchem(data, labels, ids_are_smiles=ids_are_smiles, label_kinds=kinds)
    if pre is not None and pre.featurizer is None:  # features by position: X has no names
        assert out.X is not None
        if out.X.shape[1] != len(pre.feature_names):
            raise ValueError(
                f"the DeepChem dataset's X has {out.X.shape[1]} feature columns, the model "
                f"takes {len(pre.feature_names)}"
            )
        out = replace(out, feature_names=pre.feature_names)
    return out


def class_probabilities(
    pre: Preprocessor, predict: Callable[[], list[np.ndarray]]
) -> list[np.ndarray]:
    """What ``predict`` (``predict_arrays``) gives, as scikit-learn's ``predict_proba`` does for
    several outputs: one array ``n x C`` per label, in the model's label order (binary:
    ``[P(0), P(1)]``). A regression label has no classes: a ``ValueError`` names it before
    anything is predicted."""
    kinds = [label_kind(spec) for spec in pre.labels]
    for kind in kinds:
        if not kind.categorical:
            raise ValueError(
                f"predict_proba: label {kind.spec.name!r} is a regression label, it has no "
                f"class probabilities; predict() gives its value"
            )
    out = []
    for kind, user in zip(kinds, predict(), strict=True):
        state = torch.from_numpy(user.reshape(len(user), -1))  # binary: P(class 1), n x 1
        out.append(kind.class_probs(state).numpy())
    return out
