"""The search: ``tune()`` adds trials to a study, in this process or in spawned workers
that each join the study through its storage, then writes the reports."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable
from multiprocessing.queues import SimpleQueue
from pathlib import Path

import optuna
import torch

from molddl.config import Config
from molddl.tuning.objective import Objective
from molddl.tuning.report import write_reports
from molddl.tuning.study import (
    StudyError,
    check_metric,
    create_or_load_study,
    join_study,
    n_finished,
    open_storage,
    storage_url,
    with_retries,
)
from molddl.workers import die_with_parent

logger = logging.getLogger(__name__)

#: loss weights: ``val_loss`` is their weighted sum, so it favours small weights
LOSS_WEIGHTS = ("train.alpha1", "train.alpha2", "train.beta1", "train.beta2", "train.gamma")


class WorkerError(ValueError):
    """A worker process stopped on an error of the user's input (a data file, a config
    value): its one-line message, raised again in the process that spawned the workers."""


#: errors of the user's input: a worker reports their message to the parent instead of a
#: traceback (the errors ``molddl`` prints as one line)
USER_ERRORS = (ValueError, FileNotFoundError, KeyError)


class QuietTracebacks(logging.Filter):
    """Drop the traceback of a log record: Optuna logs a failed trial with its traceback,
    which the user sees as a crash even when the error is a one-line error of the input
    (``molddl tune -v`` keeps them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text = None, None
        return True


def quiet_optuna_tracebacks() -> None:
    """Install :class:`QuietTracebacks` on the handlers of Optuna's logger (its records do
    not propagate to the root logger)."""
    optuna.logging.get_verbosity()  # sets up Optuna's logger and its handler
    for handler in logging.getLogger("optuna").handlers:
        if not any(isinstance(f, QuietTracebacks) for f in handler.filters):
            handler.addFilter(QuietTracebacks())


def _optimize(
    cfg: Config,
    url: str,
    n_trials: int,
    callbacks: list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] | None = None,
) -> None:
    """Load the data, join the study and run ``n_trials`` trials; the sampler seeds trial
    ``n`` from ``cfg.seed + n``, so every process and worker samples its own points
    (:class:`~molddl.tuning.study.TrialSeededTPESampler`)."""
    objective = Objective(cfg)
    objective.splits()  # a data error stops the run before a trial is recorded as failed
    study = join_study(cfg, url, seed=cfg.seed)
    study.optimize(objective, n_trials=n_trials, callbacks=callbacks)


def _worker(
    cfg_dict: dict,
    url: str,
    n_trials: int,
    threads: int,
    errors: SimpleQueue,
    quiet: bool,
) -> None:
    """Entry point of a spawned worker process; an error of the input goes to ``errors``
    (for the parent to report as one line) and ends the worker with status 2."""
    die_with_parent()  # its running trial stays RUNNING; tune.heartbeat retries it
    logging.basicConfig(level=logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if quiet:
        quiet_optuna_tracebacks()
    torch.set_num_threads(threads)
    try:
        _optimize(Config.from_dict(cfg_dict), url, n_trials)
    except USER_ERRORS as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        errors.put(str(msg))
        sys.exit(2)


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
        Processes (spawned) that share the trials; each joins the study by name and storage,
        and ends when this process does.
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
    StudyError
        The storage does not open, or the study there cannot be continued (another
        direction, ``--trials 0`` and no study).
    WorkerError
        A worker stopped on an error of the input, e.g. its data file.

    Other ``molddl tune`` processes may run on the same study at the same time: creating the
    study is safe against them, and every trial is sampled from ``cfg.seed`` and its trial
    number, which the storage makes unique (:mod:`molddl.tuning.study`).
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
            study = _load(cfg, url)
        except KeyError:
            raise StudyError(
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
    study = create_or_load_study(cfg, url, output_dir)
    logger.info(
        "study %r in %s: %d earlier trials, %d more on %d worker(s)",
        cfg.tune.study, url, len(study.trials), n_trials, workers,
    )  # fmt: skip
    shares = _shares(n_trials, workers)
    if len(shares) == 1:
        report = [lambda s, t: progress(1)] if progress else None
        _optimize(cfg, url, n_trials, report)
    else:
        _run_workers(cfg, url, shares, study, progress)
    study = _load(cfg, url)
    write_reports(study, cfg, output_dir)
    return study


def _load(cfg: Config, url: str) -> optuna.Study:
    """The study ``cfg.tune.study`` as it stands in ``url``."""
    storage = open_storage(url)
    return with_retries(
        f"load the study {cfg.tune.study!r}",
        url,
        lambda: optuna.load_study(study_name=cfg.tune.study, storage=storage),
    )


def _run_workers(
    cfg: Config,
    url: str,
    shares: list[int],
    study: optuna.Study,
    progress: Callable[[int], None] | None,
) -> None:
    """Spawn one process per share; report finished trials while they run.

    A worker ends when this process does (:func:`molddl.workers.die_with_parent`), so killing
    ``molddl tune`` leaves no worker behind.

    Raises
    ------
    WorkerError
        A worker stopped on an error of the input (its message).
    RuntimeError
        A worker failed otherwise (its traceback is in the log).
    """
    ctx = mp.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // len(shares))
    errors = ctx.SimpleQueue()
    quiet = any(  # the workers log a failed trial as this process does
        isinstance(f, QuietTracebacks)
        for handler in logging.getLogger("optuna").handlers
        for f in handler.filters
    )
    procs = [
        ctx.Process(
            target=_worker,
            args=(cfg.to_dict(), url, n, threads, errors, quiet),
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
    messages = []
    while not errors.empty():
        messages.append(errors.get())
    errors.close()
    if messages:
        raise WorkerError(messages[0])
    failed = [p.name for p in procs if p.exitcode != 0]
    if failed:
        raise RuntimeError(
            f"tuning worker(s) {', '.join(failed)} failed; {n_finished(study) - start} of "
            f"{sum(shares)} trials finished (see the log above)"
        )
