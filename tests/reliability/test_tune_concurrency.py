"""``molddl tune`` run more than once at a time on one study: processes started together on a
fresh output folder, a run killed mid-trial and started again, and the one-line errors of a
storage that cannot be used. Every run is the real command, on 240 HIGGS events with a tiny
MLP and two tuned settings, so that a trial takes a second or two."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from conftest import TINY_HIGGS_FEATURES

from .conftest import children, molddl_env, snapshot, start, wait_gone

DONE = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def tune_args(csv: Path, out: Path, *more: str) -> list[str]:
    """``molddl tune`` on ``csv`` into ``out``: a tiny MLP, one epoch, two tuned settings."""
    return [
        "tune",
        "--set", f"data.dataset={csv}",
        "--set", "data.labels=[m_jj, m_jjj]",
        "--set", f"data.feature_columns=[{', '.join(TINY_HIGGS_FEATURES)}]",
        "--set", "model.encoder=mlp",
        "--set", "model.hidden=8",
        "--set", "model.tower_hidden=8",
        "--set", "model.layers=1",
        "--set", "train.max_epochs=1",
        "--set", "device=cpu",
        "--set", "tune.space={train.lr: {type: float, low: 0.0001, high: 0.01, log: true}, "
                 "train.alpha1: {low: 0.1, high: 2.0}}",
        "--output", str(out),
        *more,
    ]  # fmt: skip


def env() -> dict[str, str]:
    """A subprocess's environment: one intra-op thread (the machine has few cores)."""
    return {**molddl_env(), "OMP_NUM_THREADS": "1"}


def load(out: Path) -> optuna.Study:
    return optuna.load_study(study_name="molddl", storage=f"sqlite:///{out / 'study.db'}")


def params(study: optuna.Study) -> list[tuple[float, ...]]:
    """Each trial's parameters, in trial order."""
    return [tuple(t.params[k] for k in sorted(t.params)) for t in study.trials]


def holds_open(pid: int, folder: Path) -> bool:
    """Whether process ``pid`` has a file under ``folder`` open (it reached the study)."""
    try:
        links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
    except OSError:
        return False
    return any(link.startswith(f"{folder.resolve()}{os.sep}") for link in links)


def finish(procs: list[subprocess.Popen], timeout: float = 240) -> list[tuple[int, str]]:
    """Each process's exit status and stderr, once it ends."""
    out = []
    for p in procs:
        _, err = p.communicate(timeout=timeout)
        out.append((p.returncode, err))
    return out


@pytest.mark.case(
    risk="concurrency",
    tried="two `molddl tune --trials 3` processes started at the same moment on one fresh output "
    "folder (held at the door of its new SQLite study until both are waiting there)",
)
def test_two_processes_started_together_share_the_study_and_sample_different_points(
    tiny_higgs_csv, tmp_path
):
    out = tmp_path / "tune"
    out.mkdir()
    # the study's database, locked, so that both processes arrive at it before either goes
    # on: on a busy machine one process's start-up can otherwise outrun the other's
    door = sqlite3.connect(out / "study.db", isolation_level=None)
    door.execute("BEGIN EXCLUSIVE")
    procs = [start(*tune_args(tiny_higgs_csv, out, "--trials", "3"), env=env()) for _ in "ab"]
    try:
        deadline = time.monotonic() + 180
        while not all(holds_open(p.pid, out) for p in procs):
            assert time.monotonic() < deadline, "the processes never reached the study"
            assert all(p.poll() is None for p in procs), finish(procs)
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        door.rollback()
        door.close()
    results = finish(procs)
    for rc, err in results:
        assert rc == 0, err[-3000:]
        assert "Traceback" not in err, err[-3000:]

    study = load(out)
    assert len(study.trials) == 6 and all(t.state in DONE for t in study.trials), study.trials
    drawn = params(study)
    assert len(set(drawn)) == 6, f"repeated parameters: {drawn}"


