"""``molddl train``'s output folder: test predictions, split, plots, one log row per epoch,
checkpoints, and ``--resume`` of a run killed (SIGKILL) after its first epoch."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from molddl.cli.main import main
from molddl.models.estimator import DualLabelModel

REPO = Path(__file__).resolve().parents[2]
EPOCHS = 3
#: characters a progress bar writes (carriage returns, the bar, its rate)
BAR_MARKS = ("\r", "it/s", "%|", "█")


def _table(path: Path, n: int = 120) -> Path:
    """A value label (logS) and a binary one (active) from 4 features, some cells empty."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, 4))
    df = pd.DataFrame(X, columns=[f"f{j}" for j in range(4)])
    df["logS"] = X[:, 0] - 0.5 * X[:, 1] + 0.1 * rng.normal(size=n)
    df["active"] = (X[:, 0] + X[:, 2] > 0).astype(float)
    df.loc[::7, "logS"] = np.nan
    df.loc[3::9, "active"] = np.nan
    df.insert(0, "compound", [f"c{i:03d}" for i in range(n)])
    df.to_csv(path, index=False)
    return path


def _args(table: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train", "--set", f"data.dataset={table}", "--set", "data.labels=[logS, active]",
        "--set", "data.id_column=compound", "--set", "data.feature_columns=all",
        "--set", "model.hidden=8", "--set", "model.tower_hidden=8", "--set", "model.layers=1",
        "--set", "model.label_dim=4", "--set", f"train.max_epochs={EPOCHS}",
        "--set", "train.patience=10", "--set", "train.monitor=val_roc_auc",
        "--set", "device=cpu", *extra, "--output", str(out),
    ]  # fmt: skip


def _run(argv: list[str]) -> tuple[int, str, str]:
    """``molddl ARGV`` in this process, stdout and stderr captured (not a terminal)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One uninterrupted ``molddl train`` of 3 epochs, stdout and stderr captured."""
    root = tmp_path_factory.mktemp("folder")
    table = _table(root / "table.csv")
    rc, out, err = _run(_args(table, root / "run"))
    assert rc == 0, err
    return {"root": root, "table": table, "run": root / "run", "out": out, "err": err}


def test_folder_holds_split_predictions_plots_and_checkpoints(folder):
    run = folder["run"]
    for name in ("learning_curves.png", "roc_pr.png", "parity.png"):
        assert (run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    for phase in ("marginal", "dll"):
        for name in ("best.ckpt", "last.ckpt"):  # plain data: loads with weights_only=True
            ckpt = torch.load(run / "checkpoints" / phase / name, weights_only=True)
            assert "state_dict" in ckpt and "optimizer_states" in ckpt

    table = pd.read_csv(folder["table"])
    split = pd.read_csv(run / "split.csv")
    assert sorted(split["id"]) == sorted(table["compound"])  # every sample, once
    assert set(split["part"]) == {"train", "val", "test"}
    model = DualLabelModel.load(run / "model.pt")
    test_ids = split.loc[split["part"] == "test", "id"]
    assert sorted(test_ids) == sorted(model.test_ids_)

    preds = pd.read_csv(run / "test_predictions.csv")
    assert sorted(preds["id"]) == sorted(test_ids)
    truth = table.set_index("compound").loc[preds["id"]]
    for label in ("logS", "active"):  # the true labels, empty where unknown
        np.testing.assert_array_equal(preds[label].to_numpy(), truth[label].to_numpy())
    # Single-y1 predicts logS from the known 'active' (direct), else from nothing (alternate)
    known = preds["active"].notna()
    assert (preds.loc[known, "Single-y1/logS_source"] == "direct").all()
    assert (preds.loc[~known, "Single-y1/logS_source"] == "alternate").all()
    assert preds["Double-y2/active_source"].isin(["alternate", "marginal"]).all()
    assert preds["Single-y2/active_prob"].between(0, 1).all()
    assert {"Single-y1/iterations", "Double/converged"} <= set(preds.columns)

    # the reveal table scores the rows with both labels: the file reproduces its numbers
    metrics = pd.read_csv(run / "test_metrics.csv").set_index(["task", "metric"])["value"]
    both = preds[preds[["logS", "active"]].notna().all(axis=1)]
    for task in ("Single-y2", "Double-y2"):
        auc = roc_auc_score(both["active"], both[f"{task}/active_prob"])
        assert auc == pytest.approx(metrics[(task, "roc_auc")], abs=1e-6)
    mae = (both["Single-y1/logS"] - both["logS"]).abs().mean()
    assert mae == pytest.approx(metrics[("Single-y1", "mae")], rel=1e-5)


def test_csv_log_has_one_row_per_epoch_with_train_and_validation_values(folder):
    for phase in ("marginal", "dll"):
        log = pd.read_csv(folder["run"] / "logs" / phase / "metrics.csv")
        assert log["epoch"].tolist() == list(range(EPOCHS)), phase
        for col in ("train_loss", "val_loss", "val_roc_auc"):
            assert log[col].notna().all(), (phase, col)


def test_no_progress_bar_when_stderr_is_not_a_terminal(folder):
    for stream in (folder["out"], folder["err"]):
        assert not [m for m in BAR_MARKS if m in stream], stream[-2000:]
    assert "Single-y2" in folder["out"]


def test_logger_choice_is_checked_before_training(folder, tmp_path, monkeypatch):
    out = tmp_path / "run"
    rc, _, err = _run(_args(folder["table"], out, "--set", "train.logger=wandb"))
    assert rc == 2 and "'train.logger'" in err, err
    # a machine without either TensorBoard writer (the lock installs tensorboardX)
    real = importlib.util.find_spec
    hidden = ("tensorboard", "tensorboardX")
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in hidden else real(name, *a)
    )
    rc, stdout, err = _run(_args(folder["table"], out, "--set", "train.logger=tensorboard"))
    assert rc == 2, err
    assert "'train.logger'" in err and "tensorboard" in err, err
    assert "training on" not in stdout


