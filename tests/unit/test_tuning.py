"""The ``tune`` config section and :mod:`molddl.tuning` on a tiny HIGGS subset."""

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
from molddl.models.estimator import DualLabelModel
from molddl.pipeline import load_splits
from molddl.tuning import (
    PruningCallback,
    apply_params,
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


# ---------------------------------------------------------------- config


def test_default_tune_section():
    tune_cfg = Config().tune
    assert (tune_cfg.trials, tune_cfg.metric, tune_cfg.study) == (20, "val_loss", "molddl")
    assert tune_cfg.storage is None and tune_cfg.pruner == "median"
    assert set(tune_cfg.space) == {
        "train.alpha1", "train.alpha2", "train.beta1", "train.beta2", "train.gamma",
        "train.lr", "model.hidden", "model.layers", "model.dropout",
    }  # fmt: skip
    assert tune_cfg.space["train.gamma"].log
    assert tune_cfg.space["model.hidden"].choices == [64, 128, 256]
    assert study_direction("val_loss") == "minimize"
    assert study_direction("val_roc_auc") == "maximize"
    assert study_direction("val_mae") == "minimize"


def test_tune_section_round_trips_through_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "tune:\n  trials: 5\n  metric: val_roc_auc\n  storage: postgresql://u@db/optuna\n"
        "  space:\n    model.encoder: {type: categorical, choices: [mlp, gin]}\n"
    )
    cfg = Config.from_yaml(path)
    assert cfg.tune.trials == 5 and cfg.tune.space["model.encoder"].choices == ["mlp", "gin"]
    (tmp_path / "again.yaml").write_text(cfg.to_yaml())
    assert Config.from_yaml(tmp_path / "again.yaml") == cfg


@pytest.mark.parametrize(
    ("tune_section", "named"),
    [
        ({"trails": 3}, "'tune.trails' (did you mean 'trials'?)"),
        ({"metric": "val_roc"}, "'tune.metric'"),
        ({"pruner": "hyperband"}, "'tune.pruner'"),
        ({"storage": "study.db"}, "'tune.storage'"),
        ({"space": {"train.alpah1": {"low": 0.1, "high": 2}}}, "'train.alpah1'"),
        ({"space": {"data.split": {"type": "categorical", "choices": ["random"]}}}, "data.split"),
        ({"space": {"train.lr": {"type": "beta", "low": 0.1, "high": 1}}}, "tune.space.train.lr"),
        ({"space": {"train.lr": {"lo": 0.1}}}, "'tune.space.train.lr.lo'"),
        ({"space": {"train.lr": {"low": 0.0, "high": 1, "log": True}}}, "log range"),
        ({"space": {"model.layers": {"low": 1.5, "high": 3}}}, "model.layers"),
        ({"space": {"model.encoder": {"type": "categorical", "choices": ["mlp", "x"]}}}, "'x'"),
    ],
)
def test_bad_tune_section_names_the_key(tune_section, named):
    with pytest.raises(ConfigError) as err:
        Config.from_dict({"tune": tune_section})
    assert named in str(err.value)


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
    url = os.environ.get("MOLDDL_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("no PostgreSQL server: .ci/run starts one and sets MOLDDL_TEST_POSTGRES_URL")
    try:
        sqlalchemy.create_engine(url).connect().close()
    except Exception as err:
        pytest.skip(f"PostgreSQL at {url} is not reachable: {str(err).splitlines()[0]}")
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
