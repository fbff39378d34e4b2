"""The figures of a ``molddl train`` folder (PNG, matplotlib's Agg renderer, no display):

- ``learning_curves.png``: train and validation loss, and the monitored validation metric,
  per epoch, for the marginal and the DLL phase (from ``logs/<phase>/metrics.csv``);
- ``roc_pr.png``: ROC and precision-recall curves of every reveal task of a binary label;
- ``parity.png``: predicted against true values of every reveal task of a value label.

The curves are drawn on the rows the reveal table scores (every label known), so the areas in
their legends are the ``roc_auc`` / ``pr_auc`` of ``test_metrics.csv``. Figures are built as
:class:`matplotlib.figure.Figure` objects, without pyplot's global state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from molddl.data.labels import LabelSpec
from molddl.evaluation.reveal import HIDDEN, REVEAL_MODES, task_name
from molddl.io import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: how each phase (log folder) is titled
PHASE_TITLES = {"marginal": "marginal model", "dll": "DLL"}


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically and release it (a pyplot figure is
    closed, so that many figures do not pile up in memory)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    if getattr(fig.canvas, "manager", None) is not None:  # made by pyplot
        import matplotlib.pyplot as plt

        plt.close(fig)
    return Path(path)


def _figure(rows: int, cols: int, width: float, height: float) -> tuple[Figure, np.ndarray]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
    return fig, axes


def learning_curves(logs: Mapping[str, pd.DataFrame], monitor: str) -> Figure:
    """One column per phase (``logs``: phase -> its per-epoch log, as ``EpochLog`` writes
    it), rows: train and validation loss, then ``monitor`` if it is not ``val_loss``."""
    from matplotlib.ticker import MaxNLocator

    rows = 1 if monitor == "val_loss" else 2
    fig, axes = _figure(rows, max(1, len(logs)), 4.2, 3.0)
    for j, (phase, log) in enumerate(logs.items()):
        ax = axes[0, j]
        for key, style in (("train_loss", "-"), ("val_loss", "--")):
            if key in log:
                ax.plot(log["epoch"], log[key], style, marker=".", label=key)
        ax.set_title(PHASE_TITLES.get(phase, phase))
        ax.set_ylabel("loss")
        ax.legend(fontsize="small")
        if rows == 2:
            ax = axes[1, j]
            if monitor in log:
                ax.plot(log["epoch"], log[monitor], marker=".", color="tab:green")
            ax.set_ylabel(monitor)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def _tasks(labels: Sequence[LabelSpec], plot: str) -> list[tuple[str, int]]:
    """``(task, label index)`` of every reveal task of a label whose kind is drawn as
    ``plot`` (:attr:`~molddl.data.labels.LabelKind.plot`)."""
    return [
        (task_name(mode, k), k)
        for mode in REVEAL_MODES
        for k in HIDDEN[mode]
        if k < len(labels) and labels[k].behaviour.plot == plot
    ]


def _scored(preds: pd.DataFrame, labels: Sequence[LabelSpec]) -> pd.DataFrame:
    """The rows of ``test_predictions.csv`` with every label known: what the reveal table
    scores."""
    return preds[preds[[s.name for s in labels]].notna().all(axis=1)]


def roc_pr_curves(preds: pd.DataFrame, labels: Sequence[LabelSpec]) -> Figure | None:
    """ROC (left) and precision-recall (right) curves, one row per reveal task of a binary
    label, from ``test_predictions.csv``; ``None`` without a binary label."""
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )

    tasks = _tasks(labels, "roc_pr")
    if not tasks:
        return None
    rows = _scored(preds, labels)
    fig, axes = _figure(len(tasks), 2, 3.6, 3.2)
    for i, (task, k) in enumerate(tasks):
        name = labels[k].name
        truth = rows[name].to_numpy(dtype=float)
        prob = rows[f"{task}/{name}_prob"].to_numpy(dtype=float)
        ok = ~np.isnan(prob)
        truth, prob = truth[ok], prob[ok]
        roc_ax, pr_ax = axes[i, 0], axes[i, 1]
        roc_ax.set_title(f"{task} ({name}): ROC", fontsize="medium")
        pr_ax.set_title(f"{task} ({name}): precision-recall", fontsize="medium")
        if len(np.unique(truth)) < 2:
            for ax in (roc_ax, pr_ax):
                ax.text(0.5, 0.5, "undefined: one class only", ha="center", va="center")
            continue
        fpr, tpr, _ = roc_curve(truth, prob)
        auc = float(roc_auc_score(truth, prob))
        roc_ax.plot(fpr, tpr, label=f"ROC-AUC {auc:.3f} (n={len(truth)})")
        roc_ax.plot([0, 1], [0, 1], ":", color="grey")
        roc_ax.set_xlabel("false positive rate")
        roc_ax.set_ylabel("true positive rate")
        roc_ax.legend(loc="lower right", fontsize="small")
        precision, recall, _ = precision_recall_curve(truth, prob)
        ap = float(average_precision_score(truth, prob))
        pr_ax.step(recall, precision, where="post", label=f"PR-AUC {ap:.3f}")
        pr_ax.axhline(truth.mean(), linestyle=":", color="grey", label="prevalence")
        pr_ax.set_xlabel("recall")
        pr_ax.set_ylabel("precision")
        pr_ax.legend(loc="upper right", fontsize="small")
    return fig


def parity_plots(preds: pd.DataFrame, labels: Sequence[LabelSpec]) -> Figure | None:
    """Predicted against true value, one panel per reveal task of a value label, from
    ``test_predictions.csv``; ``None`` without a value label."""
    tasks = _tasks(labels, "parity")
    if not tasks:
        return None
    rows = _scored(preds, labels)
    fig, axes = _figure(1, len(tasks), 3.4, 3.4)
    for j, (task, k) in enumerate(tasks):
        name = labels[k].name
        truth = rows[name].to_numpy(dtype=float)
        pred = rows[f"{task}/{name}"].to_numpy(dtype=float)
        ok = ~np.isnan(pred)
        ax = axes[0, j]
        ax.scatter(truth[ok], pred[ok], s=8, alpha=0.6)
        if ok.any():
            lo = float(min(truth[ok].min(), pred[ok].min()))
            hi = float(max(truth[ok].max(), pred[ok].max()))
            ax.plot([lo, hi], [lo, hi], ":", color="grey")
            mae = float(np.mean(np.abs(truth[ok] - pred[ok])))
            ax.set_title(f"{task} ({name}): MAE {mae:.3g}", fontsize="medium")
        ax.set_xlabel(f"true {name}")
        ax.set_ylabel(f"predicted {name}")
    return fig


def write_run_plots(
    out: str | Path,
    preds: pd.DataFrame | None,
    labels: Sequence[LabelSpec],
    logs: Mapping[str, pd.DataFrame],
    monitor: str,
) -> list[Path]:
    """The figures of a ``molddl train`` folder ``out`` that its data allow; returns their
    paths. ``preds``: ``test_predictions.csv`` (``None``: no test part)."""
    out = Path(out)
    written = []
    if logs:
        written.append(save_figure(learning_curves(logs, monitor), out / "learning_curves.png"))
    if preds is not None and len(_scored(preds, labels)):
        for fig, name in (
            (roc_pr_curves(preds, labels), "roc_pr.png"),
            (parity_plots(preds, labels), "parity.png"),
        ):
            if fig is not None:
                written.append(save_figure(fig, out / name))
    return written