def test_tensorboard_logger_writes_event_files(folder, tmp_path):
    out = tmp_path / "run"
    rc, _, err = _run(_args(folder["table"], out, "--set", "train.logger=tensorboard"))
    assert rc == 0, err
    assert list((out / "logs" / "dll").glob("events.out.tfevents.*"))


#: ``molddl train`` in a subprocess that SIGKILLs itself at the first batch of the second
#: epoch of one phase (after the first epoch's checkpoint is written)
KILLER = textwrap.dedent(
    """
    import os, signal, sys
    import lightning as L
    import torch
    from molddl.cli.main import main
    from molddl.models import training

    torch.set_num_threads(1)
    phase = sys.argv[1]

    class Kill(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.current_epoch == 1:
                os.kill(os.getpid(), signal.SIGKILL)

    fit_module = training.fit_module

    def killing(*args, **kwargs):
        if kwargs.get("log_name") == phase:
            kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), Kill()]
        return fit_module(*args, **kwargs)

    training.fit_module = killing
    sys.exit(main(sys.argv[2:]))
    """
)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    model = DualLabelModel.load(path)
    return {
        **{f"net.{k}": v for k, v in model.net_.state_dict().items()},
        **{f"marginal.{k}": v for k, v in model.marginal_.state_dict().items()},
    }


@pytest.mark.parametrize("phase", ["marginal", "dll"])
def test_resume_continues_a_killed_run_to_the_uninterrupted_result(folder, tmp_path, phase):
    run = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, phase, *_args(folder["table"], run)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (run / "model.pt").exists()
    assert (run / "checkpoints" / phase / "last.ckpt").exists()
    log = pd.read_csv(run / "logs" / phase / "metrics.csv")
    assert log["epoch"].tolist() == [0]  # one epoch done, the second killed

    rc, _, err = _run([*_args(folder["table"], run), "--resume"])
    assert rc == 0, err
    # epochs counted across both runs: 3 in all, logged once each
    for name in ("marginal", "dll"):
        resumed = pd.read_csv(run / "logs" / name / "metrics.csv")
        assert resumed["epoch"].tolist() == list(range(EPOCHS)), name
        reference = pd.read_csv(folder["run"] / "logs" / name / "metrics.csv")
        pd.testing.assert_frame_equal(resumed, reference)
    # the same seed and config: the weights of the uninterrupted run, bit for bit
    first, again = _weights(folder["run"] / "model.pt"), _weights(run / "model.pt")
    assert first.keys() == again.keys()
    assert [k for k in first if not torch.equal(first[k], again[k])] == []
    pd.testing.assert_frame_equal(
        pd.read_csv(run / "test_predictions.csv"),
        pd.read_csv(folder["run"] / "test_predictions.csv"),
    )


def test_resume_refuses_an_empty_folder_another_config_and_foreign_code(folder, tmp_path):
    rc, _, err = _run([*_args(folder["table"], tmp_path / "empty"), "--resume"])
    assert rc == 2 and "nothing to resume" in err, err

    run = tmp_path / "run"
    shutil.copytree(folder["run"], run)
    rc, stdout, err = _run(
        [*_args(folder["table"], run, "--set", "train.max_epochs=5"), "--resume"]
    )
    assert rc == 2, err
    assert "another config" in err and "train.max_epochs was 3, now 5" in err, err
    assert "training on" not in stdout  # refused before the data were loaded

    # a checkpoint that would run code when unpickled is refused, and the code never runs
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (run / "checkpoints" / "dll" / "finished.pt").unlink()
    torch.save({"state_dict": Payload()}, run / "checkpoints" / "dll" / "last.ckpt")
    rc, _, err = _run([*_args(folder["table"], run), "--resume"])
    assert rc == 2, err
    assert "last.ckpt was refused" in err and "Traceback" not in err, err
    assert not marker.exists()
