"""Benchmark 4: ``molddl predict`` over a large screening file — throughput and peak memory.

The input is made by sampling Tox21 SMILES with replacement; half of the rows have one assay
known (SR-ARE or SR-MMP, at random), the other half none. Peak memory is the largest sum over
``molddl predict`` and its worker processes of the proportional set size (PSS: pages shared
by forked workers are counted once in total, not once per process), sampled every 0.25 s.

    python benchmarks/screening.py --model runs/bench/tox21-default.pt --rows 100000 1000000

``--set key=value`` is passed on to ``molddl predict`` (for example
``--set inference.batch_size=4096`` to measure another setting in the same run).

``--dask N`` (issue 17) runs each size twice in the same run, one process (``--workers``
featurization workers) and ``--dask`` on a local cluster of N worker processes, checks that
the two outputs are identical, and prints the throughput of each, the ratio, the peak PSS of
the driver and of the largest worker process, and the scheduler's overhead per partition
(identity tasks carrying a chunk of the input to a worker and back):

    python benchmarks/screening.py --rows 1000000 --dask 2
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine  # noqa: E402

from molddl.data.loaders import load_tox21  # noqa: E402


def make_input(path: Path, rows: int, seed: int = 0) -> None:
    """Write ``rows`` sampled compounds in blocks, so the generator's memory stays small."""
    data = load_tox21()
    rng = np.random.default_rng(seed)
    block = 200_000
    with open(path, "w") as fh:
        for start in range(0, rows, block):
            n = min(block, rows - start)
            pick = rng.integers(0, len(data), n)
            y = data.y[pick].copy()
            known = rng.integers(0, 2, n)  # which assay stays known
            half = rng.random(n) < 0.5
            for k in range(2):
                y[~half | (known != k), k] = np.nan
            frame = pd.DataFrame(
                {"id": [f"c{start + i}" for i in range(n)], "smiles": data.smiles[pick],
                 "SR-ARE": y[:, 0], "SR-MMP": y[:, 1]}
            )  # fmt: skip
            frame.to_csv(fh, index=False, header=start == 0, float_format="%.0f")


def run_predict(
    model: Path, src: Path, out: Path, workers: int, overrides: list[str], *extra: str
) -> tuple[float, float, float, float]:
    """Seconds and peak memory of one ``molddl predict`` run (PSS bytes): of the process
    tree, of the driver process, and of its largest child process (a worker)."""
    cmd = [sys.executable, "-m", "molddl.cli.main", "predict", "--model", str(model),
           "--input", str(src), "--output", str(out), "--workers", str(workers),
           *(arg for o in overrides for arg in ("--set", o)), *extra]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    root, peak, driver, child = psutil.Process(proc.pid), 0, 0, 0
    while proc.poll() is None:
        try:
            pss = {p.pid: p.memory_full_info().pss for p in [root, *root.children(True)]}
            peak = max(peak, sum(pss.values()))
            driver = max(driver, pss.pop(root.pid, 0))
            child = max(child, max(pss.values(), default=0))
        except psutil.Error:  # a process ended while it was read
            pass
        time.sleep(0.25)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"molddl predict failed: {proc.stderr.read()[-2000:]}")
    return seconds, peak, driver, child


@contextlib.contextmanager
def _local_cluster(workers: int) -> Iterator:
    """A client of a local cluster of ``workers`` single-threaded processes, as
    ``molddl predict --dask`` starts it."""
    import distributed

    with (
        distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, dashboard_address=":0",
            silence_logs=logging.CRITICAL,
        ) as lc,
        distributed.Client(lc) as client,
    ):  # fmt: skip
        yield client


