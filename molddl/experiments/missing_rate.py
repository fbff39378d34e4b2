"""Paper Fig. 5: every method against the label missing rate (10 … 60 %)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from molddl.config import Config
from molddl.experiments.compare import run_seed
from molddl.experiments.runner import (
    main_metric,
    mean_std_table,
    run_cells,
    seeded,
    to_markdown,
    write_outputs,
)

RATES: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


def missing_rate(
    cfg: Config,
    seeds: Sequence[int],
    out_dir: str | Path | None = None,
    methods: Sequence[str] = ("DLL", "MT"),
    rates: Sequence[float] = RATES,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """For each rate and seed: hide labels of train/val at that rate, then :func:`run_seed`."""

    def cell(key: str) -> pd.DataFrame:
        rate_s, seed_s = key.split("-seed")
        rate = float(rate_s[4:])
        out = run_seed(seeded(cfg, int(seed_s), data={"missing_rate": rate}), int(seed_s), methods)
        out.insert(1, "missing_rate", rate)
        return out

    keys = [f"rate{r:g}-seed{s}" for r in rates for s in seeds]
    settings = {
        "experiment": "missing-rate",
        "config": cfg.to_dict(),
        "methods": list(methods),
    }  # rates, like seeds, are separate cells and may be added later
    tidy = run_cells(keys, cell, out_dir, progress, settings)
    n = tidy["seed"].nunique()
    md = f"mean ± std over {n} seed(s)\n\n" + to_markdown(
        mean_std_table(tidy, ["task", "method", "missing_rate"])
    )
    write_outputs(out_dir, tidy, md, cfg, lambda: figure(tidy))
    return tidy


def figure(tidy: pd.DataFrame):
    """One panel per task: the main metric against the missing rate, a line per method."""
    import matplotlib.pyplot as plt

    metric = main_metric(tidy)
    d = tidy[tidy["metric"] == metric]
    tasks = list(dict.fromkeys(d["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 3.0), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for method, g in d[d["task"] == task].groupby("method", sort=False):
            s = g.groupby("missing_rate")["value"].agg(["mean", "std"])
            ax.errorbar(
                100 * s.index, s["mean"], yerr=np.nan_to_num(s["std"]), label=method, capsize=2
            )
        ax.set_title(task)
        ax.set_xlabel("missing rate (%)")
        ax.set_ylabel(metric)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig
