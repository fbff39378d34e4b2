"""The search: ``tune()`` adds trials to a study, in this process or in spawned workers
that each join the study through its storage, then writes the reports."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import torch

from molddl.config import Config
from molddl.tuning.objective import Objective
from molddl.tuning.report import write_reports
from molddl.tuning.study import (
    check_metric,
    join_study,
    n_finished,
    open_storage,
    storage_url,
    study_direction,
)

logger = logging.getLogger(__name__)

#: loss weights: ``val_loss`` is their weighted sum, so it favours small weights
LOSS_WEIGHTS = ("train.alpha1", "train.alpha2", "train.beta1", "train.beta2", "train.gamma")


def _optimize(
    cfg: Config,
    url: str,
    n_trials: int,
    worker: int,
    seed_offset: int,
    callbacks: list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] | None = None,
) -> None:
    """Join the study and run ``n_trials`` trials with a sampler seeded by
    ``cfg.seed + seed_offset + worker``."""
    study = join_study(cfg, url, seed=cfg.seed + seed_offset + worker)
    study.optimize(Objective(cfg), n_trials=n_trials, callbacks=callbacks)


def _worker(
    cfg_dict: dict, url: str, n_trials: int, worker: int, seed_offset: int, threads: int
) -> None:
    """Entry point of a spawned worker process."""
    logging.basicConfig(level=logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(threads)
    _optimize(Config.from_dict(cfg_dict), url, n_trials, worker, seed_offset)


def _shares(n_trials: int, workers: int) -> list[int]:
    """``n_trials`` split as evenly as possible over at most ``workers`` workers."""
    workers = min(workers, n_trials)
    return [n_trials // workers + (i < n_trials % workers) for i in range(workers)]


def tune(
    cfg: Config,
    output_dir: str | Path,
    n_trials: int | None = None,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> optuna.Study:
    """Run ``n_trials`` more trials of the study ``cfg.tune.study`` and write its reports.

    Parameters
    ----------
    cfg
        The base config; ``cfg.tune`` holds the space, metric, study name and storage.
    output_dir
        Where ``best_config.yaml``, ``trials.csv``, ``summary.md`` and the plots go (and the
        default SQLite storage ``study.db``).
    n_trials
        Trials to add to the study; ``None`` takes ``cfg.tune.trials``; ``0`` only writes the
        reports of the study as it stands.
    workers
        Processes (spawned) that share the trials; each joins the study by name and storage.
    progress
        Called with the number of trials that just finished (for a progress bar).

    Returns
    -------
    optuna.Study
        The study with every trial so far, from this run and earlier ones.

    Raises
    ------
    ConfigError
        ``tune.metric`` is not ``val_loss`` or ``val_<metric>`` of the metric registry.
    """
    check_metric(cfg.tune.metric)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    n_trials = cfg.tune.trials if n_trials is None else n_trials
    if n_trials < 0:
        raise ValueError(f"the number of trials must be at least 0, got {n_trials}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if n_trials == 0:  # the reports of the study as it stands, e.g. after a killed run
        url = storage_url(cfg, output_dir)
        try:
            study = optuna.load_study(study_name=cfg.tune.study, storage=open_storage(url))
        except KeyError:
            raise ValueError(
                f"no study {cfg.tune.study!r} in {url}: nothing to report (--trials 0)"
            ) from None
        write_reports(study, cfg, output_dir)
        return study
    if cfg.tune.metric == "val_loss" and set(LOSS_WEIGHTS) & set(cfg.tune.space):
        logger.warning(
            "tune.metric val_loss is the weighted sum of the loss terms and favours small loss "
            "weights; prefer a val_<metric> such as val_mae or val_roc_auc to tune them"
        )
    url = storage_url(cfg, output_dir)
    study = optuna.create_study(
        study_name=cfg.tune.study,
        storage=open_storage(url),
        direction=study_direction(cfg.tune.metric),
        load_if_exists=True,
    )
    if study.direction.name.lower() != study_direction(cfg.tune.metric):
        raise ValueError(
            f"study {cfg.tune.study!r} in {url} was created to {study.direction.name.lower()}, "
            f"but tune.metric {cfg.tune.metric} needs {study_direction(cfg.tune.metric)}"
        )
    seed_offset = len(study.trials)
    logger.info(
        "study %r in %s: %d earlier trials, %d more on %d worker(s)",
        cfg.tune.study, url, seed_offset, n_trials, workers,
    )  # fmt: skip
    shares = _shares(n_trials, workers)
    if len(shares) == 1:
        report = [lambda s, t: progress(1)] if progress else None
        _optimize(cfg, url, n_trials, 0, seed_offset, report)
    else:
        _run_workers(cfg, url, shares, seed_offset, study, progress)
    study = optuna.load_study(study_name=cfg.tune.study, storage=open_storage(url))
    write_reports(study, cfg, output_dir)
    return study


def _run_workers(
    cfg: Config,
    url: str,
    shares: list[int],
    seed_offset: int,
    study: optuna.Study,
    progress: Callable[[int], None] | None,
) -> None:
    """Spawn one process per share; report finished trials while they run."""
    ctx = mp.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // len(shares))
    procs = [
        ctx.Process(
            target=_worker,
            args=(cfg.to_dict(), url, n, k, seed_offset, threads),
            name=f"molddl-tune-{k}",
        )
        for k, n in enumerate(shares)
    ]
    for p in procs:
        p.start()
    done = start = n_finished(study)
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(1.0)
            now = n_finished(study)
            if progress and now > done:
                progress(now - done)
            done = now
    finally:
        for p in procs:
            p.join()
    if progress and n_finished(study) > done:
        progress(n_finished(study) - done)
    failed = [p.name for p in procs if p.exitcode != 0]
    if failed:
        raise RuntimeError(
            f"tuning worker(s) {', '.join(failed)} failed; {n_finished(study) - start} of "
            f"{sum(shares)} trials finished (see the log above)"
        )
