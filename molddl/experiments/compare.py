"""Every method × every reveal task × seeds, as a tidy table (one row per method × task ×
metric × seed), resumable per seed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from molddl.config import Config
from molddl.data.dataset import DualLabelDataset
from molddl.evaluation.metrics import choose_threshold
from molddl.evaluation.reveal import evaluate, reveal
from molddl.io import atomic_write_text
from molddl.models.baselines import BASELINES
from molddl.models.estimator import DualLabelModel
from molddl.pipeline import load_splits

logger = logging.getLogger(__name__)

#: every method, in the paper's order; DLL and MT come from one DualLabelModel
METHODS: tuple[str, ...] = ("DLL", "MT", "ID", "COL", "SSL", "LS", "DSML")

Predict = Callable[[DualLabelDataset], list[np.ndarray]]


def tuned_thresholds(predict: Predict, val: DualLabelDataset) -> list[float | None]:
    """Per binary label, the F1-optimal threshold on validation single-reveal predictions."""
    out: list[float | None] = []
    for k, spec in enumerate(val.labels):
        if spec.kind != "binary":
            out.append(None)
            continue
        try:
            task = reveal(val.y, ("single_y1", "single_y2")[k])
        except ValueError:
            out.append(None)
            continue
        sub = val.subset(task.rows).with_labels(task.revealed)
        pred = predict(sub)[k]
        out.append(choose_threshold(task.truth[:, k], pred))
    return out


def fit_methods(
    cfg: Config, methods: Sequence[str], train: DualLabelDataset, val: DualLabelDataset
) -> dict[str, Predict]:
    """Train every method on the same parts; return each one's predict function."""
    predictors: dict[str, Predict] = {}
    if "DLL" in methods or "MT" in methods:
        model = DualLabelModel(cfg).fit(train, val)
        predictors["DLL"] = lambda d: model.predict_arrays(d, "dll")
        predictors["MT"] = lambda d: model.predict_arrays(d, "marginal")
    for name in methods:
        if name not in predictors:
            predictors[name] = BASELINES[name](cfg).fit(train, val).predict_arrays
    return predictors


def run_seed(cfg: Config, seed: int, methods: Sequence[str]) -> pd.DataFrame:
    """Train every method on the split of ``seed`` and score it on the four reveal tasks."""
    run_cfg = Config.from_dict({**cfg.to_dict(), "seed": seed})
    train, val, test = load_splits(run_cfg.data, seed)
    predictors = fit_methods(run_cfg, methods, train, val)
    frames = []
    for method in methods:
        predict = predictors[method]
        table = evaluate(predict, test, thresholds=tuned_thresholds(predict, val))
        table.insert(0, "method", method)
        frames.append(table)
    out = pd.concat(frames, ignore_index=True)
    out.insert(0, "seed", seed)
    out.insert(0, "dataset", cfg.data.dataset)
    return out


def compare(
    cfg: Config,
    seeds: Sequence[int],
    out_dir: str | Path | None = None,
    methods: Sequence[str] = ("DLL", "MT"),
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Run :func:`run_seed` for each seed. With ``out_dir``, each finished seed is written to
    ``out_dir/seeds/seed<k>.csv`` and skipped when the command is run again (resume)."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    frames = []
    for seed in seeds:
        path = Path(out_dir) / "seeds" / f"seed{seed}.csv" if out_dir else None
        if path is not None and path.exists():
            logger.info("seed %d already done (%s), skipping", seed, path)
            frames.append(pd.read_csv(path))
        else:
            frame = run_seed(cfg, seed, methods)
            if path is not None:
                atomic_write_text(path, frame.to_csv(index=False))
            frames.append(frame)
        if progress:
            progress(seed)
    tidy = pd.concat(frames, ignore_index=True)
    if out_dir:
        out = Path(out_dir)
        atomic_write_text(out / "results.csv", tidy.to_csv(index=False))
        atomic_write_text(out / "results.md", summary_markdown(tidy))
        atomic_write_text(out / "config.yaml", cfg.to_yaml())
    return tidy


def summarise(tidy: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds: rows method × task, columns metric."""
    g = tidy.groupby(["method", "task", "metric"])["value"]
    stats = g.agg(["mean", "std", "count"]).reset_index()
    stats["cell"] = [
        f"{m:.3f} ± {0.0 if np.isnan(s) else s:.3f}"
        for m, s in zip(stats["mean"], stats["std"], strict=True)
    ]
    table = stats.pivot_table(
        index=["task", "method"], columns="metric", values="cell", aggfunc="first"
    )
    return table.reset_index()


def summary_markdown(tidy: pd.DataFrame) -> str:
    table = summarise(tidy)
    n_seeds = tidy["seed"].nunique()
    header = "| " + " | ".join(table.columns) + " |\n"
    header += "|" + "---|" * len(table.columns) + "\n"
    rows = "".join("| " + " | ".join(str(v) for v in r) + " |\n" for r in table.to_numpy())
    return f"mean ± std over {n_seeds} seed(s)\n\n{header}{rows}"
