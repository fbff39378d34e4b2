"""Paper Fig. 7: Double-task metric and fraction converged against alternate-inference
iterations 1 … 1000, with wall time."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from molddl.config import Config
from molddl.evaluation.reveal import evaluate, reveal
from molddl.experiments.runner import (
    main_metric,
    mean_std_table,
    run_cells,
    seeded,
    tagged,
    to_markdown,
    write_outputs,
)
from molddl.models.estimator import DualLabelModel
from molddl.pipeline import load_splits

ITERATIONS: tuple[int, ...] = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000)


def run_seed(cfg: Config, seed: int, iterations: Sequence[int]) -> pd.DataFrame:
    run_cfg = seeded(cfg, seed)
    train, val, test = load_splits(run_cfg.data, seed)
    model = DualLabelModel(run_cfg).fit(train, val)
    task = reveal(test.y, "double")
    unknown = test.subset(task.rows).with_labels(task.revealed)
    prep = model.preprocessor_.transform(unknown)
    # one untimed call first: it loads (or compiles) the numba kernel once per process
    model.predict_prepared(prep, inference=replace(run_cfg.inference, max_iter=1))
    rows = []
    for T in iterations:
        # at most T iterations; samples under the configured tolerance stop earlier
        inf = replace(run_cfg.inference, max_iter=T)
        t0 = time.perf_counter()
        pred = model.predict_prepared(prep, inference=inf)
        wall = time.perf_counter() - t0
        table = evaluate(
            functools.partial(model.predict_arrays, inference=inf), test, modes=("double",)
        )
        table["iterations"] = T
        extra = pd.DataFrame(
            {
                "task": ["Double", "Double"],
                "label": ["", ""],
                "metric": ["fraction_converged", "wall_s"],
                "value": [float(np.mean(pred.converged)), wall],
                "n": [len(prep), len(prep)],
                "iterations": [T, T],
            }
        )
        rows += [table, extra]
    return tagged(pd.concat(rows, ignore_index=True), cfg, seed)


def convergence(
    cfg: Config,
    seeds: Sequence[int],
    out_dir: str | Path | None = None,
    iterations: Sequence[int] = ITERATIONS,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    settings = {
        "experiment": "convergence",
        "config": cfg.to_dict(),
        "iterations": list(iterations),
    }
    tidy = run_cells(
        [f"seed{s}" for s in seeds],
        lambda k: run_seed(cfg, int(k[4:]), iterations),
        out_dir,
        progress,
        settings,
    )
    n = tidy["seed"].nunique()
    md = f"mean ± std over {n} seed(s)\n\n" + to_markdown(
        mean_std_table(tidy, ["task", "iterations"])
    )
    write_outputs(out_dir, tidy, md, cfg, lambda: figure(tidy))
    return tidy


def figure(tidy: pd.DataFrame):
    import matplotlib.pyplot as plt

    metric = main_metric(tidy[tidy["task"] != "Double"])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.0))
    for task, g in tidy[(tidy["metric"] == metric)].groupby("task"):
        s = g.groupby("iterations")["value"].agg(["mean", "std"])
        a1.errorbar(s.index, s["mean"], yerr=np.nan_to_num(s["std"]), label=task, capsize=2)
    a1.set_xscale("log")
    a1.set_xlabel("alternate-inference iterations")
    a1.set_ylabel(metric)
    a1.legend(fontsize=7)
    conv = tidy[tidy["metric"] == "fraction_converged"].groupby("iterations")["value"].mean()
    a2.plot(conv.index, conv.values, marker="o")
    a2.set_xscale("log")
    a2.set_ylim(0, 1.02)
    a2.set_xlabel("iterations")
    a2.set_ylabel("fraction converged")
    fig.tight_layout()
    return fig
