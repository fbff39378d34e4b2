"""Benchmark 4: ``molddl predict`` over a large screening file — throughput and peak memory.

The input is made by sampling Tox21 SMILES with replacement; half of the rows have one assay
known (SR-ARE or SR-MMP, at random), the other half none. Peak memory is the largest sum over
``molddl predict`` and its worker processes of the proportional set size (PSS: pages shared
by forked workers are counted once in total, not once per process), sampled every 0.25 s.

    python benchmarks/screening.py --model runs/bench/tox21-default.pt --rows 100000 1000000

``--set key=value`` is passed on to ``molddl predict`` (for example
``--set inference.batch_size=4096`` to measure another setting in the same run).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
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
    model: Path, src: Path, out: Path, workers: int, overrides: list[str]
) -> tuple[float, float]:
    """Seconds and peak memory (PSS bytes, process tree) of one ``molddl predict`` run."""
    cmd = [sys.executable, "-m", "molddl.cli.main", "predict", "--model", str(model),
           "--input", str(src), "--output", str(out), "--workers", str(workers),
           *(arg for o in overrides for arg in ("--set", o))]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_full_info().pss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.25)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"molddl predict failed: {proc.stderr.read()[-2000:]}")
    return seconds, peak


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=Path("runs/bench/tox21-default.pt"))
    p.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    if not args.model.exists():
        raise SystemExit(
            f"{args.model}: run benchmarks/alternate_inference.py first (it trains it)"
        )
    print(f"machine: {machine()}")
    print(f"model: {args.model}; workers {args.workers}; settings {args.overrides or 'default'}\n")
    print("| rows | seconds | rows/s | peak memory, PSS (MB) |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            src, out = Path(tmp) / f"in{rows}.csv", Path(tmp) / f"out{rows}.csv"
            make_input(src, rows)
            seconds, peak = run_predict(args.model, src, out, args.workers, args.overrides)
            with open(out) as fh:
                assert sum(1 for _ in fh) == rows + 1, "every input row is in the output"
            print(f"| {rows:,} | {seconds:.1f} | {rows / seconds:,.0f} | {peak / 2**20:,.0f} |")
            src.unlink()
            out.unlink()


if __name__ == "__main__":
    main()
