"""A model on numeric feature columns, given bad feature cells to predict: refused naming the
row and column, as training refuses them, never predicted from NaN."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .conftest import TINY, snapshot

FEATURES = [f"f{j}" for j in range(4)]


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURES)))
    df = pd.DataFrame(X, columns=FEATURES)
    df["a"] = (X[:, 0] + X[:, 1] > 0).astype(float)
    df["b"] = X[:, 2] - X[:, 0] + 0.1 * rng.normal(size=n)
    return df


@pytest.fixture(scope="module")
def tabular_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from molddl.cli.main import main

    root = tmp_path_factory.mktemp("tabular")
    _table(200, 0).to_csv(root / "train.csv", index=False)
    rc = main([
        "train", "--set", f"data.dataset={root / 'train.csv'}", "--set", "data.labels=[a, b]",
        "--set", "data.feature_columns=all", "--set", "model.encoder=mlp", *TINY,
        "--output", str(root / "run"),
    ])  # fmt: skip
    assert rc == 0
    return root / "run" / "model.pt"


def _screen(tmp_path: Path, edit) -> Path:
    df = _table(30, 1)
    df[["a", "b"]] = np.nan
    edit(df)
    path = tmp_path / "screen.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("edit", "needles"),
    [
        pytest.param(lambda d: d.__setitem__("f1", d["f1"].where(d.index != 4, np.inf)),
                     ("'f1'", "row 5", "finite"), id="inf",
                     marks=pytest.mark.case(risk="silent-wrong",
                                            tried="tabular predict with an inf feature cell")),
        pytest.param(lambda d: d.__setitem__("f3", d["f3"].where(d.index != 9)),
                     ("'f3'", "row 10", "empty"), id="empty",
                     marks=pytest.mark.case(risk="silent-wrong",
                                            tried="tabular predict with an empty feature cell")),
        pytest.param(lambda d: d.drop(columns=["f2"], inplace=True),
                     ("'f2'", "missing"), id="missing-column",
                     marks=pytest.mark.case(risk="traceback",
                                            tried="tabular predict on a table lacking a feature")),
    ],
)  # fmt: skip
def test_bad_feature_cells_are_refused(cli, tabular_model, tmp_path, edit, needles):
    path = _screen(tmp_path, edit)
    before = snapshot(path, tabular_model)
    out = tmp_path / "out.csv"
    result = cli("predict", "--model", tabular_model, "--input", path, "--output", out)
    result.assert_error(*needles)
    assert not out.exists()
    assert snapshot(path, tabular_model) == before


@pytest.mark.case(risk="silent-wrong", tried="tabular predict on good cells: finite predictions")
def test_good_cells_predict_finite_values(cli, tabular_model, tmp_path):
    path = _screen(tmp_path, lambda d: None)
    out = tmp_path / "out.csv"
    result = cli("predict", "--model", tabular_model, "--input", path, "--output", out)
    assert result.rc == 0, result.err[-2000:]
    table = pd.read_csv(out)
    predicted = table["a_source"] != "given"
    assert predicted.any() and np.isfinite(table.loc[predicted, "a_prob"]).all()
    assert np.isfinite(table["b"]).all()
