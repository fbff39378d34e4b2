"""The study's setup: its direction, storage (with heartbeats), sampler and pruner, and the
check of ``tune.metric`` against the metric registry.

Several ``molddl tune`` processes may work on one study at once (``--workers``, or the command
started twice on one ``--output`` / ``--storage``). Two things make that safe:

- creating the storage and the study is serialised by a lock on ``<output>/.study.lock`` and
  retried with a short backoff on the database errors a concurrent creation raises
  (:func:`create_or_load_study`);
- each trial's sampler is seeded by ``seed + trial number`` (:class:`TrialSeededTPESampler`):
  the storage gives every trial a unique number, so no two processes sample the same points,
  while one process with a given seed repeats its trials.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import optuna
import sqlalchemy
import sqlalchemy.exc

from molddl.config import Config, check_choice
from molddl.evaluation.metrics import METRICS
from molddl.models.training import monitor_mode

logger = logging.getLogger(__name__)

#: the states of a trial that no worker will touch again
FINISHED = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.FAIL,
)

#: attempts at a storage operation that a concurrent process can make fail for a moment
ATTEMPTS = 5

_T = TypeVar("_T")


class StudyError(ValueError):
    """The study or its storage cannot be used as asked: a storage URL that does not open, a
    file that is not a study database, a study made for another direction. One line for the
    user (a :class:`ValueError`, so ``molddl`` prints it and exits with status 2)."""


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


def _first_line(err: BaseException) -> str:
    """An exception's message without SQLAlchemy's ``[SQL: ...]`` and background lines."""
    text = str(getattr(err, "orig", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def with_retries(what: str, url: str, action: Callable[[], _T]) -> _T:
    """``action()``, tried again with a growing, jittered pause while it fails with the
    errors of a concurrent process creating or writing the same database (an
    ``IntegrityError`` or "table already exists" of a schema being created by another
    process, "database is locked"); a :class:`StudyError` naming ``what`` and the storage
    ``url`` when it still fails, or fails in a way no retry mends."""
    for attempt in range(ATTEMPTS):
        try:
            return action()
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError) as err:
            if attempt == ATTEMPTS - 1:
                raise StudyError(f"cannot {what} in {url}: {_first_line(err)}") from err
            logger.debug("%s in %s failed (%s); trying again", what, url, _first_line(err))
            time.sleep(0.1 * 2**attempt * (1 + random.random()))
        except ImportError as err:  # optuna's message for a missing database driver
            cause = err.__cause__ or err
            raise StudyError(
                f"cannot {what} in {url}: its database driver is not installed ({cause})"
            ) from err
        except sqlalchemy.exc.SQLAlchemyError as err:  # a bad URL, a file that is no database
            raise StudyError(f"cannot {what} in {url}: {_first_line(err)}") from err
        except RuntimeError as err:  # optuna: the tables were made by another optuna version
            raise StudyError(f"cannot {what} in {url}: {_first_line(err)}") from err
    raise AssertionError("unreachable")  # pragma: no cover


def open_storage(url: str, heartbeat: int = 0) -> optuna.storages.RDBStorage:
    """An RDB storage; SQLite waits up to 60 s for a lock held by another worker.

    With ``heartbeat`` seconds (``tune.heartbeat``), each running trial records a heartbeat;
    a trial silent for ``2 * heartbeat`` is failed by the next trial that starts and retried
    once with its parameters (Optuna's ``RetryHeartbeatStaleTrialCallback``).

    Opening a storage creates its tables when they are missing, which races with another
    process doing the same; see :func:`with_retries`.

    Raises
    ------
    StudyError
        The URL names no database molddl can open, or the database is not an Optuna one.
    """
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    if not heartbeat:
        return with_retries(
            "open the study storage",
            url,
            lambda: optuna.storages.RDBStorage(url, engine_kwargs=kwargs),
        )
    with warnings.catch_warnings():  # both are marked experimental in Optuna
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        return with_retries(
            "open the study storage",
            url,
            lambda: optuna.storages.RDBStorage(
                url,
                engine_kwargs=kwargs,
                heartbeat_interval=heartbeat,
                grace_period=2 * heartbeat,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=1
                ),
            ),
        )


@contextlib.contextmanager
def creation_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder/.study.lock`` (POSIX ``flock``; the system frees it
    when the process ends, even when killed), so that the runs sharing an output folder
    create its storage and study one after the other. Runs that share only a ``--storage``
    are covered by the retries of :func:`with_retries`."""
    if sys.platform == "win32":  # no flock; the retries alone
        yield
        return
    import fcntl

    with open(folder / ".study.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def create_or_load_study(cfg: Config, url: str, output_dir: Path) -> optuna.Study:
    """The study ``cfg.tune.study`` in ``url``, created when it does not exist yet, safely
    when other processes do the same at the same moment.

    Raises
    ------
    StudyError
        The storage does not open, or the study exists with another direction than
        ``tune.metric`` needs.
    """
    direction = study_direction(cfg.tune.metric)
    with creation_lock(output_dir):
        storage = open_storage(url)
        study = with_retries(
            f"create the study {cfg.tune.study!r}",
            url,
            lambda: optuna.create_study(
                study_name=cfg.tune.study,
                storage=storage,
                direction=direction,
                load_if_exists=True,
            ),
        )
    if len(study.directions) != 1:
        raise StudyError(
            f"study {cfg.tune.study!r} in {url} has {len(study.directions)} objectives; "
            f"molddl tune needs a study with one (choose another --study)"
        )
    if study.direction.name.lower() != direction:
        raise StudyError(
            f"study {cfg.tune.study!r} in {url} was created to {study.direction.name.lower()}, "
            f"but tune.metric {cfg.tune.metric} needs {direction}"
        )
    return study


class TrialSeededTPESampler(optuna.samplers.TPESampler):
    """Optuna's TPE sampler whose random state is reseeded from ``seed + trial.number``
    before each trial.

    Why per trial: a sampler seeded once per process draws the same sequence in every process
    with the same seed, and two ``molddl tune`` processes started together on one study see
    the same trials, so a seed taken from the study (its trial count) cannot tell them apart
    either: they sampled the same points. The storage gives every trial a unique number, also
    across processes and machines, so a trial's random state is unique to it; and a run with
    a given seed on a fresh study still repeats its trials (trial ``n`` is sampled from
    ``seed + n`` and the trials before it), as does each trial of a continued study.

    TPE draws from two random states: its own (the candidates of the Parzen estimators) and
    that of the ``RandomSampler`` it uses for the first ``n_startup_trials`` trials. Optuna's
    only public way to reseed them, ``reseed_rng()``, reseeds both from the operating
    system's entropy, which is not reproducible; so both are reseeded here through their
    ``LazyRandomState`` (``_rng`` and ``_random_sampler._rng`` of the installed Optuna,
    checked when the sampler is made so that a change in Optuna fails loudly).
    """

    def __init__(self, seed: int) -> None:
        super().__init__(seed=seed)
        self._base_seed = seed
        self._states()  # fail now, not in a trial, if Optuna renamed them

    def _states(self) -> list[np.random.RandomState]:
        try:
            return [self._rng.rng, self._random_sampler._rng.rng]
        except AttributeError as err:  # pragma: no cover - an Optuna without them
            raise RuntimeError(
                f"optuna {optuna.__version__}: TPESampler has no _rng / _random_sampler._rng "
                "to seed per trial; molddl.tuning.study.TrialSeededTPESampler needs updating"
            ) from err

    def trial_seed(self, number: int) -> int:
        """The seed of trial ``number``: ``seed + number`` within NumPy's range."""
        return (self._base_seed + number) % 2**32

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        seed = self.trial_seed(trial.number)
        for state in self._states():
            state.seed(seed)
        super().before_trial(study, trial)


def join_study(cfg: Config, url: str, seed: int) -> optuna.Study:
    """The existing study ``cfg.tune.study`` in ``url``, with a TPE sampler that samples
    trial ``n`` from ``seed + n`` (:class:`TrialSeededTPESampler`: processes that join the
    study together sample different points), the ``tune.pruner`` and the ``tune.heartbeat``."""
    pruner = (
        optuna.pruners.MedianPruner() if cfg.tune.pruner == "median" else optuna.pruners.NopPruner()
    )
    sampler = TrialSeededTPESampler(seed=seed)
    storage = open_storage(url, cfg.tune.heartbeat)
    study = with_retries(
        f"load the study {cfg.tune.study!r}",
        url,
        lambda: optuna.load_study(
            study_name=cfg.tune.study,
            storage=storage,
            sampler=sampler,
            pruner=pruner,
        ),
    )
    fail_heartbeatless_trials(study, storage)
    return study


def fail_heartbeatless_trials(
    study: optuna.Study, storage: optuna.storages.RDBStorage
) -> list[int]:
    """Fail, and retry as a stale trial is, every running trial that started more than the
    grace period ago and never recorded a heartbeat; returns their numbers.

    A run killed between creating a trial and its first heartbeat (a fraction of a second
    later) leaves such a trial, and Optuna's stale check skips a trial without a heartbeat
    row, so it would stay RUNNING for ever. A live trial records its first heartbeat as it
    starts, so one older than the grace period without any is orphaned."""
    interval = storage.get_heartbeat_interval()
    if not interval:
        return []
    grace = timedelta(seconds=storage.grace_period or 2 * interval)
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    if not running:
        return []
    with storage.engine.connect() as con:  # Optuna's schema: no public API lists these
        beating = {row[0] for row in con.execute(sqlalchemy.text(HEARTBEATS))}
    now, failed = datetime.now(), []
    retry = storage.get_heartbeat_stale_trial_callback()
    for trial in running:
        started = trial.datetime_start
        if trial._trial_id in beating or started is None or now - started <= grace:
            continue
        try:
            if not storage.set_trial_state_values(
                trial._trial_id, state=optuna.trial.TrialState.FAIL
            ):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:  # another process got there first
            continue
        failed.append(trial.number)
        if retry is not None:
            retry(study, storage.get_trial(trial._trial_id))
    if failed:
        logger.warning(
            "trial(s) %s of a killed run never started their heartbeat: failed, and retried",
            ", ".join(map(str, failed)),
        )
    return failed


#: the trials that have recorded a heartbeat (Optuna's ``trial_heartbeats`` table)
HEARTBEATS = "SELECT trial_id FROM trial_heartbeats"


def n_finished(study: optuna.Study) -> int:
    """Trials that are complete, pruned or failed."""
    return len(study.get_trials(deepcopy=False, states=FINISHED))
