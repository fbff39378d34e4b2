"""Paper Fig. 4: every method × every reveal task × seeds (one row per method × task ×
metric × seed)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from molddl.config import Config
from molddl.data.dataset import DualLabelDataset
from molddl.evaluation.reveal import evaluate, tuned_thresholds
from molddl.experiments.runner import (
    main_metric,
    mean_std_table,
    run_cells,
    seeded,
    tagged,
    to_markdown,
    write_outputs,
)
from molddl.methods import NAMES
from molddl.models.baselines import BASELINES
from molddl.models.estimator import DualLabelModel
from molddl.pipeline import load_splits

#: every method, in the paper's order (:mod:`molddl.methods`); DLL and MT come from one
#: DualLabelModel
METHODS: tuple[str, ...] = NAMES

Predict = Callable[[DualLabelDataset], list[np.ndarray]]


def method_budget(cfg: Config) -> int:
    """The epochs every method may train, summed over its networks: what DLL trains, its
    marginal model (``train.marginal_epochs``, else ``max_epochs``) and then its dual model
    (``max_epochs``), whose encoder starts from the marginal one's."""
    return (cfg.train.marginal_epochs or cfg.train.max_epochs) + cfg.train.max_epochs


@dataclass(slots=True)
class Fitted:
    """A trained method: its predict function and the epochs it ran (summed over its
    networks)."""

    predict: Predict
    epochs: int


def fit_methods(
    cfg: Config, methods: Sequence[str], train: DualLabelDataset, val: DualLabelDataset
) -> dict[str, Fitted]:
    """Train every method on the same parts, each within :func:`method_budget` epochs."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    budget = method_budget(cfg)
    fitted: dict[str, Fitted] = {}
    for name in methods:
        if name == "DLL":
            model = DualLabelModel(cfg).fit(train, val)
            epochs = sum(h["epochs"] for h in model.history_.values())
            fitted[name] = Fitted(functools.partial(model.predict_arrays, mode="dll"), epochs)
        else:
            base = BASELINES[name](cfg, budget=budget).fit(train, val)
            fitted[name] = Fitted(base.predict_arrays, base.epochs_trained_)
    return fitted


def score(predictors: dict[str, Predict], val, test) -> pd.DataFrame:
    """The reveal table of every method (F1 also at the validation-tuned threshold)."""
    frames = []
    for method, predict in predictors.items():
        table = evaluate(predict, test, thresholds=tuned_thresholds(predict, val))
        table.insert(0, "method", method)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def run_seed(cfg: Config, seed: int, methods: Sequence[str]) -> pd.DataFrame:
    """Train every method on the split of ``seed`` and score it on the four reveal tasks;
    the rows carry each method's epoch ``budget`` and the ``epochs`` it ran."""
    run_cfg = seeded(cfg, seed)
    train, val, test = load_splits(run_cfg.data, seed)
    fitted = fit_methods(run_cfg, methods, train, val)
    table = score({m: fitted[m].predict for m in methods}, val, test)
    table["budget"] = method_budget(run_cfg)
    table["epochs"] = table["method"].map({m: f.epochs for m, f in fitted.items()})
    return tagged(table, cfg, seed)


def compare(
    cfg: Config,
    seeds: Sequence[int],
    out_dir: str | Path | None = None,
    methods: Sequence[str] = ("DLL", "MT"),
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """:func:`run_seed` for each seed, resumable per seed; writes results and a figure."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:  # fail before the first seed trains, not after
        raise ValueError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    keys = [f"seed{s}" for s in seeds]
    settings = {"experiment": "compare", "config": cfg.to_dict(), "methods": list(methods)}
    tidy = run_cells(
        keys, lambda k: run_seed(cfg, int(k[4:]), methods), out_dir, progress, settings
    )
    write_outputs(out_dir, tidy, summary_markdown(tidy), cfg, lambda: figure(tidy))
    return tidy


def summary_markdown(tidy: pd.DataFrame) -> str:
    n = tidy["seed"].nunique()
    return f"mean ± std over {n} seed(s)\n\n" + to_markdown(
        mean_std_table(tidy, ["task", "method"])
    )


def figure(tidy: pd.DataFrame):
    """Grouped bars: tasks × methods, the main metric with its std over seeds."""
    import matplotlib.pyplot as plt

    metric = main_metric(tidy)
    d = tidy[tidy["metric"] == metric]
    stats = d.groupby(["task", "method"], sort=False)["value"].agg(["mean", "std"])
    tasks = list(dict.fromkeys(d["task"]))
    methods = list(dict.fromkeys(d["method"]))
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(tasks), 3.6))
    width = 0.8 / len(methods)
    for i, m in enumerate(methods):
        means = [stats.loc[(t, m), "mean"] for t in tasks]
        stds = [np.nan_to_num(stats.loc[(t, m), "std"]) for t in tasks]
        ax.bar(np.arange(len(tasks)) + i * width, means, width, yerr=stds, label=m, capsize=2)
    ax.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2, tasks)
    ax.set_ylabel(metric)
    ax.set_title(f"{tidy['dataset'].iloc[0]}: {metric} by task (mean ± std over seeds)")
    ax.legend(ncol=min(len(methods), 4), fontsize=8)
    return fig
