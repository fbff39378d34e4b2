"""``molddl train``'s output folder: a killed run, a folder that cannot be written, a full
disk. The folder holds a matching model and config, the earlier run's or the new one's."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from .conftest import TINY, children, limit_file_size, snapshot, start, wait_gone


def _args(tox_tables, out: Path, *extra: str) -> list[str]:
    return [
        "train", "--set", f"data.dataset={tox_tables['train']}",
        "--set", "data.labels=[SR-ARE, SR-MMP]", *TINY, *extra, "--output", str(out),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def earlier_run(tiny_model: Path) -> Path:
    """The folder of a finished run (model, config, logs, metrics)."""
    return tiny_model.parent


@pytest.mark.case(risk="data-loss", tried="train killed (SIGKILL) into a folder of an earlier run")
def test_killed_train_leaves_the_earlier_run_whole(tox_tables, earlier_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(earlier_run, run, ignore=shutil.ignore_patterns("logs"))
    before = snapshot(run / "model.pt", run / "config.yaml", run / "test_metrics.csv")
    proc = start(*_args(tox_tables, run, "--set", "train.max_epochs=500",
                        "--set", "train.patience=500", "--set", "model.hidden=16"))  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(run.glob("logs/marginal/*")):  # the new run's own logs: it trains
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.2)
    time.sleep(1.0)  # well inside training (500 epochs)
    kids = children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert wait_gone(kids) == []
    after = snapshot(run / "model.pt", run / "config.yaml", run / "test_metrics.csv")
    assert after == before  # the earlier model with its own config and metrics
    assert "training on" in proc.stdout.read()  # it did get that far
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.case(risk="traceback", tried="train into a folder that cannot be written")
def test_unwritable_output_folder(cli, tox_tables, unwritable_dir):
    started = time.monotonic()
    result = cli(*_args(tox_tables, unwritable_dir))
    result.assert_error(str(unwritable_dir), "cannot write")
    assert "training on" not in result.out  # found before the training, not after it
    assert time.monotonic() - started < 30


@pytest.mark.case(risk="traceback", tried="train with --output naming an existing file")
def test_output_is_a_file(cli, tox_tables, tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("my notes")
    cli(*_args(tox_tables, target)).assert_error(str(target), "not a folder")
    assert target.read_text() == "my notes"


@pytest.mark.case(risk="data-loss", tried="train on a disk that fills up while saving the model")
def test_full_disk_while_saving(cli_proc, tox_tables, earlier_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(earlier_run, run)
    before = snapshot(run / "model.pt", run / "config.yaml")
    size = (run / "model.pt").stat().st_size
    result = cli_proc(*_args(tox_tables, run), preexec_fn=limit_file_size(size // 2))
    assert result.rc == 1, result.err[-2000:]
    assert "Traceback" not in result.err
    assert "File too large" in result.message and "model.pt" in result.message
    assert snapshot(run / "model.pt", run / "config.yaml") == before
    assert not [p for p in run.rglob("*.tmp")]


@pytest.mark.case(risk="data-loss", tried="predict on a disk that fills up while writing")
def test_full_disk_while_predicting(cli_proc, tiny_model, tox_tables, tmp_path):
    inputs = tmp_path / "screen.csv"
    inputs.write_bytes(tox_tables["screen"].read_bytes())
    out = tmp_path / "preds.csv"
    out.write_text("an earlier output the user keeps\n")
    before = snapshot(inputs, tiny_model, out)
    result = cli_proc(
        "predict", "--model", tiny_model, "--input", inputs, "--output", out,
        "--workers", "1", "--chunk-size", "20",
        preexec_fn=limit_file_size(inputs.stat().st_size // 2),
    )  # fmt: skip
    assert result.rc == 1, result.err[-2000:]
    assert "Traceback" not in result.err
    assert "File too large" in result.message and str(out) in result.message
    assert snapshot(inputs, tiny_model, out) == before  # the earlier output is untouched too
    assert not list(tmp_path.glob(".preds.csv.*.tmp"))
