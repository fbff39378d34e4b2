"""Progress bars: on stderr and named by phase when asked for; none when stderr is not a
terminal (a redirected log) in ``train``, ``tune``, ``benchmark`` and featurization."""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from molddl.cli.main import main
from molddl.data.featurizers import MorganFingerprint, PyGGraphFeaturizer, featurize_dataset
from molddl.data.featurizers import run as featurize_run
from molddl.data.loaders import load_tox21
from molddl.progress import Progress

#: characters a progress bar writes (carriage returns, the bar, its rate)
BAR_MARKS = ("\r", "it/s", "%|", "█")
TINY = [
    "--set", "model.hidden=8", "--set", "model.tower_hidden=8", "--set", "model.layers=1",
    "--set", "model.label_dim=4", "--set", "device=cpu",
]  # fmt: skip


class _Terminal(io.StringIO):
    """A captured stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def _bars(text: str) -> list[str]:
    return [m for m in BAR_MARKS if m in text]


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 4))
    df = pd.DataFrame(X, columns=[f"f{j}" for j in range(4)])
    df["y1"] = X[:, 0] + 0.1 * rng.normal(size=100)
    df["y2"] = X[:, 1] - X[:, 0] + 0.1 * rng.normal(size=100)
    path = tmp_path_factory.mktemp("bars") / "table.csv"
    df.to_csv(path, index=False)
    return path


def _data(table: Path) -> list[str]:
    return [
        "--set", f"data.dataset={table}", "--set", "data.labels=[y1, y2]",
        "--set", "data.feature_columns=all", "--set", "model.encoder=mlp", *TINY,
    ]  # fmt: skip


def test_forced_training_bars_go_to_stderr_named_by_phase(data_dir, tmp_path, capsys):
    rows = pd.read_csv(data_dir / "tox21.csv.gz")[["smiles", "SR-ARE", "SR-MMP"]].iloc[:80]
    rows.to_csv(tmp_path / "mols.csv", index=False)
    rc = main([
        "train", "--set", f"data.dataset={tmp_path / 'mols.csv'}",
        "--set", "data.labels=[SR-ARE, SR-MMP]", *TINY, "--set", "train.max_epochs=1",
        "--set", "train.progress_bar=true", "--output", str(tmp_path / "run"),
    ])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert _bars(captured.out) == [], captured.out  # stdout: results only
    assert "marginal epoch 0" in captured.err and "DLL epoch 0" in captured.err
    # a molecular table: split.csv and test_predictions.csv carry the SMILES
    assert "smiles" in pd.read_csv(tmp_path / "run" / "split.csv").columns
    assert "smiles" in pd.read_csv(tmp_path / "run" / "test_predictions.csv").columns


def test_tune_writes_no_bar_into_a_log(table, tmp_path, capsys):
    rc = main([
        "tune", *_data(table), "--set", "train.max_epochs=1", "--set", "train.progress_bar=true",
        "--trials", "1", "--output", str(tmp_path / "tune"),
    ])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert _bars(captured.err) == [] and _bars(captured.out) == [], captured.err[-2000:]


def test_benchmark_writes_no_bar_into_a_log(table, tmp_path, capsys):
    rc = main([
        "benchmark", "compare", "--quick", *_data(table), "--methods", "DLL",
        "--seeds", "0", "--output", str(tmp_path / "bench"),
    ])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert _bars(captured.err) == [] and _bars(captured.out) == [], captured.err[-2000:]


def test_progress_is_a_bar_on_a_terminal_and_log_lines_elsewhere(monkeypatch, caplog):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with Progress(3, "cells") as bar:
        for _ in range(3):
            bar.update()
    assert "cells" in terminal.getvalue() and "3/3" in terminal.getvalue()

    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    with caplog.at_level(logging.INFO, logger="molddl.progress"), Progress(3, "cells") as bar:
        for _ in range(3):
            bar.update()
    assert log.getvalue() == ""
    assert "cells: 3 of 3 done" in caplog.text


@pytest.mark.parametrize("featurizer", [PyGGraphFeaturizer(), MorganFingerprint()])
def test_featurization_shows_a_bar_for_big_inputs_on_a_terminal(data_dir, monkeypatch, featurizer):
    smiles = load_tox21(data_dir=data_dir).smiles[1300:1340]  # with an invalid one (1323)
    plain = featurize_run.compute_features(featurizer, smiles)
    monkeypatch.setattr(featurize_run, "PROGRESS_MIN", 30)  # "big" for the test
    monkeypatch.setattr(featurize_run, "PROGRESS_PIECE", 7)

    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    quiet = featurize_run.compute_features(featurizer, smiles, progress=True)
    assert log.getvalue() == ""  # not a terminal: no bar

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    shown = featurize_run.compute_features(featurizer, smiles, progress=True)
    assert "featurize" in terminal.getvalue() and "40/40" in terminal.getvalue()
    for features in (quiet, shown):  # in pieces or not, the same features
        assert features.keys() == plain.keys()
        assert all(torch.equal(features[k], plain[k]) for k in plain)


def test_featurize_dataset_shows_its_bar_on_a_terminal(data_dir, monkeypatch, tmp_path):
    data = load_tox21(data_dir=data_dir).subset(np.arange(40))
    monkeypatch.setattr(featurize_run, "PROGRESS_MIN", 30)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    featurize_dataset(data, MorganFingerprint(), cache_dir=tmp_path)
    assert "featurize (morgan)" in terminal.getvalue()
