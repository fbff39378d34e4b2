"""``molddl evaluate``: score a trained model in the four reveal tasks (SPEC §6)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from molddl.cli.options import (
    add_config_options,
    apply_runtime_overrides,
    config_path_beside,
    resolve_config,
)
from molddl.data.loaders import dataset_from_frame, read_table
from molddl.io import atomic_write, atomic_write_text
from molddl.models.estimator import DualLabelModel
from molddl.pipeline import load_splits


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score a trained model: Single-y1, Single-y2, Double-y1, Double-y2",
        description=(
            "Score a model written by 'molddl train' in the reveal tasks: on samples with both "
            "labels, one label is shown and the other predicted (Single-y1, Single-y2), or "
            "both are hidden (Double-y1, Double-y2). The samples come from --input, or else "
            "from the test part of the config's split (--config / --set; without them the "
            "model's own training config, which reproduces its test part)."
        ),
    )
    p.add_argument("--model", required=True, help="model file written by 'molddl train'")
    p.add_argument(
        "--input",
        help=(
            "CSV / Parquet table to score: the model's label columns and its SMILES column "
            "(or feature columns); rows missing a label are skipped"
        ),
    )
    p.add_argument(
        "--smiles-column",
        help="SMILES column of --input (default: the one the model was trained with, any case)",
    )
    add_config_options(p)
    p.add_argument("--output", help="also write the tidy table (task, label, metric, value, n)")
    p.set_defaults(run=run)


def reveal_text(table: pd.DataFrame) -> str:
    """The tidy reveal table as text: one line per task, one column per metric."""
    wide = table.set_index(["task", "label", "n", "metric"])["value"].unstack("metric")
    tasks = list(dict.fromkeys(table["task"]))
    wide = wide.reindex(tasks, level="task")[list(dict.fromkeys(table["metric"]))]
    wide.columns.name = None
    return wide.to_string(float_format=lambda v: f"{v:.4f}") + "\n"


def model_inputs(
    model: DualLabelModel, columns: list[str], smiles_column: str | None, source: str
) -> dict[str, Any]:
    """The input columns of ``model`` in a table with ``columns``, as keyword arguments of
    :func:`~molddl.data.loaders.dataset_from_frame`.

    The SMILES column is ``smiles_column`` or the one the model was trained with, matched
    ignoring case; a tabular model needs all its feature columns.
    """
    shown = ", ".join(map(str, columns[:40])) + (" …" if len(columns) > 40 else "")
    pre = model.preprocessor_
    if pre.featurizer is None:
        missing = [c for c in pre.feature_names if c not in columns]
        if missing:
            raise ValueError(
                f"{source}: the model's feature column(s) {', '.join(map(repr, missing[:5]))} "
                f"are missing ({len(missing)} in all); the file has: {shown}"
            )
        return {"feature_columns": list(pre.feature_names)}
    wanted = smiles_column or model.config_.data.smiles_column or "smiles"
    found = [c for c in columns if c == wanted] or [
        c for c in columns if str(c).lower() == wanted.lower()
    ]
    if not found:
        raise ValueError(
            f"{source}: no SMILES column {wanted!r} (name it with --smiles-column); "
            f"the file has: {shown}"
        )
    return {"smiles_column": found[0]}


def run(args: argparse.Namespace) -> int:
    if args.input and (args.config or args.data_dir):
        raise ValueError("give either --input or --config / --data-dir, not both")
    model = DualLabelModel.load(args.model)
    if args.input:
        apply_runtime_overrides(model, args.overrides)
    if args.input:
        df = read_table(args.input)
        inputs = model_inputs(model, list(df.columns), args.smiles_column, str(args.input))
        data = dataset_from_frame(
            df,
            [s.name for s in model.preprocessor_.labels],
            label_specs=model.preprocessor_.labels,
            split_column=None,
            name=Path(args.input).name.split(".")[0],
            source=str(args.input),
            **inputs,
        )
    else:
        cfg = resolve_config(args, model.config_.to_dict())
        data = load_splits(cfg.data, cfg.seed)[2]
        # inference settings may change after training; the trained parts may not
        model.config = dataclasses.replace(
            model.config_, inference=cfg.inference, device=cfg.device
        )
    table = model.evaluate(data)
    sys.stdout.write(reveal_text(table))
    if args.output:
        atomic_write(args.output, lambda fh: table.to_csv(fh, index=False))
        atomic_write_text(config_path_beside(args.output), model.config_.to_yaml())
    return 0
