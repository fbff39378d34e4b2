""":mod:`molddl.tuning` on a tiny HIGGS subset (the ``tune`` config section: test_config)."""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from pathlib import Path

import optuna
import pandas as pd
import pytest
import sqlalchemy
from conftest import TINY_HIGGS_FEATURES

from molddl.config import Config, ConfigError
from molddl.evaluation.metrics import METRICS
from molddl.models.estimator import DualLabelModel
from molddl.pipeline import load_splits
from molddl.tuning import (
    PruningCallback,
    apply_params,
    check_metric,
    open_storage,
    storage_url,
    study_direction,
    tune,
)


def tiny_config(path: Path) -> Config:
    """240 HIGGS events (21 low-level features -> m_jj, m_jjj), a 16-wide MLP, 2 epochs."""
    return Config.from_dict(
        {
            "data": {
                "dataset": str(path),
                "labels": ["m_jj", "m_jjj"],
                "feature_columns": TINY_HIGGS_FEATURES,
                "missing_rate": 0.4,
            },
            "model": {"encoder": "mlp", "hidden": 16, "tower_hidden": 16, "gaussian": True},
            "train": {"max_epochs": 2, "batch_size": 64},
            "device": "cpu",
            "tune": {
                "metric": "val_mae",
                "space": {
                    "train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
                    "train.alpha1": {"low": 0.1, "high": 2.0},
                    "model.hidden": {"type": "categorical", "choices": [8, 16]},
                    "model.layers": {"type": "int", "low": 1, "high": 2},
                },
            },
        }
    )


# ---------------------------------------------------------------- study setup


def test_study_direction_follows_the_metric():
    assert study_direction("val_loss") == "minimize"
    assert study_direction("val_roc_auc") == "maximize"
    assert study_direction("val_mae") == "minimize"


@pytest.mark.parametrize("metric", ["val_roc", "roc_auc", "val_accuracy"])
def test_an_unknown_tune_metric_names_the_key_before_anything_runs(metric, tmp_path):
    cfg = Config.from_dict({"tune": {"metric": metric}})
    with pytest.raises(ConfigError, match="config key 'tune.metric'") as err:
        tune(cfg, tmp_path / "out", n_trials=1)
    assert "choose one of val_loss," in str(err.value) and "val_roc_auc" in str(err.value)
    assert not (tmp_path / "out").exists()  # no study, no output folder


def test_every_registered_metric_is_a_valid_tune_metric():
    for metric in ["val_loss", *(f"val_{m}" for m in METRICS)]:
        check_metric(metric)
    with pytest.raises(ConfigError, match=r"'val_roc' is not allowed \(did you mean"):
        check_metric("val_roc")


def test_apply_params_sets_values_and_monitor():
    cfg = Config.from_dict({"tune": {"metric": "val_rmse"}})
    out = apply_params(cfg, {"train.lr": 0.002, "model.layers": 4, "model.hidden": 64})
    assert (out.train.lr, out.model.layers, out.model.hidden) == (0.002, 4, 64)
    assert out.train.monitor == "val_rmse"
    assert cfg.train.lr == 1e-3  # the base config is untouched


# ---------------------------------------------------------------- tuning


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


def test_pruning_callback_stops_training_with_trial_pruned(tiny_higgs_csv, tmp_path):
    cfg = apply_params(tiny_config(tiny_higgs_csv), {"train.max_epochs": 3})
    train, val, _ = load_splits(cfg.data, cfg.seed)
    study = optuna.create_study(pruner=AlwaysPrune())
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned):
        DualLabelModel(cfg).fit(train, val, callbacks=[PruningCallback(trial, "val_mae")])
    assert list(study.trials[0].intermediate_values) == [0]  # stopped after the first epoch


