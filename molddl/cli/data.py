"""``molddl data``: look at a dataset before training on it."""

from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np

from molddl.cli.options import add_config_options, resolve_config
from molddl.data.featurizers import parse_smiles
from molddl.data.loaders import load_dataset
from molddl.data.masking import mask_labels
from molddl.pipeline import load_data


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect datasets", description="Inspect datasets.")
    data_sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    d = data_sub.add_parser(
        "describe",
        help="print the D12 / D1 / D2 / D0 partition of a dataset",
        description=(
            "Print the partition table (SPEC §1), label statistics and input problems. With "
            "--config or --set, the data settings are those 'molddl train' would use (e.g. "
            "--set data.labels=a,b --set data.missing_rate=0.4); DATASET and --labels replace "
            "the config's."
        ),
    )
    d.add_argument(
        "dataset",
        nargs="?",
        help="tox21, higgs, mof, synthetic, or a path to a CSV / Parquet file",
    )
    add_config_options(d)  # --config, --set data.*, --data-dir: as 'molddl train' reads them
    d.add_argument("--labels", nargs="+", help="label columns (default: the dataset's pair)")
    d.add_argument(
        "--missing-rate",
        type=float,
        default=0.0,
        help="also show the partition after hiding each label at this rate (seeded)",
    )
    d.add_argument("--seed", type=int, default=0, help="seed of the synthetic masking")
    d.set_defaults(run=describe)


def describe(args: argparse.Namespace) -> int:
    if getattr(args, "config", None) or getattr(args, "overrides", None):
        cfg = resolve_config(args).data
        if args.dataset:
            cfg = dataclasses.replace(cfg, dataset=args.dataset)
        if args.labels:
            cfg = dataclasses.replace(cfg, labels=args.labels)
        data = load_data(cfg, featurize=False)
        if not args.missing_rate and cfg.missing_rate:
            args.missing_rate = cfg.missing_rate
    elif args.dataset:
        data = load_dataset(args.dataset, labels=args.labels, data_dir=args.data_dir)
    else:
        raise ValueError("name a dataset or give --config / --set data.dataset=...")
    out = sys.stdout
    kind = "molecules (SMILES)" if data.is_molecular else f"{len(data.feature_names)} features"
    out.write(f"dataset {data.name}: {len(data)} samples, {kind}\n")
    for k, spec in enumerate(data.labels):
        col = data.y[:, k]
        present = col[~np.isnan(col)]
        stats = spec.behaviour.describe(present)
        out.write(
            f"  label y{k + 1} = {spec.name} ({spec.kind}): missing {np.isnan(col).mean():.2%}, "
            f"{stats}\n"
        )
    if len(data.labels) == 2:
        out.write(data.describe().to_string(index=False) + "\n")
        if args.missing_rate > 0:
            masked = data.with_labels(mask_labels(data.y, args.missing_rate, args.seed))
            out.write(f"after hiding labels at rate {args.missing_rate} (seed {args.seed}):\n")
            out.write(masked.describe().to_string(index=False) + "\n")
    if data.smiles is not None:
        bad = [i for i, s in enumerate(data.smiles) if parse_smiles(s) is None]
        out.write(f"invalid SMILES: {len(bad)} (skipped at featurization)\n")
        for i in bad:
            out.write(f"  row {data.row[i] + 1}: {data.smiles[i]}\n")
    dropped = data.meta.get("dropped_constant_columns")
    if dropped:
        out.write(f"constant feature columns dropped: {len(dropped)}\n")
    return 0
