"""``molddl train`` with chemprop's flags, and data paths stored absolute: a model trained on
``mine.csv`` in one folder is evaluated from another."""

from __future__ import annotations

import argparse

import pytest
import yaml

from molddl.cli.main import build_parser, main
from molddl.cli.options import resolve_config
from molddl.config import Config
from molddl.models.estimator import DualLabelModel

TINY_MLP = [
    "--set", "model.encoder=mlp", "--set", "model.hidden=16", "--set", "model.tower_hidden=16",
    "--set", "model.layers=1", "--set", "train.batch_size=64", "--set", "device=cpu",
]  # fmt: skip


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser("train").parse_args(["train", *argv])


# ---------------------------------------------------------------- the flags


def test_chemprop_flags_map_onto_config_keys(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.csv").write_text("smiles,a,b\nCCO,1,0\n")
    args = _parse(
        "--data-path", "mine.csv", "--smiles-columns", "smiles", "--target-columns", "a", "b",
        "--split-type", "scaffold_balanced", "--epochs", "7", "--save-dir", "out",
    )  # fmt: skip
    assert args.output == "out"
    cfg = resolve_config(args)
    assert cfg.data.dataset == str(tmp_path / "mine.csv")
    assert (cfg.data.smiles_column, cfg.data.labels) == ("smiles", ["a", "b"])
    assert (cfg.data.split, cfg.train.max_epochs) == ("scaffold", 7)
    for split in ("random", "Scaffold", "column"):
        assert resolve_config(_parse("--split-type", split, "--output", "o")).data.split == (
            split.lower()
        )


def test_a_flag_and_set_of_one_key_the_later_wins():
    first = _parse("--epochs", "3", "--set", "train.max_epochs=5", "--output", "o")
    last = _parse("--set", "train.max_epochs=5", "--epochs", "3", "--output", "o")
    assert (resolve_config(first).train.max_epochs, resolve_config(last).train.max_epochs) == (5, 3)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--split-type", "kmeans"], "argument --split-type: 'kmeans' is not a split molddl has"),
        (["--target-columns", "a"], "argument --target-columns: DLL learns two labels"),
        (["--target-columns", "a", "b", "c"], "argument --target-columns"),
        (["--smiles-columns", "s1", "s2"], "argument --smiles-columns: molddl reads one"),
        (["--epochs", "0"], "argument --epochs: must be at least 1"),
        (["--epochs", "many"], "argument --epochs: 'many' is not a whole number"),
    ],
)
def test_a_bad_chemprop_flag_is_named(argv, named, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--output", "o", *argv])
    assert exit_.value.code == 2
    assert named in capsys.readouterr().err


def test_save_dir_or_output_is_required(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--epochs", "1"])
    assert "--output/--save-dir" in capsys.readouterr().err


def test_the_help_lists_the_chemprop_flags(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for flag in ("--data-path", "--smiles-columns", "--target-columns", "--split-type",
                 "--epochs", "--save-dir"):  # fmt: skip
        assert flag in out, flag


# ---------------------------------------------------------------- absolute data paths


def test_relative_data_paths_become_absolute_and_names_stay_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tox21").write_text("a file that happens to share the name\n")
    (tmp_path / "data").mkdir()
    ns = argparse.Namespace(config=None, overrides=["data.dataset=tox21"], data_dir="data")
    cfg = resolve_config(ns)
    assert (cfg.data.dataset, cfg.data.data_dir) == ("tox21", str(tmp_path / "data"))
    missing = argparse.Namespace(config=None, overrides=["data.dataset=nope.csv"], data_dir=None)
    assert resolve_config(missing).data.dataset == "nope.csv"  # the error names what was typed


def test_a_trained_models_own_paths_are_left_as_they_are(tmp_path, monkeypatch):
    """``molddl evaluate`` starts from the model's config: its paths are not re-read against
    the folder of the evaluation."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.csv").write_text("smiles,a,b\nCCO,1,0\n")
    stored = Config.from_dict({"data": {"dataset": "mine.csv", "data_dir": "data"}}).to_dict()
    ns = argparse.Namespace(config=None, overrides=[], data_dir=None)
    assert resolve_config(ns, stored).data.dataset == "mine.csv"
    assert resolve_config(ns, stored).data.data_dir == "data"


@pytest.mark.slow
def test_a_model_trained_on_a_relative_path_evaluates_from_another_folder(
    tiny_higgs_csv, tmp_path, monkeypatch, capsys
):
    work = tiny_higgs_csv.parent
    monkeypatch.chdir(work)
    (work / "data").mkdir()
    rc = main(
        ["train", "--data-path", tiny_higgs_csv.name, "--target-columns", "m_jj", "m_jjj",
         "--set", "data.feature_columns=all", "--data-dir", "data", "--epochs", "1",
         "--split-type", "random", *TINY_MLP, "--save-dir", "run"]
    )  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    saved = yaml.safe_load((work / "run" / "config.yaml").read_text())
    assert saved["data"]["dataset"] == str(work / tiny_higgs_csv.name)
    assert saved["data"]["data_dir"] == str(work / "data")
    assert saved["train"]["max_epochs"] == 1
    stored = DualLabelModel.load(work / "run" / "model.pt").config_
    assert stored.data.dataset == str(work / tiny_higgs_csv.name)
    capsys.readouterr()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    rc = main(["evaluate", "--model", str(work / "run" / "model.pt"), "--output", "scores.csv"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "Single-y1" in captured.out and (elsewhere / "scores.csv").exists()
