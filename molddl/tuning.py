"""Hyper-parameter search with Optuna over the ``tune.space`` of a config.

Each trial copies the config, sets the sampled ``model.*`` / ``train.*`` values, fits a
:class:`~molddl.models.estimator.DualLabelModel` on the train part and scores it by the best
validation value of ``tune.metric``; the test part is never loaded into a trial. Trials live
in an Optuna RDB storage (SQLite by default), so a second run, a second process or a second
machine with the same study name and storage continues the same study.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import lightning as L
import matplotlib.pyplot as plt
import optuna
import torch

from molddl.config import Config, ParamSpace
from molddl.data.dataset import DualLabelDataset
from molddl.io import atomic_path, atomic_write, atomic_write_text
from molddl.models.estimator import DualLabelModel
from molddl.models.training import monitor_mode
from molddl.pipeline import load_splits

logger = logging.getLogger(__name__)

#: loss weights: ``val_loss`` is their weighted sum, so it favours small weights
LOSS_WEIGHTS = ("train.alpha1", "train.alpha2", "train.beta1", "train.beta2", "train.gamma")
FINISHED = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.FAIL,
)


class PruningCallback(L.Callback):
    """Report the monitored validation value to an Optuna trial after every validation epoch
    and stop the training with :class:`optuna.TrialPruned` when the pruner says so.

    Parameters
    ----------
    trial
        The running trial.
    monitor
        The logged value to report, e.g. ``val_loss`` or ``val_roc_auc``.
    """

    def __init__(self, trial: optuna.Trial, monitor: str) -> None:
        self.trial, self.monitor = trial, monitor

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None or math.isnan(float(value)):
            return
        epoch = trainer.current_epoch
        self.trial.report(float(value), step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}: {self.monitor}={float(value):g}")


def study_direction(metric: str) -> str:
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


def suggest(trial: optuna.Trial, key: str, spec: ParamSpace) -> object:
    """Sample one ``section.key`` from its range."""
    if spec.type == "categorical":
        return trial.suggest_categorical(key, spec.choices)
    if spec.type == "int":
        return trial.suggest_int(key, int(spec.low), int(spec.high), log=spec.log)
    return trial.suggest_float(key, spec.low, spec.high, log=spec.log)


def apply_params(cfg: Config, params: dict[str, object]) -> Config:
    """A copy of ``cfg`` with ``section.key -> value`` set and ``train.monitor`` set to
    ``tune.metric``, validated like any config."""
    d = cfg.to_dict()
    for key, value in params.items():
        section, name = key.split(".", 1)
        d[section][name] = value
    d["train"]["monitor"] = cfg.tune.metric
    return Config.from_dict(d)


class Objective:
    """Fit one trial's model on the train part and return its best validation value.

    The splits are loaded on the first trial and reused by every later one in the process.
    """

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._splits: tuple[DualLabelDataset, DualLabelDataset] | None = None

    def splits(self) -> tuple[DualLabelDataset, DualLabelDataset]:
        if self._splits is None:
            train, val, _ = load_splits(self.cfg.data, self.cfg.seed)
            self._splits = (train, val)
        return self._splits

    def __call__(self, trial: optuna.Trial) -> float:
        params = {k: suggest(trial, k, spec) for k, spec in self.cfg.tune.space.items()}
        cfg = apply_params(self.cfg, params)
        train, val = self.splits()
        pruning = PruningCallback(trial, cfg.tune.metric)
        model = DualLabelModel(cfg).fit(train, val, callbacks=[pruning])
        best = model.history_["dll"]["best_score"]
        return float("nan") if best is None else best


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
    pruner = (
        optuna.pruners.MedianPruner() if cfg.tune.pruner == "median" else optuna.pruners.NopPruner()
    )
    study = optuna.load_study(
        study_name=cfg.tune.study,
        storage=open_storage(url, cfg.tune.heartbeat),
        sampler=optuna.samplers.TPESampler(seed=cfg.seed + seed_offset + worker),
        pruner=pruner,
    )
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


def _n_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


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
    """
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
    done = start = _n_finished(study)
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(1.0)
            now = _n_finished(study)
            if progress and now > done:
                progress(now - done)
            done = now
    finally:
        for p in procs:
            p.join()
    if progress and _n_finished(study) > done:
        progress(_n_finished(study) - done)
    failed = [p.name for p in procs if p.exitcode != 0]
    if failed:
        raise RuntimeError(
            f"tuning worker(s) {', '.join(failed)} failed; {_n_finished(study) - start} of "
            f"{sum(shares)} trials finished (see the log above)"
        )


def best_config(study: optuna.Study, cfg: Config) -> Config:
    """``cfg`` with the best trial's values: the config ``molddl train`` reruns it with."""
    return apply_params(cfg, study.best_trial.params)


def summary_markdown(study: optuna.Study, metric: str) -> str:
    """Best value and parameters, and how many trials completed, were pruned or failed."""
    states = optuna.trial.TrialState
    count = {s: len(study.get_trials(deepcopy=False, states=(s,))) for s in FINISHED}
    lines = [
        f"# Study `{study.study_name}`",
        "",
        "| | |",
        "| --- | --- |",
        f"| metric | `{metric}` ({study.direction.name.lower()}) |",
        f"| trials | {len(study.trials)} |",
        f"| complete | {count[states.COMPLETE]} |",
        f"| pruned | {count[states.PRUNED]} |",
        f"| failed | {count[states.FAIL]} |",
    ]
    unfinished = len(study.trials) - sum(count.values())
    if unfinished:  # still running elsewhere, or left by a worker that was killed
        lines.append(f"| running or interrupted | {unfinished} |")
    if count[states.COMPLETE]:
        best = study.best_trial
        lines += [f"| best trial | {best.number} |", f"| best value | {best.value:.6g} |", ""]
        lines += ["## Best parameters", "", "| parameter | value |", "| --- | --- |"]
        lines += [
            f"| `{k}` | {v:.6g} |" if isinstance(v, float) else f"| `{k}` | {v} |"
            for k, v in best.params.items()
        ]
    return "\n".join(lines) + "\n"


def write_reports(study: optuna.Study, cfg: Config, output_dir: str | Path) -> None:
    """``best_config.yaml``, ``trials.csv``, ``summary.md``, ``history.png`` and
    ``importances.png`` in ``output_dir``, each written atomically."""
    out = Path(output_dir)
    df = study.trials_dataframe()
    atomic_write(out / "trials.csv", lambda fh: df.to_csv(fh, index=False))
    atomic_write_text(out / "summary.md", summary_markdown(study, cfg.tune.metric))
    n_complete = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    if n_complete == 0:
        logger.warning("no trial completed: best_config.yaml and the plots are not written")
        return
    atomic_write_text(out / "best_config.yaml", best_config(study, cfg).to_yaml())
    _save_plot(
        optuna.visualization.matplotlib.plot_optimization_history, study, out / "history.png"
    )
    if n_complete < 2:
        logger.info("parameter importances need 2 complete trials: importances.png skipped")
        return
    _save_plot(
        optuna.visualization.matplotlib.plot_param_importances, study, out / "importances.png"
    )


def _save_plot(plot: Callable, study: optuna.Study, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        ax = plot(study)
    fig = ax.figure
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
