"""``molddl train``: fit a DLL model on a dataset or your own table, save it, score it."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import pandas as pd
from lightning.pytorch.utilities import rank_zero_only

from molddl.cli.evaluate import reveal_text
from molddl.cli.options import ConfigKeyAction, add_config_options, resolve_config
from molddl.evaluation import plots
from molddl.evaluation.predictions import reveal_predictions
from molddl.io import atomic_write, atomic_write_text, check_writable
from molddl.models import run_folder
from molddl.models.estimator import DualLabelModel
from molddl.models.run_folder import RunFolder
from molddl.models.training import check_logger
from molddl.pipeline import load_splits
from molddl.progress import stderr_is_terminal

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a DLL model and save it for 'molddl predict'",
        description=(
            "Load the data of the config (a named dataset or your own CSV / Parquet file via "
            "--set data.dataset=PATH --set data.labels=a,b), split it (a 'split' column of "
            "train / val / test overrides splitting), train the marginal and the dual model, "
            "and score the test part in the reveal tasks. --output receives model.pt, "
            "config.yaml (the resolved config), logs/ (per-epoch CSV logs), checkpoints/, "
            "split.csv, test_metrics.csv (tidy reveal table), test_predictions.csv and "
            "plots (learning_curves.png, roc_pr.png / parity.png). chemprop's flags work too, "
            "each standing for a config key as --set would: --data-path (data.dataset), "
            "--smiles-columns (data.smiles_column), --target-columns (data.labels), "
            "--split-type (data.split), --epochs (train.max_epochs) and --save-dir (--output)."
        ),
    )
    add_config_options(p)
    p.add_argument(
        "--output",
        "--save-dir",
        dest="output",
        required=True,
        help="folder for the model, config, logs, metrics",
    )
    add_chemprop_aliases(p)
    p.add_argument(
        "--devices",
        type=int,
        help="processes (CPU) or GPUs for data-parallel training (train.devices; >1 uses DDP)",
    )
    p.add_argument("--num-nodes", type=int, help="machines for multi-node DDP (train.num_nodes)")
    p.add_argument(
        "--strategy",
        choices=["auto", "ddp", "ddp_spawn"],
        help="Lightning strategy (train.strategy): ddp under torchrun / SLURM, else auto",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the killed run in --output from its last checkpoint (same config; "
        "a finished phase is not trained again)",
    )
    p.set_defaults(run=run)


#: chemprop's ``--split-type`` values -> ``data.split`` (chemprop's ``scaffold_balanced`` is
#: what molddl's scaffold split does); chemprop's other splits have no molddl counterpart
SPLIT_TYPES: dict[str, str] = {
    "random": "random",
    "scaffold_balanced": "scaffold",
    "scaffold": "scaffold",
    "column": "column",
}


def add_chemprop_aliases(p: argparse.ArgumentParser) -> None:
    """chemprop's ``train`` flags, each standing for a config key (as ``--set`` would)."""
    p.add_argument(
        "--data-path",
        action=ConfigKeyAction,
        config_key="data.dataset",
        metavar="PATH",
        help="your CSV / Parquet table, or a named dataset (data.dataset)",
    )
    p.add_argument(
        "--smiles-columns",
        action=ConfigKeyAction,
        config_key="data.smiles_column",
        convert=_one_smiles_column,
        nargs="+",
        metavar="COLUMN",
        help="the SMILES column (data.smiles_column); molddl reads one",
    )
    p.add_argument(
        "--target-columns",
        action=ConfigKeyAction,
        config_key="data.labels",
        convert=_two_targets,
        nargs="+",
        metavar="COLUMN",
        help="the two label columns (data.labels)",
    )
    p.add_argument(
        "--split-type",
        action=ConfigKeyAction,
        config_key="data.split",
        convert=_split_type,
        metavar="TYPE",
        help=(
            "random, scaffold_balanced (or scaffold) or column: the 'split' column of the "
            "table (data.split)"
        ),
    )
    p.add_argument(
        "--epochs",
        action=ConfigKeyAction,
        config_key="train.max_epochs",
        convert=_positive_int,
        metavar="N",
        help="most epochs of each model (train.max_epochs)",
    )


