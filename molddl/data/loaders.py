"""Loaders: Tox21, HIGGS, SynMOF and any CSV / Parquet table, all to :class:`DualLabelDataset`.

Row numbers in error messages count data rows from 1 (the header is not a row).
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from molddl.data.dataset import DualLabelDataset
from molddl.data.labels import (
    LabelSpec,
    check_label_values,
    infer_label_spec,
    make_spec,
)
from molddl.data.sources import fetch

logger = logging.getLogger(__name__)

TOX21_TASKS: tuple[str, ...] = (
    "NR-AR", "NR-AR-LBD", "NR-AhR", "NR-Aromatase", "NR-ER", "NR-ER-LBD",
    "NR-PPAR-gamma", "SR-ARE", "SR-ATAD5", "SR-HSE", "SR-MMP", "SR-p53",
)  # fmt: skip
HIGGS_LOW_LEVEL: tuple[str, ...] = (
    "lepton_pT", "lepton_eta", "lepton_phi", "missing_energy_magnitude", "missing_energy_phi",
    "jet_1_pt", "jet_1_eta", "jet_1_phi", "jet_1_btag", "jet_2_pt", "jet_2_eta", "jet_2_phi",
    "jet_2_btag", "jet_3_pt", "jet_3_eta", "jet_3_phi", "jet_3_btag", "jet_4_pt", "jet_4_eta",
    "jet_4_phi", "jet_4_btag",
)  # fmt: skip
HIGGS_HIGH_LEVEL: tuple[str, ...] = ("m_jj", "m_jjj", "m_lv", "m_jlv", "m_bb", "m_wbb", "m_wwbb")

DEFAULT_LABELS: dict[str, tuple[str, str]] = {
    "tox21": ("SR-ARE", "SR-MMP"),
    "higgs": ("m_jj", "m_jjj"),
    "mof": ("temperature", "time"),
}


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (optionally gzip) or Parquet file; an empty file is a clear error."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input file {path} does not exist")
    if path.is_dir():
        raise ValueError(f"input file {path} is a folder, not a CSV or Parquet file")
    try:
        if path.suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
            header = [str(c) for c in df.columns]
        else:
            # mangle_dupe_cols is gone from pandas: a repeated name comes back as "name.1",
            # so the header is read as it is written to find repeats
            header = [str(c) for c in pd.read_csv(path, nrows=1, header=None).iloc[0]]
            df = pd.read_csv(path, keep_default_na=True, na_values=[""])
    except pd.errors.EmptyDataError:
        raise ValueError(f"input file {path} is empty (no header, no rows)") from None
    except UnicodeDecodeError as err:
        raise not_utf8_error(path, err) from None
    except (pd.errors.ParserError, OSError, ValueError, EOFError, zlib.error) as err:
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise ValueError(f"input file {path} cannot be read as a table: {first}") from None
    check_header(header, str(path))
    if df.empty:
        raise ValueError(f"input file {path} has a header but no data rows")
    return df


def not_utf8_error(path: Path, err: UnicodeDecodeError) -> ValueError:
    """The error for ``path`` that ``err`` met decoding: the first line that is not UTF-8."""
    opener: Any = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            for n, line in enumerate(fh, 1):  # no UTF-8 character holds a newline byte
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as bad:
                    where = "the header" if n == 1 else f"data row {n - 1}"
                    return ValueError(
                        f"input file {path} is not UTF-8 text: line {n} ({where}) has the byte "
                        f"0x{line[bad.start]:02x} at byte {bad.start + 1} of the line; save the "
                        f"file as UTF-8"
                    )
    except (OSError, EOFError):
        pass
    return ValueError(f"input file {path} is not UTF-8 text ({err}); save the file as UTF-8")


def check_header(header: Sequence[str], source: str) -> None:
    """A ``ValueError`` naming a column name that the header holds twice: which of the two a
    setting means would be a guess."""
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        if name in seen:
            raise ValueError(
                f"{source}: column name {name!r} appears twice (columns {seen[name] + 1} and "
                f"{i + 1}); rename one of them"
            )
        seen[name] = i


def _require_columns(df: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        shown = ", ".join(map(str, df.columns[:40])) + (" …" if len(df.columns) > 40 else "")
        raise ValueError(
            f"{source}: unknown column(s) {', '.join(map(repr, missing))}; the file has: {shown}"
        )


def _label_array(df: pd.DataFrame, column: str, first_row: int = 0) -> np.ndarray:
    """A label column as float with NaN for empty cells; non-numbers name their row."""
    values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & df[column].notna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"label column {column!r}, row {first_row + i + 1}: {df[column].iloc[i]!r} is not "
            f"a number; leave the cell empty for a missing label"
        )
    return values


def _infer_specs(
    labels: Sequence[str],
    label_kinds: Sequence[str | None] | None,
    y: np.ndarray,
    first_row: int = 0,
) -> list[LabelSpec]:
    """One spec per label column: the given kind, else inferred from the values."""
    kinds = list(label_kinds) if label_kinds is not None else [None] * len(labels)
    specs = []
    for k, (col, kind) in enumerate(zip(labels, kinds, strict=True)):
        if kind is None:
            specs.append(infer_label_spec(col, y[:, k], row_offset=first_row + 1))
        else:
            specs.append(make_spec(col, kind, y[:, k]))
    return specs


def find_column(columns: Sequence[object], wanted: str) -> str | None:
    """The column named ``wanted``, else the first whose name matches it ignoring case
    (``SMILES`` for ``smiles``); ``None`` when there is none."""
    for c in columns:
        if c == wanted:
            return wanted
    return next((str(c) for c in columns if str(c).lower() == wanted.lower()), None)


def dataset_from_frame(
    df: pd.DataFrame,
    labels: Sequence[str],
    *,
    smiles_column: str | None = None,
    feature_columns: Sequence[str] | None = None,
    id_column: str | None = None,
    split_column: str | None = "split",
    label_kinds: Sequence[str | None] | None = None,
    label_specs: Sequence[LabelSpec] | None = None,
    name: str = "table",
    source: str = "table",
    first_row: int = 0,
) -> DualLabelDataset:
    """Build a dataset from a table with a SMILES column *or* feature columns.

    Parameters
    ----------
    labels
        Label column names (two for DLL); empty cells are missing labels.
    smiles_column, feature_columns
        Exactly one of them: molecular input, or numeric feature columns.
    split_column
        Optional ``train`` / ``val`` / ``test`` column that overrides splitting; used when
        present in the table.
    label_kinds
        ``binary`` / ``multiclass`` / ``regression`` per label, ``None`` to infer.
    label_specs
        Instead of ``label_kinds``: the specifications of a trained model's labels, for data
        to predict. Values are checked against them and a label may be missing in every row.
    first_row
        Position of the table's first row in its file (0-based), for a chunk of a large
        file: row numbers, default ids and error messages then refer to the whole file.
    """
    if (smiles_column is None) == (feature_columns is None):
        raise ValueError("give either a SMILES column or feature columns (exactly one)")
    if len(labels) < 2:
        raise ValueError(f"dual-label learning needs two label columns, got {list(labels)}")
    wanted = list(labels) + ([smiles_column] if smiles_column else list(feature_columns or []))
    wanted += [id_column] if id_column else []
    _require_columns(df, wanted, source)
    overlap = set(labels) & set(feature_columns or [])
    if overlap:
        raise ValueError(f"{source}: column(s) {sorted(overlap)} are both label and feature")

    y = np.column_stack([_label_array(df, c, first_row) for c in labels])
    if label_specs is None:
        specs = _infer_specs(labels, label_kinds, y, first_row)
    else:
        if label_kinds is not None:
            raise ValueError("give label_kinds or label_specs, not both")
        specs = list(label_specs)
        if [s.name for s in specs] != list(labels):
            raise ValueError(f"label_specs {[s.name for s in specs]} do not match {list(labels)}")
    for k, spec in enumerate(specs):
        check_label_values(
            spec, y[:, k], row_offset=first_row + 1, allow_empty=label_specs is not None
        )

    ids = (
        df[id_column].astype(str).to_numpy()
        if id_column
        else np.array([f"{name}-{first_row + i + 1}" for i in range(len(df))])
    )
    smiles = X = None
    names: tuple[str, ...] = ()
    if smiles_column:
        smiles = df[smiles_column].fillna("").astype(str).to_numpy()
    else:
        names = tuple(feature_columns or ())
        block = df[list(names)].apply(pd.to_numeric, errors="coerce")
        bad = block.isna().to_numpy() & df[list(names)].notna().to_numpy()
        if bad.any():
            i, j = (int(v[0]) for v in np.nonzero(bad))
            raise ValueError(
                f"{source}: feature column {names[j]!r}, row {first_row + i + 1}: "
                f"{df[names[j]].iloc[i]!r} is not a number"
            )
        X = block.to_numpy(dtype=np.float32)
        finite = np.isfinite(X)
        if not finite.all():
            i, j = (int(v[0]) for v in np.nonzero(~finite))
            cell = df[names[j]].iloc[i]
            what = "is empty" if pd.isna(cell) else f"holds {cell!r}, not a finite number"
            raise ValueError(
                f"{source}: feature column {names[j]!r}, row {first_row + i + 1} {what}; "
                f"a model takes a finite number in every feature cell"
            )
    split = None
    if split_column and split_column in df.columns:
        split = df[split_column].astype(str).str.strip().str.lower().to_numpy()
    return DualLabelDataset(
        y=y,
        labels=tuple(specs),
        ids=ids,
        row=np.arange(first_row, first_row + len(df)),
        smiles=smiles,
        X=X,
        feature_names=names,
        split=split,
        name=name,
        meta={"row_offset": 1, "source": source},
    )


def load_table(
    path: str | Path,
    labels: Sequence[str],
    *,
    smiles_column: str | None = None,
    feature_columns: Sequence[str] | str | None = None,
    **kwargs,
) -> DualLabelDataset:
    """Load a user's CSV / Parquet file (see :func:`dataset_from_frame`).

    With neither ``smiles_column`` nor ``feature_columns`` given, the column named ``smiles``
    (any case) is used; a table without one is an error, so that a file of molecules with a
    misnamed column never trains a model on its other numbers. ``feature_columns="all"``
    takes every numeric column that is not a label, the id or the split column.
    """
    df = read_table(path)
    if smiles_column is None and feature_columns is None:
        smiles_column = find_column(list(df.columns), "smiles")
        if smiles_column is None:
            shown = ", ".join(map(str, df.columns[:40])) + (" …" if len(df.columns) > 40 else "")
            raise ValueError(
                f"{path}: no 'smiles' column (the file has: {shown}); name the column of "
                f"molecules with data.smiles_column, or, for a table of numeric features, "
                f"list them in data.feature_columns (or set it to all)"
            )
    if isinstance(feature_columns, str):
        if feature_columns != "all":
            raise ValueError(
                f"feature_columns must be a list of columns or 'all', got {feature_columns!r}"
            )
        skip = set(labels) | {kwargs.get("id_column"), kwargs.get("split_column", "split")}
        feature_columns = [
            c for c in df.columns if c not in skip and pd.api.types.is_numeric_dtype(df[c])
        ]
        if not feature_columns:
            raise ValueError(f"{path}: data.feature_columns is all, but no column is numeric")
    kwargs.setdefault("name", Path(path).name.split(".")[0])
    return dataset_from_frame(
        df,
        labels,
        smiles_column=smiles_column,
        feature_columns=feature_columns,
        source=str(path),
        **kwargs,
    )


def load_tox21(
    labels: Sequence[str] | str = DEFAULT_LABELS["tox21"], data_dir: str | Path | None = None
) -> DualLabelDataset:
    """Tox21 (MoleculeNet, 7,831 compounds, 12 binary assays); ``labels="all"`` takes all 12.

    The default pair SR-ARE / SR-MMP splits into D12 / D1 / D2 / D0 = 4,460 / 1,372 /
    1,350 / 649 (paper, Table I).
    """
    chosen = list(TOX21_TASKS) if labels == "all" else list(labels)
    unknown = [a for a in chosen if a not in TOX21_TASKS]
    if unknown:
        raise ValueError(f"unknown Tox21 assay(s) {unknown}; choose from {', '.join(TOX21_TASKS)}")
    df = read_table(fetch("tox21", data_dir))
    return dataset_from_frame(
        df,
        chosen,
        smiles_column="smiles",
        label_kinds=["binary"] * len(chosen),
        split_column=None,
        name="tox21",
        source="tox21",
    )


def load_higgs(
    labels: Sequence[str] = DEFAULT_LABELS["higgs"],
    features: str | Sequence[str] = "low",
    data_dir: str | Path | None = None,
    file: str = "higgs",
) -> DualLabelDataset:
    """The real HIGGS sample (10,984 events): by default the 21 low-level features as
    inputs and the invariant masses ``m_jj`` / ``m_jjj`` as regression labels.

    ``features`` is ``"low"`` (21), ``"all"`` (the 28 kinematic columns that are not labels;
    never the signal/background ``label``) or a list.
    ``file`` picks ``higgs`` (near-full precision) or ``higgs_h2o_train`` / ``higgs_h2o_test``
    (3 significant digits, columns renamed to the UCI names).
    """
    df = read_table(fetch(file, data_dir))
    if "response" in df.columns:
        names = ["label", *HIGGS_LOW_LEVEL, *HIGGS_HIGH_LEVEL]
        df = df.rename(columns=dict(zip(df.columns, names, strict=True)))
    if features == "low":
        cols = [c for c in HIGGS_LOW_LEVEL if c not in labels]
    elif features == "all":  # the 28 kinematic features; the signal/background class is a label
        cols = [c for c in (*HIGGS_LOW_LEVEL, *HIGGS_HIGH_LEVEL) if c not in labels]
    else:
        cols = list(features)
    return dataset_from_frame(
        df, labels, feature_columns=cols, split_column=None, name="higgs", source=file
    )


def load_mof(
    labels: Sequence[str] = DEFAULT_LABELS["mof"], data_dir: str | Path | None = None
) -> DualLabelDataset:
    """SynMOF (671 MOFs, 341 structure features): synthesis ``temperature`` (°C) and
    ``time`` (h) as regression labels. Constant feature columns are dropped (54 of them)."""
    df = read_table(fetch("mof", data_dir))
    candidates = [c for c in df.columns if c not in (*labels, "MOFname", "temperature", "time")]
    constant = [c for c in candidates if df[c].nunique(dropna=False) <= 1]
    cols = [c for c in candidates if c not in constant]
    data = dataset_from_frame(
        df,
        labels,
        feature_columns=cols,
        id_column="MOFname",
        split_column=None,
        name="mof",
        source="mof",
    )
    data.meta["dropped_constant_columns"] = constant
    return data


def load_synthetic(
    labels: Sequence[str] = ("y1", "y2"), data_dir: str | Path | None = None
) -> DualLabelDataset:
    """molddl's synthetic binary dual-label data (:func:`molddl.data.synthetic.make_dual_label`,
    3,000 samples, seed 0): ``y2`` depends strongly on ``y1``; ``x`` alone predicts it poorly.
    Fully labelled; use ``data.missing_rate`` to hide labels."""
    from molddl.data.synthetic import make_dual_label

    if list(labels) != ["y1", "y2"]:
        raise ValueError("the synthetic dataset has the labels y1 and y2")
    return make_dual_label(n=3000, kind="binary", seed=0)


LOADERS: dict[str, Callable[..., DualLabelDataset]] = {
    "tox21": load_tox21,
    "higgs": load_higgs,
    "mof": load_mof,
    "synthetic": load_synthetic,
}


def load_dataset(
    name: str,
    labels: Sequence[str] | None = None,
    data_dir: str | Path | None = None,
    **kwargs,
) -> DualLabelDataset:
    """Load a named dataset (``tox21``, ``higgs``, ``mof``) or a CSV / Parquet path."""
    if name in LOADERS:
        args = {"labels": labels} if labels is not None else {}
        return LOADERS[name](data_dir=data_dir, **args, **kwargs)
    path = Path(name)
    if path.suffix in (".csv", ".gz", ".parquet") or path.exists():
        if labels is None:
            raise ValueError(f"{name}: name the two label columns of your table")
        return load_table(path, labels, **kwargs)
    raise ValueError(
        f"unknown dataset {name!r}: use one of {', '.join(LOADERS)} or a path to a CSV/Parquet file"
    )
