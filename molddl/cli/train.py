"""``molddl train``: fit a DLL model on a dataset or your own table, save it, score it."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only

from molddl.cli.evaluate import reveal_text
from molddl.cli.options import add_config_options, resolve_config
from molddl.io import atomic_write, atomic_write_text, check_writable
from molddl.models.estimator import DualLabelModel
from molddl.pipeline import load_splits

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a DLL model and save it for 'molddl predict'",
        description=(
            "Load the data of the config (a named dataset or your own CSV / Parquet file via "
            "--set data.dataset=PATH --set data.labels=[a,b]), split it (a 'split' column of "
            "train / val / test overrides splitting), train the marginal and the dual model, "
            "and score the test part in the reveal tasks. --output receives model.pt, "
            "config.yaml (the resolved config), logs/ (per-epoch CSV logs) and "
            "test_metrics.csv (tidy reveal table)."
        ),
    )
    add_config_options(p)
    p.add_argument("--output", required=True, help="folder for the model, config, logs, metrics")
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
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.output)
    cfg = resolve_config(args)
    scale = {"devices": args.devices, "num_nodes": args.num_nodes, "strategy": args.strategy}
    scale = {k: v for k, v in scale.items() if v is not None}
    bar = cfg.train.progress_bar or sys.stderr.isatty()  # a bar for people, none in logs
    cfg = dataclasses.replace(
        cfg,
        train=dataclasses.replace(cfg.train, log_dir=str(out / "logs"), progress_bar=bar, **scale),
    )
    check_writable(out)  # before an hour of training, not after it
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
    model = DualLabelModel(cfg).fit(train, val)
    # under DDP every rank trains; one writes the outputs. lightning sets .rank on the
    # function at import, which its annotations do not declare
    if rank_zero_only.rank != 0:  # type: ignore[attr-defined]
        return 0
    # the model, then its config: a run killed before this point leaves an earlier run's
    # model.pt and config.yaml in the folder as they were, a matching pair
    (out / "test_metrics.csv").unlink(missing_ok=True)  # an earlier run's, now stale
    model.save(out / "model.pt", test_ids=test.ids)  # what 'molddl evaluate' scores
    atomic_write_text(out / "config.yaml", cfg.to_yaml())
    sys.stdout.write(f"model saved to {out / 'model.pt'}\n")
    if len(test) == 0:
        logger.warning("the test part is empty: nothing to score")
        return 0
    table = model.evaluate(test)
    atomic_write(out / "test_metrics.csv", lambda fh: table.to_csv(fh, index=False))
    sys.stdout.write(f"\ntest part, reveal tasks:\n{reveal_text(table)}")
    return 0
