"""Bad data files given to ``molddl train``: each is refused before any training, with one
line naming the file, row, column or key, and the user's file untouched."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .conftest import TINY, snapshot

pytestmark = pytest.mark.filterwarnings("ignore")


def _train(cli, data: Path, out: Path, *extra: str, labels: str = "[SR-ARE, SR-MMP]"):
    return cli(
        "train", "--set", f"data.dataset={data}", "--set", f"data.labels={labels}",
        *TINY, *extra, "--output", out,
    )  # fmt: skip


def _table(tox_tables, tmp_path: Path, name: str = "t.csv") -> tuple[pd.DataFrame, Path]:
    return pd.read_csv(tox_tables["train"]), tmp_path / name


def _refused(cli, path: Path, tmp_path: Path, *needles: str, **kw) -> None:
    """Training on ``path`` exits 2 naming every needle; the file unchanged, no run folder."""
    before = snapshot(path) if path.is_file() else {}
    result = _train(cli, path, tmp_path / "run", *kw.pop("extra", ()), **kw)
    result.assert_error(*needles)
    if before:
        assert snapshot(path) == before
    assert not (tmp_path / "run" / "model.pt").exists()


@pytest.mark.case(risk="traceback", tried="train on a data file that does not exist")
def test_missing_data_file(cli, tmp_path):
    _refused(cli, tmp_path / "nope.csv", tmp_path, "nope.csv", "does not exist")


@pytest.mark.case(risk="traceback", tried="train on a 0-byte CSV")
def test_empty_file(cli, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    _refused(cli, path, tmp_path, str(path), "empty")


@pytest.mark.case(risk="traceback", tried="train on a CSV with a header and no rows")
def test_header_only(cli, tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("smiles,SR-ARE,SR-MMP\n")
    _refused(cli, path, tmp_path, str(path), "no data rows")


@pytest.mark.case(risk="traceback", tried="train on a CSV with a byte that is not UTF-8")
def test_non_utf8(cli, tox_tables, tmp_path):
    path = tmp_path / "latin1.csv"
    text = tox_tables["train"].read_bytes().split(b"\n")
    text[5] = text[5].replace(b",", b"\xe9,", 1)  # line 6 of the file
    path.write_bytes(b"\n".join(text))
    _refused(cli, path, tmp_path, str(path), "not UTF-8", "line 6 (data row 5)")


@pytest.mark.case(risk="traceback", tried="train on a gzip file named .csv.gz that is damaged")
def test_damaged_gzip(cli, tox_tables, tmp_path):
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(tox_tables["train"].read_bytes())[:300])
    _refused(cli, path, tmp_path, str(path))


@pytest.mark.case(risk="traceback", tried="train on a file named .parquet that is CSV text")
def test_parquet_that_is_not(cli, tox_tables, tmp_path):
    path = tmp_path / "t.parquet"
    path.write_bytes(tox_tables["train"].read_bytes())
    _refused(cli, path, tmp_path, str(path), "cannot be read")


@pytest.mark.case(risk="traceback", tried="train on a folder given as the data file")
def test_folder_as_data(cli, tmp_path):
    folder = tmp_path / "data.csv"
    folder.mkdir()
    _refused(cli, folder, tmp_path, str(folder), "folder")


@pytest.mark.case(risk="silent-wrong", tried="train naming a label column the file lacks")
def test_unknown_label_column(cli, tox_tables, tmp_path):
    _refused(cli, tox_tables["train"], tmp_path, "'SR-XYZ'", "SR-ARE", labels="[SR-ARE, SR-XYZ]")


@pytest.mark.case(risk="silent-wrong", tried="a label cell holding text ('yes')")
def test_text_in_a_label(cli, tox_tables, tmp_path):
    df, path = _table(tox_tables, tmp_path)
    df["SR-ARE"] = df["SR-ARE"].astype(object)
    df.loc[10, "SR-ARE"] = "yes"
    df.to_csv(path, index=False)
    _refused(cli, path, tmp_path, "'SR-ARE'", "row 11", "'yes'")


@pytest.mark.case(risk="silent-wrong", tried="one -1 in a 0/1 label column (a missing marker)")
def test_minus_one_in_a_binary_label(cli, tox_tables, tmp_path):
    df, path = _table(tox_tables, tmp_path)
    df.loc[20, "SR-ARE"] = -1
    df.to_csv(path, index=False)
    _refused(cli, path, tmp_path, "'SR-ARE'", "row 21", "-1", "0/1", "label_kinds")


@pytest.mark.case(risk="silent-wrong", tried="one 2 in a 0/1 label column")
def test_two_in_a_binary_label(cli, tox_tables, tmp_path):
    df, path = _table(tox_tables, tmp_path)
    df.loc[30, "SR-MMP"] = 2
    df.to_csv(path, index=False)
    _refused(cli, path, tmp_path, "'SR-MMP'", "row 31", "holds 2", "label_kinds")


@pytest.mark.case(risk="silent-wrong", tried="a 0/1/2 column declared multiclass by label_kinds")
def test_label_kinds_settle_a_stray_value(cli, tox_tables, tmp_path):
    df, path = _table(tox_tables, tmp_path)
    df.loc[30, "SR-MMP"] = 2
    df.to_csv(path, index=False)
    result = _train(cli, path, tmp_path / "run", "--set", "data.label_kinds=[binary, multiclass]")
    assert result.rc == 0, result.err[-2000:]
    assert "SR-ARE (binary), SR-MMP (multiclass, 3 classes)" in result.out  # kinds reported


@pytest.mark.case(risk="silent-wrong", tried="a binary label column holding only 0")
def test_one_class_label(cli, tox_tables, tmp_path):
    df, path = _table(tox_tables, tmp_path)
    df.loc[df["SR-ARE"].notna(), "SR-ARE"] = 0
    df.to_csv(path, index=False)
    _refused(cli, path, tmp_path, "'SR-ARE'", "only the value 0", "two classes")


@pytest.mark.case(risk="traceback", tried="a label column with no value at all")
def test_all_missing_label(cli, tox_tables, tmp_path):
    df, path = _table(tox_tables, tmp_path)
    df["SR-MMP"] = np.nan
    df.to_csv(path, index=False)
    _refused(cli, path, tmp_path, "'SR-MMP'", "all missing")


@pytest.mark.case(risk="silent-wrong", tried="a header naming one column twice")
def test_duplicate_column_names(cli, tox_tables, tmp_path):
    df, path = _table(tox_tables, tmp_path)
    df["SR-ARE (2)"] = 1 - df["SR-ARE"]
    text = df.to_csv(index=False).replace("SR-ARE (2)", "SR-ARE", 1)
    path.write_text(text)
    _refused(cli, path, tmp_path, str(path), "'SR-ARE' appears twice", "columns 2 and 4")


@pytest.mark.case(risk="silent-wrong", tried="a table without SMILES but with a numeric column")
def test_no_smiles_column_is_not_taken_as_features(cli, tox_tables, tmp_path):
    df, path = _table(tox_tables, tmp_path)
    df = df.drop(columns=["smiles"]).assign(mw=np.arange(len(df), dtype=float))
    df.to_csv(path, index=False)
    _refused(cli, path, tmp_path, "no 'smiles' column", "data.smiles_column", "feature_columns")


@pytest.mark.case(
    risk="silent-wrong", tried="the SMILES column under another name, named in config"
)
def test_smiles_column_named(cli, tox_tables, tmp_path):
    df, path = _table(tox_tables, tmp_path)
    df.rename(columns={"smiles": "structure"}).to_csv(path, index=False)
    result = _train(cli, path, tmp_path / "run", "--set", "data.smiles_column=structure")
    assert result.rc == 0, result.err[-2000:]


def _features(tmp_path: Path, n: int = 120) -> tuple[pd.DataFrame, Path]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 4))
    df = pd.DataFrame(X, columns=[f"f{j}" for j in range(4)])
    df["a"] = (X[:, 0] > 0).astype(float)
    df["b"] = X[:, 1] + 0.1 * rng.normal(size=n)
    return df, tmp_path / "features.csv"


@pytest.mark.case(risk="silent-wrong", tried="tabular training with an inf feature cell")
def test_inf_feature(cli, tmp_path):
    df, path = _features(tmp_path)
    df.loc[7, "f2"] = np.inf
    df.to_csv(path, index=False)
    _refused(
        cli, path, tmp_path, "'f2'", "row 8", "finite", labels="[a, b]",
        extra=("--set", "data.feature_columns=all"),
    )  # fmt: skip


@pytest.mark.case(risk="silent-wrong", tried="tabular training with an empty feature cell")
def test_empty_feature(cli, tmp_path):
    df, path = _features(tmp_path)
    df.loc[12, "f1"] = np.nan
    df.to_csv(path, index=False)
    _refused(
        cli, path, tmp_path, "'f1'", "row 13", "empty", labels="[a, b]",
        extra=("--set", "data.feature_columns=[f0, f1, f2, f3]"),
    )  # fmt: skip


@pytest.mark.case(risk="silent-wrong", tried="tabular training with a text feature cell")
def test_text_feature(cli, tmp_path):
    df, path = _features(tmp_path)
    df["f3"] = df["f3"].astype(object)
    df.loc[3, "f3"] = "n/a?"
    df.to_csv(path, index=False)
    _refused(
        cli, path, tmp_path, "'f3'", "row 4", labels="[a, b]",
        extra=("--set", "data.feature_columns=[f0, f1, f2, f3]"),
    )  # fmt: skip


@pytest.mark.case(risk="silent-wrong", tried="invalid SMILES rows among valid ones")
def test_invalid_smiles_are_reported_by_row(cli, tox_tables, tmp_path, caplog):
    df, path = _table(tox_tables, tmp_path)
    df.loc[4, "smiles"] = "C1CC(N"
    df.to_csv(path, index=False)
    result = _train(cli, path, tmp_path / "run")
    assert result.rc == 0, result.err[-2000:]
    assert "row 5" in caplog.text and "C1CC(N" in caplog.text
    strict = _train(cli, path, tmp_path / "strict", "--set", "data.strict_smiles=true")
    strict.assert_error("row 5", "C1CC(N")


@pytest.mark.case(risk="traceback", tried="every SMILES of the file invalid")
def test_all_smiles_invalid(cli, tox_tables, tmp_path):
    df, path = _table(tox_tables, tmp_path)
    df["smiles"] = "not a molecule"
    df.to_csv(path, index=False)
    _refused(cli, path, tmp_path, "SMILES")


@pytest.mark.case(risk="silent-wrong", tried="a test part where an assay has a single class")
def test_an_undefined_metric_says_why(cli, tox_tables, tmp_path, caplog):
    run = tmp_path / "run"
    result = _train(cli, tox_tables["train"], run)
    assert result.rc == 0, result.err[-2000:]
    table = pd.read_csv(run / "test_metrics.csv")
    undefined = table[table["metric"].eq("roc_auc") & table["value"].isna()]
    assert len(undefined)  # the 300-row table's test part (seed 0) has no SR-MMP positive
    for task, label in undefined[["task", "label"]].itertuples(index=False):
        said = [r.getMessage() for r in caplog.records if r.getMessage().startswith(task)]
        assert any(label in m and "need both classes" in m for m in said), (task, said)
