"""``molddl predict --input`` as a folder or glob of shards (issue 17): which files, in which
order, and a clear error for shards that are not one table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from molddl.inference.screen import _Inputs, input_files


def _write(path: Path, rows: range, columns=("smiles", "SR-ARE")) -> None:
    frame = pd.DataFrame({"smiles": [f"C{'C' * i}" for i in rows], "SR-ARE": [i % 2 for i in rows]})
    frame[list(columns)].to_csv(path, index=False)


def test_a_folder_is_read_in_the_order_of_its_names_numbers_as_numbers(tmp_path):
    for n, rows in ((10, range(6, 9)), (2, range(3, 6)), (1, range(0, 3))):
        _write(tmp_path / f"shard-{n}.csv", rows)
    (tmp_path / "README.txt").write_text("not a shard\n")
    files = input_files(tmp_path)
    assert [f.name for f in files] == ["shard-1.csv", "shard-2.csv", "shard-10.csv"]
    chunks = list(_Inputs(files, "smiles").chunks(2))
    # each shard's chunks in turn, with the shard and the row within it
    assert [(Path(src).name, first) for _, _, src, first in chunks] == [
        ("shard-1.csv", 0), ("shard-1.csv", 2), ("shard-2.csv", 0), ("shard-2.csv", 2),
        ("shard-10.csv", 0), ("shard-10.csv", 2),
    ]  # fmt: skip
    smiles = pd.concat([c for c, *_ in chunks])["smiles"].tolist()
    assert smiles == [f"C{'C' * i}" for i in range(9)]
    progress = [p for _, p, _, _ in chunks]
    assert progress == sorted(progress) and progress[-1] == sum(f.stat().st_size for f in files)


def test_a_glob_matches_files_and_a_shard_may_order_its_columns_otherwise(tmp_path):
    _write(tmp_path / "a.csv", range(2))
    _write(tmp_path / "b.csv", range(2, 4), columns=("SR-ARE", "smiles"))
    _write(tmp_path / "c.txt", range(4, 6))
    files = input_files(str(tmp_path / "*.csv"))
    assert [f.name for f in files] == ["a.csv", "b.csv"]
    chunks = [c for c, *_ in _Inputs(files, "smiles").chunks(10)]
    assert all(list(c.columns) == ["smiles", "SR-ARE"] for c in chunks)
    assert chunks[1]["smiles"].tolist() == ["CCC", "CCCC"]


def test_shards_with_other_columns_are_an_error_naming_the_shard(tmp_path):
    _write(tmp_path / "a.csv", range(2))
    _write(tmp_path / "b.csv", range(2), columns=("smiles",))
    with pytest.raises(ValueError, match=r"b\.csv: its columns differ .*missing: SR-ARE"):
        _Inputs(input_files(tmp_path), "smiles").columns()


def test_shards_of_two_formats_are_an_error(tmp_path):
    _write(tmp_path / "a.csv", range(2))
    pd.read_csv(tmp_path / "a.csv").to_parquet(tmp_path / "b.parquet")
    with pytest.raises(ValueError, match="two formats"):
        _Inputs(input_files(tmp_path), "smiles")


def test_an_empty_folder_or_a_glob_without_match_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="holds no .csv"):
        input_files(tmp_path)
    with pytest.raises(FileNotFoundError, match="no input file matches"):
        input_files(str(tmp_path / "*.csv"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        input_files(tmp_path / "missing.csv")


def _sdf(path: Path, records: list[tuple[str, dict[str, str]]]) -> None:
    from rdkit import Chem

    with Chem.SDWriter(str(path)) as writer:
        for smiles, items in records:
            mol = Chem.MolFromSmiles(smiles)
            for name, value in items.items():
                mol.SetProp(name, value)
            writer.write(mol)


def test_sdf_shards_take_the_union_of_their_data_items(tmp_path):
    _sdf(tmp_path / "a.sdf", [("CCO", {"SR-ARE": "1"}), ("CCN", {"SR-ARE": "0"})])
    _sdf(tmp_path / "b.sdf", [("CCC", {"SR-MMP": "1", "SR-ARE": "0"})])
    table = _Inputs(input_files(tmp_path), "smiles")
    assert table.columns() == ["smiles", "sdf_record", "sdf_title", "SR-ARE", "SR-MMP"]
    frame = pd.concat([c for c, *_ in table.chunks(10)], ignore_index=True)
    assert list(frame.columns) == table.columns()
    assert frame["smiles"].tolist() == ["CCO", "CCN", "CCC"]
    assert frame["sdf_record"].tolist() == ["1", "2", "1"]  # the record within its shard
    assert frame["SR-ARE"].tolist() == ["1", "0", "0"]
    assert frame["SR-MMP"].isna().tolist() == [True, True, False]