def scheduler_overhead(src: Path, workers: int, chunk_size: int = 20000, n: int = 50) -> float:
    """Seconds per partition that Dask adds: ``n`` identity tasks, each carrying a chunk of
    ``src`` to a worker of a local cluster and back, in the window ``molddl predict`` keeps."""
    chunks = list(pd.read_csv(src, dtype=str, nrows=chunk_size * 5, chunksize=chunk_size))
    with _local_cluster(workers) as client:
        client.gather(client.map(len, chunks[:workers], pure=False))  # warm the workers
        t0, futures = time.perf_counter(), []
        for i in range(n):
            futures.append(client.submit(pd.DataFrame.copy, chunks[i % len(chunks)], pure=False))
            if len(futures) >= 2 * workers:
                futures.pop(0).result()
        client.gather(futures)
        return (time.perf_counter() - t0) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=Path("runs/bench/tox21-default.pt"))
    p.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--dask", type=int, metavar="N",
        help="also run --dask on a local cluster of N workers and compare (issue 17)",
    )  # fmt: skip
    args = p.parse_args()
    if not args.model.exists():
        raise SystemExit(
            f"{args.model}: run benchmarks/alternate_inference.py first (it trains it)"
        )
    print(f"machine: {machine()}")
    print(f"model: {args.model}; workers {args.workers}; settings {args.overrides or 'default'}\n")
    if args.dask:
        compare_dask(args)
        return
    print("| rows | seconds | rows/s | peak memory, PSS (MB) |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            src, out = Path(tmp) / f"in{rows}.csv", Path(tmp) / f"out{rows}.csv"
            make_input(src, rows)
            seconds, peak, _, _ = run_predict(args.model, src, out, args.workers, args.overrides)
            with open(out) as fh:
                assert sum(1 for _ in fh) == rows + 1, "every input row is in the output"
            print(f"| {rows:,} | {seconds:.1f} | {rows / seconds:,.0f} | {peak / 2**20:,.0f} |")
            src.unlink()
            out.unlink()


def contention(model: Path, src: Path, workers: int, rows: int = 20000) -> tuple[float, float]:
    """Seconds one worker of a local cluster takes to predict a partition of ``rows`` rows of
    ``src`` alone, and the slowest of ``workers`` workers predicting one each at once: what
    running side by side on shared cores costs each of them."""
    from molddl.inference import cluster, screen
    from molddl.models.estimator import DualLabelModel

    loaded = DualLabelModel.load(model)
    chunk = screen._read_csv(src, nrows=rows)
    inputs = screen.model_inputs(loaded, list(chunk.columns), None, str(src))
    runtime = {"inference": loaded.config_.to_dict()["inference"], "device": loaded.config_.device}
    job = cluster.Job(str(model.resolve()), screen._sha256(model), runtime, inputs, None)

    def timed() -> float:
        t0 = time.perf_counter()
        cluster.predict_partition(job, chunk, 0, str(src))
        return time.perf_counter() - t0

    with _local_cluster(workers) as client:
        names = list(client.nthreads())
        client.gather([client.submit(timed, pure=False, workers=[w]) for w in names])  # warm
        alone = client.submit(timed, pure=False, workers=[names[0]]).result()
        together = client.gather([client.submit(timed, pure=False, workers=[w]) for w in names])
    return alone, max(together)


def compare_dask(args: argparse.Namespace) -> None:
    """Each size by one process and by a local Dask cluster, in one run."""
    mb = 2**20
    print("| rows | run | seconds | rows/s | vs one process | peak PSS: all (MB) "
          "| driver (MB) | largest worker (MB) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            src = Path(tmp) / f"in{rows}.csv"
            make_input(src, rows)
            one, many = Path(tmp) / "one.csv", Path(tmp) / "dask.csv"
            runs = {
                f"one process, --workers {args.workers}": run_predict(
                    args.model, src, one, args.workers, args.overrides
                ),
                f"--dask, local cluster of {args.dask}": run_predict(
                    args.model, src, many, args.dask, args.overrides, "--dask"
                ),
            }
            same = one.read_bytes() == many.read_bytes()
            base = rows / next(iter(runs.values()))[0]
            for name, (seconds, peak, driver, child) in runs.items():
                print(f"| {rows:,} | {name} | {seconds:.1f} | {rows / seconds:,.0f} "
                      f"| {rows / seconds / base:.2f} | {peak / mb:,.0f} | {driver / mb:,.0f} "
                      f"| {child / mb:,.0f} |")  # fmt: skip
            print(f"\noutputs identical byte for byte: {same}")
            per = scheduler_overhead(src, args.dask)
            print(f"scheduler overhead per partition of 20,000 rows: {per * 1000:.1f} ms")
            alone, together = contention(args.model, src, args.dask)
            print(f"a partition of 20,000 rows on one worker: {alone:.1f} s alone, "
                  f"{together:.1f} s with {args.dask} workers at once\n")  # fmt: skip
            for path in (src, one, many):
                path.unlink()


if __name__ == "__main__":
    main()
