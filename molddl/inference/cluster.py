"""Screening on a Dask cluster: ``molddl predict --dask [ADDRESS]``.

The driver (the ``molddl predict`` process) reads the input in chunks exactly as a run
without Dask does (:func:`molddl.inference.screen.screen`), and hands each chunk not yet
finished to the cluster as one task: a *partition*. A worker loads the model file once (from
the same path; it checks the file's hash against the driver's) and featurizes and predicts
its partitions with the same code as the one-process run; the predicted chunk comes back to
the driver, which writes it to its part in ``<output>.parts/``. Everything else is the
one-process run's: the manifest, resuming (a restarted run submits only the unfinished
partitions), the lock, the atomic output. Because the driver writes every part and a part
is written whole or not at all, a partition whose worker dies is run again by the scheduler
on another worker (Dask's own retry, ``distributed.scheduler.allowed-failures`` times) and
is written once.

Only the model file must be readable by the workers (a shared file system, or a copy at
the same path on each machine); the input and output stay with the driver. The driver keeps
at most two partitions per worker thread in flight, so its memory is bounded by the chunk
size, not by the input.

Each task predicts with one torch thread, so a worker process of one thread uses one core
(``dask worker --nthreads 1``, one worker process per core); its output then equals, byte
for byte, a one-process run whose model has one thread (``--workers`` equal to the cores).
A GPU is used by a worker whose model config says ``device: auto`` or ``cuda`` and that sees
one (``CUDA_VISIBLE_DEVICES`` per worker, see README).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

try:
    from distributed import WorkerPlugin
except ImportError:  # molddl without its dask extra: connect() says what to install
    WorkerPlugin = object  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from molddl.models.estimator import DualLabelModel

logger = logging.getLogger(__name__)

#: partitions in flight per worker thread: one running, one waiting on the worker
IN_FLIGHT_PER_THREAD = 2
#: seconds to reach a scheduler before giving up
CONNECT_TIMEOUT = "30s"


class WorkerError(ValueError):
    """A Dask worker cannot predict: the model file is missing or differs there."""


@dataclass(frozen=True)
class Job:
    """What every partition of one run needs besides its rows (sent with each task; small)."""

    model_path: str
    """Absolute path of the model file, read by each worker."""
    model_sha256: str
    """The driver's hash of the model file; a worker whose file differs refuses to predict."""
    runtime: dict[str, Any]
    """The settings the driver's run overrides in the model's config: ``inference``, ``device``."""
    inputs: dict[str, Any]
    """The input columns, as keyword arguments of ``dataset_from_frame``."""
    thresholds: dict[str, float] | None
    """Decision thresholds replacing the model's validation-chosen ones."""


# ---------------------------------------------------------------------------------------------
# The worker's side


_models: dict[tuple[str, str], DualLabelModel] = {}
_models_lock = threading.Lock()


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):  # not in a worker (called directly)
        return "this process"


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def _keep_freed_memory() -> None:
    """Let glibc keep freed memory for reuse, as it does in a process without Dask.

    A Dask nanny starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (to give memory
    back to the system early). Setting it also fixes glibc's mmap threshold at 128 KiB, so
    every activation tensor of the encoder is mapped from the system and unmapped again at
    each operation, page faults and all (as ``benchmarks/encoder.py`` measures for large
    batches): screening on a local cluster ran at half the one-process rate
    (``docs/BENCHMARKS.md``, "Scale-out"). Raising both thresholds at run time undoes it,
    whoever started the worker.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20)
    except (OSError, AttributeError):  # not glibc (musl has no mallopt): nothing to undo
        pass


def _model(job: Job) -> DualLabelModel:
    """The model of ``job``, loaded once per worker process and kept for its next partitions."""
    key = (job.model_path, job.model_sha256)
    with _models_lock:
        model = _models.get(key)
        if model is not None:
            return model
        from molddl.config import Config
        from molddl.inference.screen import _sha256
        from molddl.models.estimator import DualLabelModel

        path = Path(job.model_path)
        where = _worker_name()
        if not path.is_file():
            raise WorkerError(
                f"the model file {path} does not exist on the Dask worker {where}: every "
                f"worker reads the model from the driver's path (put it on a file system the "
                f"workers share, or copy it to that path on each machine)"
            )
        if _sha256(path) != job.model_sha256:
            raise WorkerError(
                f"the model file {path} on the Dask worker {where} is not the driver's (its "
                f"contents differ); give the workers the same file"
            )
        _keep_freed_memory()
        model = DualLabelModel.load(path)
        model.config = Config.from_dict({**model.config_.to_dict(), **job.runtime})
        _models.clear()  # one run's model at a time
        _models[key] = model
        return model


def predict_partition(job: Job, chunk: pd.DataFrame, first_row: int, source: str) -> pd.DataFrame:
    """A Dask task: ``chunk`` with its unknown labels predicted, as the one-process run
    predicts it (:func:`molddl.inference.screen._predict_chunk`), with one torch thread."""
    import torch

    from molddl.inference.screen import _chunk_dataset, _predict_chunk

    model = _model(job)
    torch.set_num_threads(1)
    data = _chunk_dataset(model, chunk, first_row, job.inputs, source)
    return _predict_chunk(model, chunk, data, 1, None, job.thresholds)


def _die_with_driver() -> None:
    """Run on each worker of a local cluster: it ends when the driver ends, even by SIGKILL."""
    from molddl.workers import die_with_parent

    die_with_parent()


# ---------------------------------------------------------------------------------------------
# The driver's side


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ValueError(
            "--dask needs Dask's distributed scheduler: pip install 'molddl[dask]'"
        ) from None
    return distributed


def connect(address: str, workers: int):
    """A client of the cluster at ``address`` (``tcp://host:port``, a scheduler file), or of
    a new local cluster of ``workers`` single-threaded processes for ``"local"``; returns
    ``(client, cluster)``, ``cluster`` being ``None`` unless made here."""
    distributed = _import_distributed()
    verbose = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
    if not verbose:  # its log under -v only (closing a cluster with a partition running
        logging.getLogger("distributed").setLevel(logging.ERROR)  # warns of the kill, etc.)
    if address == "local":
        cluster = distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # any free port: two runs never collide
            # a partition's error reaches the user once, from this process, not also
            # with the worker's traceback (under -v it does)
            silence_logs=logging.INFO if verbose else logging.CRITICAL,
        )
        try:
            client = distributed.Client(cluster)
            # every worker, including those the nanny restarts, ends with this process
            client.register_plugin(_DieWithDriver())
        except BaseException:
            cluster.close()
            raise
        return client, cluster
    path = Path(address)
    try:
        if path.suffix == ".json" or path.is_file():
            if not path.is_file():
                raise ValueError(f"--dask {address}: no such scheduler file")
            client = distributed.Client(scheduler_file=str(path), timeout=CONNECT_TIMEOUT)
        else:
            client = distributed.Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as err:
        raise ValueError(
            f"--dask {address}: cannot reach the Dask scheduler ({err}); give its address "
            f"(tcp://host:8786) or scheduler file, or 'local' for a cluster on this machine"
        ) from None
    return client, None


class _DieWithDriver(WorkerPlugin):
    """Makes each worker of a local cluster end with the driver (its parent process)."""

    name = "molddl-die-with-driver"
    idempotent = True

    def setup(self, worker) -> None:
        _die_with_driver()


class DaskRunner:
    """Predicts the partitions of one run on a Dask cluster (the ``_Runner`` of
    :func:`molddl.inference.screen.screen`): ``submit`` a chunk, and the driver writes its
    part, with ``write_part``, when the worker's result comes back."""

    def __init__(
        self,
        address: str,
        workers: int,
        job: Job,
        write_part: Callable[[Path, pd.DataFrame], None],
    ) -> None:
        self.job, self.write_part = job, write_part
        self.client, self.cluster = connect(address, workers)
        self.run = uuid.uuid4().hex[:12]  # task keys of two runs on one cluster never meet
        self.futures: dict[Any, Path] = {}
        self._waited = False
        logger.info(
            "Dask: %s, %d worker(s), %d thread(s)",
            address if self.cluster is None else "a local cluster",
            len(self.client.nthreads()),
            self._threads(),
        )

    def _threads(self) -> int:
        return sum(self.client.nthreads().values())

    def submit(self, part: Path, chunk: pd.DataFrame, first_row: int, source: str) -> None:
        threads = self._threads()
        if threads == 0 and not self._waited:
            logger.warning("Dask: the scheduler has no worker yet; waiting for one")
            self._waited = True
        while len(self.futures) >= IN_FLIGHT_PER_THREAD * max(1, threads):
            self._collect(all_of_them=False)
            threads = self._threads()
        future = self.client.submit(
            predict_partition,
            self.job,
            chunk,
            first_row,
            source,
            key=f"molddl-predict-{self.run}-{part.stem}",
            pure=False,
        )
        self.futures[future] = part

    def _collect(self, all_of_them: bool) -> None:
        """Write the parts of the finished partitions (at least one, or all of them)."""
        distributed = _import_distributed()
        done, _ = distributed.wait(
            list(self.futures), return_when="ALL_COMPLETED" if all_of_them else "FIRST_COMPLETED"
        )
        for future in done:
            part = self.futures.pop(future)
            try:
                frame = future.result()
            except distributed.KilledWorker as err:
                raise ValueError(
                    f"{part.name}: the Dask workers predicting it died, every time it was "
                    f"retried ({err}); a worker out of memory? Try a smaller --chunk-size"
                ) from None
            self.write_part(part, frame)
            future.release()

    def finish(self) -> None:
        while self.futures:
            self._collect(all_of_them=True)

    def close(self) -> None:
        if self.futures:
            self.client.cancel(list(self.futures))
            self.futures.clear()
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
