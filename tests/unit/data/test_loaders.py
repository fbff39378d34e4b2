"""Loaders: the three real datasets and the generic CSV / Parquet table loader."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from molddl.data.loaders import (
    HIGGS_HIGH_LEVEL,
    HIGGS_LOW_LEVEL,
    TOX21_TASKS,
    dataset_from_frame,
    load_dataset,
    load_higgs,
    load_mof,
    load_table,
    load_tox21,
)


def _raw_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with gzip.open(path, "rt", newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def tox21_raw(data_dir: Path) -> tuple[list[str], list[list[str]]]:
    return _raw_rows(data_dir / "tox21.csv.gz")


@pytest.fixture(scope="module")
def tox21(data_dir: Path):
    return load_tox21(data_dir=data_dir)


@pytest.fixture(scope="module")
def higgs(data_dir: Path):
    return load_higgs(data_dir=data_dir)


# --------------------------------------------------------------------------- Tox21


def test_tox21_default_pair_partition_matches_paper(tox21):
    assert len(tox21) == 7831
    assert tox21.label_names == ["SR-ARE", "SR-MMP"]
    assert tox21.partition_counts() == {"D12": 4460, "D1": 1372, "D2": 1350, "D0": 649}
    assert all(s.kind == "binary" for s in tox21.labels)
    assert tox21.is_molecular and tox21.X is None


@pytest.mark.parametrize(
    "pair", [("NR-AR", "SR-p53"), ("NR-Aromatase", "NR-AhR"), ("SR-HSE", "NR-ER-LBD")]
)
def test_tox21_any_two_assays_are_selectable(data_dir, tox21_raw, pair):
    data = load_tox21(labels=pair, data_dir=data_dir)
    header, rows = tox21_raw
    assert data.label_names == list(pair)
    for k, assay in enumerate(pair):
        j = header.index(assay)
        n_missing = sum(1 for r in rows if r[j] == "")
        assert int(np.isnan(data.y[:, k]).sum()) == n_missing


def test_tox21_all_gives_12_columns_consistent_with_pair_loads(data_dir, tox21):
    data = load_tox21(labels="all", data_dir=data_dir)
    assert data.label_names == list(TOX21_TASKS)
    assert data.y.shape == (7831, 12)
    assert all(s.kind == "binary" for s in data.labels)
    cols = [TOX21_TASKS.index("SR-ARE"), TOX21_TASKS.index("SR-MMP")]
    np.testing.assert_array_equal(data.y[:, cols], tox21.y)
    with pytest.raises(ValueError, match="two label columns"):
        load_tox21(labels=["SR-ARE"], data_dir=data_dir)


def test_tox21_unknown_assay_is_a_value_error_listing_the_assays(data_dir):
    with pytest.raises(ValueError) as err:
        load_tox21(labels=("SR-ARE", "SR-XYZ"), data_dir=data_dir)
    msg = str(err.value)
    assert "SR-XYZ" in msg
    for assay in TOX21_TASKS:
        assert assay in msg


def test_tox21_missing_labels_are_nan_never_zero(data_dir, tox21_raw):
    data = load_tox21(labels="all", data_dir=data_dir)
    header, rows = tox21_raw
    assert len(rows) == len(data)
    assert [r[0] for r in rows] == list(data.smiles)
    for k, assay in enumerate(TOX21_TASKS):
        j = header.index(assay)
        cells = np.array([r[j] for r in rows])
        empty = cells == ""
        np.testing.assert_array_equal(np.isnan(data.y[:, k]), empty)
        present = cells[~empty].astype(float)
        np.testing.assert_array_equal(data.y[~empty, k], present)
    # the default pair: missing-label counts from the data README (never filled with 0)
    pair = load_tox21(data_dir=data_dir)
    assert int(np.isnan(pair.y[:, 0]).sum()) == 1999
    assert int(np.isnan(pair.y[:, 1]).sum()) == 2021
    assert not pair.mask[np.isnan(pair.y)].any()


# --------------------------------------------------------------------------- HIGGS


def test_higgs_default_is_21_low_level_features_and_mass_labels(data_dir, higgs):
    assert len(higgs) == 10984
    assert higgs.feature_names == HIGGS_LOW_LEVEL
    assert higgs.X.shape == (10984, 21)
    assert higgs.X.dtype == np.float32
    assert higgs.label_names == ["m_jj", "m_jjj"]
    assert [s.kind for s in higgs.labels] == ["regression", "regression"]
    assert not set(higgs.feature_names) & {"m_jj", "m_jjj", "label"}
    assert higgs.smiles is None
    raw = pd.read_csv(data_dir / "higgs_sas_sample.csv.gz")
    np.testing.assert_array_equal(higgs.y, raw[["m_jj", "m_jjj"]].to_numpy())
    np.testing.assert_array_equal(higgs.X, raw[list(HIGGS_LOW_LEVEL)].to_numpy(np.float32))
    assert higgs.partition_counts() == {"D12": 10984, "D1": 0, "D2": 0, "D0": 0}


def test_higgs_all_features_exclude_the_labels(data_dir):
    data = load_higgs(features="all", data_dir=data_dir)
    names = set(data.feature_names)
    assert not names & {"m_jj", "m_jjj"}
    assert set(HIGGS_LOW_LEVEL) <= names
    assert set(HIGGS_HIGH_LEVEL) - {"m_jj", "m_jjj"} <= names
    assert "label" not in names  # the signal/background class is not an input
    assert data.X.shape == (10984, 26)


def test_higgs_explicit_feature_list(data_dir):
    data = load_higgs(features=["lepton_pT", "m_bb"], data_dir=data_dir)
    assert data.feature_names == ("lepton_pT", "m_bb")
    assert data.X.shape == (10984, 2)


@pytest.mark.parametrize(
    ("file", "filename", "n"),
    [
        ("higgs_h2o_train", "higgs_h2o_train_10k.csv.gz", 10000),
        ("higgs_h2o_test", "higgs_h2o_test_5k.csv.gz", 5000),
    ],
)
def test_higgs_h2o_files_load_with_uci_column_names(data_dir, file, filename, n):
    data = load_higgs(file=file, data_dir=data_dir)
    raw = pd.read_csv(data_dir / filename)
    assert len(data) == n
    assert data.feature_names == HIGGS_LOW_LEVEL
    assert data.label_names == ["m_jj", "m_jjj"]
    # x22 / x23 are m_jj / m_jjj, x1..x21 the low-level features
    np.testing.assert_array_equal(data.y, raw[["x22", "x23"]].to_numpy())
    cols = [f"x{i}" for i in range(1, 22)]
    np.testing.assert_array_equal(data.X, raw[cols].to_numpy(np.float32))


# --------------------------------------------------------------------------- MOF


def test_mof_labels_features_and_ids(data_dir):
    data = load_mof(data_dir=data_dir)
    raw = pd.read_csv(data_dir / "mof_synmof_rac.csv.gz")
    assert len(data) == 671
    assert data.label_names == ["temperature", "time"]
    assert [s.kind for s in data.labels] == ["regression", "regression"]
    assert data.X.shape == (671, 287)
    dropped = data.meta["dropped_constant_columns"]
    assert len(dropped) == 54
    assert all(raw[c].nunique() == 1 for c in dropped)
    assert not set(dropped) & set(data.feature_names)
    assert not set(data.feature_names) & {"MOFname", "temperature", "time"}
    assert list(data.ids) == list(raw["MOFname"])
    assert data.ids[0].endswith("_clean")
    np.testing.assert_array_equal(data.y, raw[["temperature", "time"]].to_numpy(float))


# --------------------------------------------------------------------------- generic tables


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_with_smiles_empty_cells_are_missing(tmp_path):
    path = _write(
        tmp_path / "mols.csv",
        "smiles,a,b\nCCO,1,0.5\nc1ccccc1,,1.5\nCC,0,\nCCN,,\n",
    )
    data = load_table(path, ["a", "b"])
    assert list(data.smiles) == ["CCO", "c1ccccc1", "CC", "CCN"]
    assert data.X is None
    assert data.partition_counts() == {"D12": 1, "D1": 1, "D2": 1, "D0": 1}
    np.testing.assert_array_equal(np.isnan(data.y), [[0, 0], [1, 0], [0, 1], [1, 1]])
    assert data.labels[0].kind == "binary"
    assert data.labels[1].kind == "regression"


def test_csv_with_feature_columns_and_split(tmp_path):
    path = _write(
        tmp_path / "tab.csv",
        "id,f1,f2,y1,y2,split\ns1,0.1,1,0,2.5,train\ns2,0.2,2,1,,val\ns3,0.3,3,,3.5, Test\n",
    )
    data = load_table(path, ["y1", "y2"], feature_columns=["f1", "f2"], id_column="id")
    assert data.feature_names == ("f1", "f2")
    np.testing.assert_allclose(data.X, [[0.1, 1], [0.2, 2], [0.3, 3]], rtol=1e-6)
    assert list(data.ids) == ["s1", "s2", "s3"]
    assert list(data.split) == ["train", "val", "test"]
    assert np.isnan(data.y[1, 1]) and np.isnan(data.y[2, 0])
    # feature_columns="all": every numeric column that is not a label, the id or the split
    auto = load_table(path, ["y1", "y2"], feature_columns="all", id_column="id")
    assert auto.feature_names == ("f1", "f2")
    # neither named: a table without SMILES is not silently taken as features
    with pytest.raises(ValueError, match="no 'smiles' column.*data.feature_columns"):
        load_table(path, ["y1", "y2"], id_column="id")


def test_load_dataset_reads_a_csv_path(tmp_path):
    path = _write(tmp_path / "mols.csv", "SMILES,p,q\nCCO,1,0\nCC,0,\n")
    data = load_dataset(str(path), labels=["p", "q"])
    assert list(data.smiles) == ["CCO", "CC"]
    assert data.name == "mols"
    with pytest.raises(ValueError, match="label columns"):
        load_dataset(str(path))


def test_load_dataset_unknown_name():
    with pytest.raises(ValueError, match="tox21"):
        load_dataset("no-such-dataset")


def test_parquet_table(tmp_path):
    df = pd.DataFrame(
        {
            "smiles": ["CCO", "CC", "CCN"],
            "y1": [1.0, np.nan, 0.0],
            "y2": [np.nan, 2.0, 3.0],
            "split": ["train", "val", "test"],
        }
    )
    path = tmp_path / "t.parquet"
    df.to_parquet(path)
    data = load_dataset(str(path), labels=["y1", "y2"])
    assert list(data.smiles) == ["CCO", "CC", "CCN"]
    np.testing.assert_array_equal(np.isnan(data.y), [[0, 1], [1, 0], [0, 0]])
    assert list(data.split) == ["train", "val", "test"]


def test_gzip_csv_table(tmp_path):
    path = tmp_path / "t.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("smiles,y1,y2\nCCO,1,\nCC,,0\n")
    data = load_table(path, ["y1", "y2"])
    assert data.partition_counts() == {"D12": 0, "D1": 1, "D2": 1, "D0": 0}


def test_unknown_column_is_named_and_available_columns_listed(tmp_path):
    path = _write(tmp_path / "t.csv", "smiles,tox_a,tox_b\nCCO,1,0\n")
    with pytest.raises(ValueError) as err:
        load_table(path, ["tox_a", "tox_c"])
    msg = str(err.value)
    assert "'tox_c'" in msg
    for col in ("smiles", "tox_a", "tox_b"):
        assert col in msg
    with pytest.raises(ValueError, match="'f9'"):
        load_table(path, ["tox_a", "tox_b"], feature_columns=["f9"])


def test_empty_file_is_a_clear_error(tmp_path):
    path = _write(tmp_path / "empty.csv", "")
    with pytest.raises(ValueError, match="empty"):
        load_table(path, ["a", "b"])


def test_header_only_file_is_a_clear_error(tmp_path):
    path = _write(tmp_path / "header.csv", "smiles,a,b\n")
    with pytest.raises(ValueError, match="no data rows"):
        load_table(path, ["a", "b"])


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_table(tmp_path / "nope.csv", ["a", "b"])


def test_non_numeric_label_cell_names_row_and_column(tmp_path):
    path = _write(tmp_path / "t.csv", "smiles,a,b\nCCO,1,0\nCC,0,1\nCCN,yes,0\n")
    with pytest.raises(ValueError) as err:
        load_table(path, ["a", "b"])
    msg = str(err.value)
    assert "'a'" in msg
    assert "row 3" in msg
    assert "'yes'" in msg


def test_binary_label_out_of_range_names_row(tmp_path):
    path = _write(tmp_path / "t.csv", "smiles,a,b\nCCO,1,0.5\nCC,2,1.5\n")
    with pytest.raises(ValueError) as err:
        load_table(path, ["a", "b"], label_kinds=["binary", "regression"])
    msg = str(err.value)
    assert "'a'" in msg and "row 2" in msg and "binary" in msg


def test_all_missing_label_column_is_an_error(tmp_path):
    path = _write(tmp_path / "t.csv", "smiles,a,b\nCCO,1,\nCC,0,\n")
    with pytest.raises(ValueError, match="'b'.*all missing"):
        load_table(path, ["a", "b"])
    with pytest.raises(ValueError, match="'b'.*all missing"):
        load_table(path, ["a", "b"], label_kinds=["binary", "regression"])


def test_non_numeric_feature_cell_names_row_and_column(tmp_path):
    path = _write(tmp_path / "t.csv", "f1,f2,a,b\n1,2,0,1\n3,x,1,0\n")
    with pytest.raises(ValueError) as err:
        load_table(path, ["a", "b"], feature_columns=["f1", "f2"])
    msg = str(err.value)
    assert "'f2'" in msg and "row 2" in msg


def test_smiles_and_feature_columns_exactly_one(tmp_path):
    df = pd.DataFrame({"smiles": ["CCO"], "f": [1.0], "a": [1.0], "b": [0.0]})
    with pytest.raises(ValueError, match="exactly one"):
        dataset_from_frame(df, ["a", "b"], smiles_column="smiles", feature_columns=["f"])
    with pytest.raises(ValueError, match="exactly one"):
        dataset_from_frame(df, ["a", "b"])
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    with pytest.raises(ValueError, match="exactly one"):
        load_table(path, ["a", "b"], smiles_column="smiles", feature_columns=["f"])
    # neither given and nothing usable as input: a clear error, not an empty feature matrix
    only_labels = _write(tmp_path / "labels.csv", "name,a,b\nx,1,0\n")
    with pytest.raises(ValueError, match="no 'smiles' column"):
        load_table(only_labels, ["a", "b"])


def test_label_also_used_as_feature_is_an_error():
    df = pd.DataFrame({"f": [1.0, 2.0], "a": [1.0, 0.0], "b": [0.0, 1.0]})
    with pytest.raises(ValueError, match="both label and feature"):
        dataset_from_frame(df, ["a", "b"], feature_columns=["f", "a"])


def test_one_label_is_not_enough():
    df = pd.DataFrame({"smiles": ["CCO"], "a": [1.0]})
    with pytest.raises(ValueError, match="two label columns"):
        dataset_from_frame(df, ["a"], smiles_column="smiles")
