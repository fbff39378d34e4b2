"""Resumable experiment cells and the outputs every experiment writes.

An experiment is a list of cells (e.g. one per seed, or per missing rate × seed). Each
finished cell is written to ``<out>/cells/<key>.csv`` atomically; a rerun reads finished
cells back instead of recomputing them, so a killed run picks up where it stopped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from molddl.config import Config
from molddl.io import atomic_write_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)


MANIFEST = "manifest.json"


def check_manifest(out_dir: Path, settings: dict) -> None:
    """Cells may only be reused by a run with the same settings (seeds aside): a folder from
    another config, method list or sweep is refused rather than silently mixed in."""
    path = out_dir / MANIFEST
    current = _comparable(settings)
    if path.exists():
        stored = json.loads(path.read_text())
        if _comparable(stored) != current:
            changed = sorted(
                k for k in set(stored) | set(current) if stored.get(k) != current.get(k)
            )
            raise ValueError(
                f"{out_dir} holds results of a run with other settings ({', '.join(changed)} "
                f"differ); choose another --output or remove that folder"
            )
    else:
        if (out_dir / "cells").exists():  # written before manifests existed
            logger.warning("%s has cells but no %s: adopting them for this run", out_dir, MANIFEST)
        atomic_write_text(path, json.dumps(current, indent=2, sort_keys=True) + "\n")


def _comparable(settings: dict) -> dict:
    """``settings`` as JSON, with the config's keys that were added to molddl after a folder
    was written taken at their defaults (so its cells stay usable by a run that keeps them)."""
    out = json.loads(json.dumps(settings, default=str))
    if isinstance(out.get("config"), dict):
        out["config"] = json.loads(
            json.dumps(Config.from_dict(out["config"]).to_dict(), default=str)
        )
        out["config"].pop("methods", None)  # recorded apart where it matters
        # a speed setting that leaves every number as it is (its default changed once)
        out["config"].get("inference", {}).pop("batch_size", None)
    return out


def run_cells(
    keys: Sequence[str],
    compute: Callable[[str], pd.DataFrame],
    out_dir: str | Path | None,
    progress: Callable[[str], None] | None = None,
    settings: dict | None = None,
) -> pd.DataFrame:
    """Compute (or read back) every cell and concatenate them. ``settings`` (the resolved
    config and the experiment's options, not the seeds) guard the reuse of cells."""
    if out_dir is not None:
        check_manifest(Path(out_dir), settings or {})
    frames = []
    for key in keys:
        path = Path(out_dir) / "cells" / f"{key}.csv" if out_dir else None
        if path is not None and path.exists():
            logger.info("cell %s already done (%s), skipping", key, path)
            frames.append(pd.read_csv(path))
        else:
            frame = compute(key)
            if path is not None:
                atomic_write_text(path, frame.to_csv(index=False))
            frames.append(frame)
        if progress:
            progress(key)
    return pd.concat(frames, ignore_index=True)


def seeded(cfg: Config, seed: int, **sections: dict) -> Config:
    """``cfg`` with another seed and some keys replaced, e.g. ``data={"missing_rate": 0.3}``."""
    d = cfg.to_dict()
    d["seed"] = seed
    for section, values in sections.items():
        d[section] = {**d[section], **values}
    return Config.from_dict(d)


def tagged(frame: pd.DataFrame, cfg: Config, seed: int) -> pd.DataFrame:
    """A cell's rows led by their dataset and seed columns (the tidy layout)."""
    frame.insert(0, "seed", seed)
    frame.insert(0, "dataset", cfg.data.dataset)
    return frame


def mean_std_table(
    tidy: pd.DataFrame, index: Sequence[str], columns: str = "metric"
) -> pd.DataFrame:
    """Cells ``mean ± std`` over seeds."""
    stats = tidy.groupby([*index, columns])["value"].agg(["mean", "std"]).reset_index()
    stats["cell"] = [
        f"{m:.3f} ± {0.0 if np.isnan(s) else s:.3f}"
        for m, s in zip(stats["mean"], stats["std"], strict=True)
    ]
    return stats.pivot_table(
        index=list(index), columns=columns, values="cell", aggfunc="first"
    ).reset_index()


def to_markdown(table: pd.DataFrame) -> str:
    head = "| " + " | ".join(map(str, table.columns)) + " |\n"
    head += "|" + "---|" * len(table.columns) + "\n"
    return head + "".join("| " + " | ".join(map(str, r)) + " |\n" for r in table.to_numpy())


def write_outputs(
    out_dir: str | Path | None,
    tidy: pd.DataFrame,
    markdown: str,
    cfg: Config,
    figure: Callable[[], Figure] | None = None,
) -> None:
    """``results.csv`` (tidy), ``results.md``, ``config.yaml`` and ``figure.png``."""
    if not out_dir:
        return
    out = Path(out_dir)
    atomic_write_text(out / "results.csv", tidy.to_csv(index=False))
    atomic_write_text(out / "results.md", markdown)
    atomic_write_text(out / "config.yaml", cfg.to_yaml())
    if figure is not None:
        import matplotlib

        matplotlib.use("Agg")
        from molddl.evaluation.plots import save_figure

        save_figure(figure(), out / "figure.png")


def main_metric(tidy: pd.DataFrame) -> str:
    present = set(tidy["metric"])
    for m in ("f1", "mape", "roc_auc", "mae"):
        if m in present:
            return m
    return sorted(present)[0]
