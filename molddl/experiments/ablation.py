"""Paper Fig. 6: the training modes MT, a, a+b, a+b+c."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from molddl.config import Config
from molddl.experiments.compare import figure as bars
from molddl.experiments.compare import score
from molddl.experiments.runner import (
    mean_std_table,
    run_cells,
    seeded,
    tagged,
    to_markdown,
    write_outputs,
)
from molddl.models.estimator import DualLabelModel
from molddl.pipeline import load_splits

#: ablation mode -> loss terms of the dual model (MT is the marginal model alone)
MODES: dict[str, list[str]] = {"a": ["sup"], "a+b": ["sup", "rec"], "a+b+c": ["sup", "rec", "dual"]}


def run_seed(cfg: Config, seed: int) -> pd.DataFrame:
    """One marginal model, then one dual model per mode on top of it (same split, seed)."""
    base = seeded(cfg, seed)
    train, val, test = load_splits(base.data, seed)
    full = DualLabelModel(seeded(cfg, seed, train={"losses": MODES["a+b+c"]})).fit(train, val)
    predictors = {"MT": lambda d: full.predict_arrays(d, "marginal")}
    for mode, losses in MODES.items():
        model = full
        if mode != "a+b+c":
            model = DualLabelModel(seeded(cfg, seed, train={"losses": losses}))
            model.fit(train, val, marginal=full.marginal_)
        predictors[mode] = functools.partial(model.predict_arrays, mode="dll")
    return tagged(score(predictors, val, test), cfg, seed)


def ablation(
    cfg: Config,
    seeds: Sequence[int],
    out_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    settings = {"experiment": "ablation", "config": cfg.to_dict()}
    tidy = run_cells(
        [f"seed{s}" for s in seeds],
        lambda k: run_seed(cfg, int(k[4:])),
        out_dir,
        progress,
        settings,
    )
    tidy = tidy.rename(columns={"method": "mode"})
    n = tidy["seed"].nunique()
    md = f"mean ± std over {n} seed(s)\n\n" + to_markdown(mean_std_table(tidy, ["task", "mode"]))
    write_outputs(out_dir, tidy, md, cfg, lambda: bars(tidy.rename(columns={"mode": "method"})))
    return tidy
