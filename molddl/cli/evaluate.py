"""``molddl evaluate``: score a trained model in the four reveal tasks (SPEC §6)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import pandas as pd

from molddl.cli.options import (
    add_config_options,
    apply_runtime_overrides,
    config_path_beside,
    resolve_config,
)
from molddl.config import Config
from molddl.data.dataset import DualLabelDataset
from molddl.data.loaders import dataset_from_frame, read_table
from molddl.inference.screen import model_inputs
from molddl.io import atomic_write, atomic_write_text
from molddl.models.estimator import DualLabelModel
from molddl.pipeline import load_data, load_splits


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score a trained model: Single-y1, Single-y2, Double-y1, Double-y2",
        description=(
            "Score a model written by 'molddl train' in the reveal tasks: on samples with both "
            "labels, one label is shown and the other predicted (Single-y1, Single-y2), or "
            "both are hidden (Double-y1, Double-y2). The samples come from --input, or else "
            "they are the test samples 'molddl train' stored in the model file, looked up by "
            "id in the data of the model's config (--data-dir / --set data.* may say where "
            "those data are now; a change of seed or split does not change the samples)."
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


def stored_test_part(model: DualLabelModel, cfg: Config, path: str) -> DualLabelDataset:
    """The test samples stored in the model file, in their stored order, from the data of
    ``cfg``. A model file without them (written before molddl stored them) gets the test
    part of the training config's split, which is refused when ``cfg`` splits otherwise."""
    if model.test_ids_ is None:
        trained = model.config_
        changed = [k for k, v in _split_settings(cfg).items() if _split_settings(trained)[k] != v]
        if changed:
            raise ValueError(
                f"{path} stores no test sample ids (it was written before model files did), "
                f"so its test part can only be rebuilt from the split it was trained with, and "
                f"the given config changes {', '.join(changed)}; drop those settings, or pass "
                f"the samples to score with --input"
            )
        sys.stderr.write(
            f"note: {path} stores no test sample ids (it was written before model files did); "
            f"scoring the test part of its training config's split (seed {trained.seed}), "
            f"which holds the samples it was tested on only if the data file is unchanged\n"
        )
        return load_splits(cfg.data, cfg.seed)[2]
    data = load_data(cfg.data)
    index = pd.Index(data.ids)
    if not index.is_unique:
        raise ValueError(
            f"the data of the config ({cfg.data.dataset}) have repeated sample ids, so the "
            f"test samples stored in {path} cannot be found by id; pass them with --input"
        )
    pos = index.get_indexer(model.test_ids_)
    missing = model.test_ids_[pos < 0]
    if len(missing):
        raise ValueError(
            f"the data of the config ({cfg.data.dataset}) no longer hold {len(missing)} of the "
            f"{len(pos)} test samples stored in {path} (e.g. id {missing[0]!r}); point "
            f"--data-dir / --set data.dataset at the data it was trained on, or pass the "
            f"samples to score with --input"
        )
    return data.subset(pos)


def _split_settings(cfg: Config) -> dict[str, object]:
    """What decides the test part of a split: the seed and the data settings (except where
    the data files are)."""
    data = dataclasses.asdict(cfg.data)
    data.pop("data_dir")
    return {"seed": cfg.seed, **{f"data.{k}": v for k, v in data.items()}}


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
        data = stored_test_part(model, cfg, str(args.model))
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