@pytest.mark.case(
    risk="concurrency",
    tried="`molddl tune --set seed=3 --trials 2` run twice into two fresh output folders",
)
def test_one_seed_gives_the_same_trials_in_two_fresh_studies(tiny_higgs_csv, tmp_path, cli):
    outs = [tmp_path / "first", tmp_path / "second"]
    for out in outs:
        result = cli(*tune_args(tiny_higgs_csv, out, "--trials", "2", "--set", "seed=3"))
        assert result.rc == 0, result.err[-3000:]
    first, second = (params(load(out)) for out in outs)
    assert len(first) == 2 and len(set(first)) == 2
    assert first == second


def _running_with_heartbeat(db: Path) -> int:
    """Running trials of the study in ``db`` that have recorded a heartbeat (Optuna's
    tables), 0 while the study is being created; -1 while a running trial has none yet."""
    try:
        with sqlite3.connect(db, timeout=1) as con:
            running = con.execute("SELECT trial_id FROM trials WHERE state = 'RUNNING'")
            ids = {row[0] for row in running}
            beats = {row[0] for row in con.execute("SELECT trial_id FROM trial_heartbeats")}
    except sqlite3.Error:
        return 0
    return len(ids) if ids <= beats else -1


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.case(
    risk="concurrency",
    tried="`molddl tune --workers 2 --set tune.heartbeat=1` killed (SIGKILL) while its workers "
    "ran trials, then run again into the same output folder",
)
def test_a_killed_run_leaves_no_worker_and_the_next_run_retries_its_trials(
    tiny_higgs_csv, tmp_path, cli
):
    out = tmp_path / "tune"
    # trials of 30 epochs (about a second or more each), so that the kill lands while one
    # runs: with one-epoch trials a CI run once killed both workers between trials
    long = ("--set", "train.max_epochs=30", "--set", "train.patience=30")
    args = tune_args(tiny_higgs_csv, out, "--set", "tune.heartbeat=1", *long)
    proc = start(*args, "--workers", "2", "--trials", "20", env=env())
    try:
        deadline = time.monotonic() + 180
        while _running_with_heartbeat(out / "study.db") < 1:
            assert time.monotonic() < deadline, "no trial started"
            assert proc.poll() is None, finish([proc])
            time.sleep(0.2)
        workers = children(proc.pid)
        assert len(workers) >= 2, workers
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):  # not read to the end: its workers share them
            if pipe is not None:
                pipe.close()
    assert wait_gone(workers, timeout=10) == [], "workers of the killed run still run"
    killed = [t.number for t in load(out).trials if t.state == optuna.trial.TrialState.RUNNING]
    assert killed
    time.sleep(3.5)  # longer than the grace period, 2 x heartbeat (SQLite counts whole seconds)

    result = cli(*args, "--trials", "2")  # in this process: it has paid for the imports
    assert result.rc == 0, result.err[-3000:]
    study = load(out)
    for number in killed:
        assert study.trials[number].state == optuna.trial.TrialState.FAIL, number
    retried = {
        optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t): t
        for t in study.trials
    }
    for number in killed:
        assert number in retried, (number, study.trials)
        assert retried[number].state in DONE
        # the retry keeps what the killed trial had sampled (all of it, or, killed while
        # sampling, the first parameters or none) and samples the rest
        assert study.trials[number].params.items() <= retried[number].params.items()
    assert not [t for t in study.trials if t.state not in (*DONE, optuna.trial.TrialState.FAIL)]
    assert "| failed |" in (out / "summary.md").read_text()


@pytest.mark.case(
    risk="traceback",
    tried="`molddl tune --storage sqlite:///notes.db` where notes.db is a text file, and "
    "`--storage nosuch://host/db`",
)
def test_a_storage_that_cannot_be_used_is_a_one_line_error(tiny_higgs_csv, tmp_path, cli):
    notes = tmp_path / "notes.db"
    notes.write_text("not a database\n")
    before = snapshot(notes)
    url = f"sqlite:///{notes}"
    result = cli(*tune_args(tiny_higgs_csv, tmp_path / "a", "--trials", "1", "--storage", url))
    result.assert_error(url, "file is not a database")
    assert snapshot(notes) == before  # the user's file is untouched

    url = "nosuch://host/db"
    result = cli(*tune_args(tiny_higgs_csv, tmp_path / "b", "--trials", "1", "--storage", url))
    result.assert_error(url)