def _one_smiles_column(values: list[str]) -> str:
    if len(values) != 1:
        raise ValueError(f"molddl reads one SMILES column, got {len(values)}: {', '.join(values)}")
    return values[0]


def _two_targets(values: list[str]) -> list[str]:
    if len(values) != 2:
        raise ValueError(
            f"DLL learns two labels: name two columns, got {len(values)}: {', '.join(values)}"
        )
    return values


def _split_type(value: str) -> str:
    split = SPLIT_TYPES.get(value.lower())
    if split is None:
        raise ValueError(
            f"{value!r} is not a split molddl has; choose one of {', '.join(SPLIT_TYPES)}"
        )
    return split


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a whole number") from None
    if n < 1:
        raise ValueError(f"must be at least 1, got {n}")
    return n


def run(args: argparse.Namespace) -> int:
    out = Path(args.output)
    cfg = resolve_config(args)
    scale = {"devices": args.devices, "num_nodes": args.num_nodes, "strategy": args.strategy}
    scale = {k: v for k, v in scale.items() if v is not None}
    bar = cfg.train.progress_bar or stderr_is_terminal()  # a bar for people, none in logs
    cfg = dataclasses.replace(
        cfg,
        train=dataclasses.replace(cfg.train, log_dir=str(out / "logs"), progress_bar=bar, **scale),
    )
    check_logger(cfg.train)
    check_writable(out)  # before an hour of training, not after it
    # under DDP every rank trains; one writes the outputs. lightning sets .rank on the
    # function at import, which its annotations do not declare
    rank = rank_zero_only.rank  # type: ignore[attr-defined]
    folder = RunFolder(out, resume=getattr(args, "resume", False), rank=rank)
    if folder.resume:
        folder.check_resume(cfg)  # before loading the data: a refusal comes at once
    train, val, test = load_splits(cfg.data, cfg.seed)
    kinds = ", ".join(
        f"{s.name} ({s.kind}" + (f", {s.n_classes} classes)" if s.n_classes > 2 else ")")
        for s in train.labels
    )
    sys.stdout.write(
        f"training on {len(train)} samples (validation {len(val)}, test {len(test)}), "
        f"labels {kinds}\n"
    )
    sys.stdout.flush()
    folder.start(cfg)
    with run_folder.activated(folder):  # checkpoints in out/checkpoints, resumed from there
        model = DualLabelModel(cfg).fit(train, val)
    if rank != 0:
        return 0
    # the model, then its config: a run killed before this point leaves an earlier run's
    # model.pt and config.yaml in the folder as they were, a matching pair
    for name in run_folder.OUTPUTS:  # an earlier run's, now stale
        (out / name).unlink(missing_ok=True)
    model.save(out / "model.pt", test_ids=test.ids)  # what 'molddl evaluate' scores
    atomic_write_text(out / "config.yaml", cfg.to_yaml())
    sys.stdout.write(f"model saved to {out / 'model.pt'}\n")
    split = run_folder.split_table(train, val, test)
    atomic_write(out / "split.csv", lambda fh: split.to_csv(fh, index=False))
    logs = {
        phase: pd.read_csv(path)
        for phase in run_folder.PHASES
        if (path := out / "logs" / phase / "metrics.csv").exists()
    }
    if len(test) == 0:
        logger.warning("the test part is empty: nothing to score")
        plots.write_run_plots(out, None, train.labels, logs, cfg.train.monitor)
        return 0
    table = model.evaluate(test)
    atomic_write(out / "test_metrics.csv", lambda fh: table.to_csv(fh, index=False))
    preds = reveal_predictions(model.predict, test)
    atomic_write(out / "test_predictions.csv", lambda fh: preds.to_csv(fh, index=False))
    plots.write_run_plots(out, preds, test.labels, logs, cfg.train.monitor)
    sys.stdout.write(f"\ntest part, reveal tasks:\n{reveal_text(table)}")
    return 0
