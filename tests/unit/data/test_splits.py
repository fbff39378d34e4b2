"""Train / validation / test splitting: random, scaffold and the user's split column."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from molddl.data.featurizers import PyGGraphFeaturizer, featurize_dataset
from molddl.data.loaders import load_table, load_tox21
from molddl.data.splits import (
    column_split,
    murcko_scaffold,
    random_split,
    scaffold_split,
    split_dataset,
    split_indices,
)


@pytest.fixture(scope="module")
def tox21(data_dir: Path):
    return load_tox21(data_dir=data_dir)


@pytest.fixture(scope="module")
def tox21_smiles(tox21) -> list[str]:
    return list(tox21.smiles[:1500])


def _assert_partition(parts, n: int) -> None:
    joined = np.concatenate(parts)
    assert len(joined) == n, "parts overlap or miss samples"
    assert set(joined.tolist()) == set(range(n))


# --------------------------------------------------------------------------- random


@pytest.mark.parametrize("n", [10, 101, 7831])
@pytest.mark.parametrize("fractions", [(0.8, 0.1, 0.1), (0.6, 0.2, 0.2), (0.5, 0.5, 0.0)])
def test_random_split_partitions_and_honours_fractions(n, fractions):
    parts = random_split(n, fractions, seed=3)
    _assert_partition(parts, n)
    for part, f in zip(parts, fractions, strict=True):
        assert abs(len(part) - f * n) <= 1
        assert np.all(np.diff(part) > 0)


def test_random_split_is_seeded():
    a = random_split(1000, seed=7)
    b = random_split(1000, seed=7)
    c = random_split(1000, seed=8)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[2], c[2])


@pytest.mark.parametrize("fractions", [(0.8, 0.1), (0.8, 0.3, 0.1), (1.2, -0.1, -0.1)])
def test_bad_fractions_are_rejected(fractions):
    with pytest.raises(ValueError, match="fractions"):
        random_split(100, fractions)


# --------------------------------------------------------------------------- scaffold


def test_scaffold_split_keeps_each_scaffold_in_one_part(tox21_smiles):
    parts = scaffold_split(tox21_smiles, (0.8, 0.1, 0.1), seed=0)
    n = len(tox21_smiles)
    _assert_partition(parts, n)
    where = np.empty(n, dtype=int)
    for k, part in enumerate(parts):
        where[part] = k
    groups: dict[str, set[int]] = defaultdict(set)
    for i, s in enumerate(tox21_smiles):
        groups[murcko_scaffold(s)].add(int(where[i]))
    assert len(groups) > 100
    split_groups = {g: p for g, p in groups.items() if len(p) > 1}
    assert not split_groups
    # every part gets molecules and training is the largest
    sizes = [len(p) for p in parts]
    assert min(sizes) > 0 and sizes[0] == max(sizes)
    assert abs(sizes[0] - 0.8 * n) <= 0.1 * n


def test_scaffold_split_is_seeded(tox21_smiles):
    a = scaffold_split(tox21_smiles, seed=1)
    b = scaffold_split(tox21_smiles, seed=1)
    c = scaffold_split(tox21_smiles, seed=2)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[2], c[2])


def test_murcko_scaffold_groups():
    assert murcko_scaffold("c1ccccc1CCO") == murcko_scaffold("c1ccccc1C(=O)N") == "c1ccccc1"
    assert murcko_scaffold("CCO") == ""
    assert murcko_scaffold("not a smiles") != murcko_scaffold("also not one")


def test_scaffold_split_needs_smiles(data_dir):
    from molddl.data.loaders import load_mof

    with pytest.raises(ValueError, match="SMILES"):
        split_indices(load_mof(data_dir=data_dir), "scaffold")


def test_split_dataset_scaffold_on_tox21(tox21):
    train, val, test = split_dataset(tox21.subset(np.arange(600)), "scaffold", seed=0)
    assert len(train) + len(val) + len(test) == 600
    assert not set(train.ids) & set(test.ids)
    assert not {murcko_scaffold(s) for s in train.smiles} & {
        murcko_scaffold(s) for s in test.smiles
    }


def test_unknown_method():
    with pytest.raises(ValueError, match="random"):
        split_indices(_table_without_split(), "stratified")


# --------------------------------------------------------------------------- column


def _table_without_split():
    import pandas as pd

    from molddl.data.loaders import dataset_from_frame

    df = pd.DataFrame({"f": np.arange(10.0), "a": [0.0, 1.0] * 5, "b": np.arange(10.0)})
    return dataset_from_frame(df, ["a", "b"], feature_columns=["f"])


def test_column_split_uses_the_users_column():
    train, val, test = column_split(["train", "Test", "val ", "train", "TRAIN"])
    np.testing.assert_array_equal(train, [0, 3, 4])
    np.testing.assert_array_equal(val, [2])
    np.testing.assert_array_equal(test, [1])


def test_column_split_bad_value_names_its_row():
    with pytest.raises(ValueError) as err:
        column_split(["train", "val", "tset"], row_offset=1)
    assert "row 3" in str(err.value) and "'tset'" in str(err.value)


def _write_split_table(tmp_path: Path, splits: list[str]) -> Path:
    smiles = ["CCO", "CCN", "c1ccccc1", "CC(=O)O", "CCCC", "CCCl"]
    lines = ["smiles,a,b,split"] + [
        f"{s},{i % 2},{i * 0.5},{sp}" for i, (s, sp) in enumerate(zip(smiles, splits, strict=True))
    ]
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_split_dataset_uses_a_split_column(tmp_path):
    path = _write_split_table(tmp_path, ["train", "test", "val", "train", "test", "train"])
    data = load_table(path, ["a", "b"])
    for method in ("random", "scaffold", "column"):
        train, val, test = split_dataset(data, method, seed=5)
        assert list(train.smiles) == ["CCO", "CC(=O)O", "CCCl"]
        assert list(val.smiles) == ["c1ccccc1"]
        assert list(test.smiles) == ["CCN", "CCCC"]


def test_column_split_without_column_is_an_error():
    with pytest.raises(ValueError, match="'split' column"):
        split_indices(_table_without_split(), "column")


def test_bad_split_value_in_a_file_names_the_file_row(tmp_path):
    path = _write_split_table(tmp_path, ["train", "test", "val", "train", "tesst", "train"])
    data = load_table(path, ["a", "b"])
    with pytest.raises(ValueError, match="row 5"):
        split_dataset(data)


def test_bad_split_value_row_after_dropping_invalid_smiles(tmp_path):
    # row 2 holds an invalid SMILES; featurization drops it, the row numbers must not shift
    path = tmp_path / "t.csv"
    path.write_text("smiles,a,b,split\nCCO,1,0,train\nC1CC,0,1,train\nCCN,1,1,val\nCCC,0,0,valid\n")
    data, invalid = featurize_dataset(load_table(path, ["a", "b"]), PyGGraphFeaturizer())
    assert [i.row for i in invalid] == [2]
    with pytest.raises(ValueError, match="row 4"):
        split_dataset(data)