def test_two_workers_share_one_sqlite_study(tiny_higgs_csv, tmp_path):
    cfg = tiny_config(tiny_higgs_csv)
    study = tune(cfg, tmp_path / "out", n_trials=4, workers=2)
    numbers = sorted(t.number for t in study.trials)
    assert numbers == [0, 1, 2, 3]
    done = {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert all(t.state in done for t in study.trials)
    assert (tmp_path / "out" / "study.db").exists()
    assert len(pd.read_csv(tmp_path / "out" / "trials.csv")) == 4


def _postgres_url() -> str:
    """The test server's URL; without a server the test skips, but fails under CI=true (where
    .ci/run starts one)."""
    url = os.environ.get("MOLDDL_TEST_POSTGRES_URL")
    in_ci = os.environ.get("CI", "").lower() in ("true", "1", "yes")
    missing = pytest.fail if in_ci else pytest.skip
    if not url:
        missing("no PostgreSQL server: .ci/run starts one and sets MOLDDL_TEST_POSTGRES_URL")
    try:
        sqlalchemy.create_engine(url).connect().close()
    except Exception as err:
        missing(f"PostgreSQL at {url} is not reachable: {str(err).splitlines()[0]}")
    return url


def test_two_workers_share_one_postgresql_study(tiny_higgs_csv, tmp_path):
    """Distributed search: two processes on one study in a real PostgreSQL server."""
    url = _postgres_url()
    cfg = tiny_config(tiny_higgs_csv)
    name = f"ci-{uuid.uuid4().hex[:8]}"
    cfg = dataclasses.replace(cfg, tune=dataclasses.replace(cfg.tune, storage=url, study=name))
    tune(cfg, tmp_path / "out", n_trials=4, workers=2)
    study = optuna.load_study(study_name=name, storage=url)  # what another machine would see
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    done = {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert all(t.state in done for t in study.trials)
    assert not (tmp_path / "out" / "study.db").exists()  # nothing fell back to SQLite


@pytest.mark.filterwarnings(
    "ignore:Heartbeat of storage", "ignore::optuna.exceptions.ExperimentalWarning"
)
def test_a_trial_whose_worker_died_is_failed_and_retried_by_the_next_run(tiny_higgs_csv, tmp_path):
    cfg = tiny_config(tiny_higgs_csv)
    cfg = dataclasses.replace(cfg, tune=dataclasses.replace(cfg.tune, heartbeat=1))
    out = tmp_path / "out"
    tune(cfg, out, n_trials=1)
    # a worker that starts a trial, beats once and dies (killed, preempted, out of memory)
    storage = open_storage(storage_url(cfg, out), heartbeat=1)
    dead = optuna.load_study(study_name=cfg.tune.study, storage=storage).ask()
    lr = dead.suggest_float("train.lr", 1e-4, 1e-2, log=True)
    storage.record_heartbeat(dead._trial_id)
    time.sleep(3.5)  # longer than the grace period, 2 x heartbeat (SQLite counts whole seconds)
    study = tune(cfg, out, n_trials=1)
    states = [t.state for t in study.trials]
    assert states[1] == optuna.trial.TrialState.FAIL
    retry = study.trials[2]
    assert retry.params["train.lr"] == lr
    assert optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == 1
    assert retry.state in {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert "| failed | 1 |" in (out / "summary.md").read_text()


def test_zero_trials_reports_an_interrupted_study_without_running_one(tiny_higgs_csv, tmp_path):
    cfg = tiny_config(tiny_higgs_csv)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="no study 'molddl'.*nothing to report"):
        tune(cfg, out, n_trials=0)
    tune(cfg, out, n_trials=1)
    # a worker killed mid-trial leaves it RUNNING in the storage
    optuna.load_study(study_name=cfg.tune.study, storage=storage_url(cfg, out)).ask()
    (out / "summary.md").unlink()
    study = tune(cfg, out, n_trials=0)
    assert len(study.trials) == 2
    summary = (out / "summary.md").read_text()
    assert "| trials | 2 |" in summary and "| running or interrupted | 1 |" in summary
    assert len(pd.read_csv(out / "trials.csv")) == 2
    assert (out / "best_config.yaml").exists()


def test_a_trial_killed_before_its_first_heartbeat_is_failed_and_retried(tmp_path):
    """Optuna's stale check skips a running trial without a heartbeat row: a run killed
    between creating a trial and its first heartbeat left it RUNNING for ever."""
    import warnings

    from molddl.tuning.study import fail_heartbeatless_trials, open_storage

    url = f"sqlite:///{tmp_path / 'study.db'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = open_storage(url, heartbeat=1)
        study = optuna.create_study(storage=storage, study_name="s")
        orphan = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})  # no heartbeat
        assert fail_heartbeatless_trials(study, storage) == []  # within the grace period
        time.sleep(2.5)  # past the grace period, 2 x heartbeat
        assert fail_heartbeatless_trials(study, storage) == [orphan.number]
    trials = study.get_trials(deepcopy=False)
    assert trials[orphan.number].state == optuna.trial.TrialState.FAIL
    retry = [t for t in trials if t.state == optuna.trial.TrialState.WAITING]
    assert len(retry) == 1 and retry[0].params == orphan.params
    assert fail_heartbeatless_trials(study, storage) == []  # once
