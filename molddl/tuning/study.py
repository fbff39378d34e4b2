"""The study's setup: its direction, storage (with heartbeats), sampler and pruner, and the
check of ``tune.metric`` against the metric registry."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import optuna

from molddl.config import Config, check_choice
from molddl.evaluation.metrics import METRICS
from molddl.models.training import monitor_mode

#: the states of a trial that no worker will touch again
FINISHED = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.FAIL,
)


def check_metric(metric: str) -> None:
    """``tune.metric`` is ``val_loss`` or ``val_<name>`` of the metric registry.

    Checked here, when a tune run starts, rather than in the config, which does not import
    the registry; the error names the key as the config's own errors do.
    """
    check_choice("tune.metric", metric, ["val_loss", *(f"val_{m}" for m in sorted(METRICS))])


def study_direction(metric: str) -> Literal["minimize", "maximize"]:
    """``minimize`` or ``maximize``, as early stopping treats ``metric``."""
    return "minimize" if monitor_mode(metric) == "min" else "maximize"


def storage_url(cfg: Config, output_dir: str | Path) -> str:
    """``tune.storage``, or ``sqlite:///<output_dir>/study.db`` when it is not set."""
    return cfg.tune.storage or f"sqlite:///{Path(output_dir).resolve() / 'study.db'}"


def open_storage(url: str, heartbeat: int = 0) -> optuna.storages.RDBStorage:
    """An RDB storage; SQLite waits up to 60 s for a lock held by another worker.

    With ``heartbeat`` seconds (``tune.heartbeat``), each running trial records a heartbeat;
    a trial silent for ``2 * heartbeat`` is failed by the next trial that starts and retried
    once with its parameters (Optuna's ``RetryHeartbeatStaleTrialCallback``)."""
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    if not heartbeat:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    with warnings.catch_warnings():  # both are marked experimental in Optuna
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=kwargs,
            heartbeat_interval=heartbeat,
            grace_period=2 * heartbeat,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=1
            ),
        )


def join_study(cfg: Config, url: str, seed: int) -> optuna.Study:
    """The existing study ``cfg.tune.study`` in ``url``, with this worker's TPE sampler
    (seeded by ``seed``, so that workers sample different points), the ``tune.pruner`` and
    the ``tune.heartbeat``."""
    pruner = (
        optuna.pruners.MedianPruner() if cfg.tune.pruner == "median" else optuna.pruners.NopPruner()
    )
    return optuna.load_study(
        study_name=cfg.tune.study,
        storage=open_storage(url, cfg.tune.heartbeat),
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=pruner,
    )


def n_finished(study: optuna.Study) -> int:
    """Trials that are complete, pruned or failed."""
    return len(study.get_trials(deepcopy=False, states=FINISHED))
