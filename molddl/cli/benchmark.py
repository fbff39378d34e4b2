"""``molddl benchmark``: the paper's experiments (§IV)."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from molddl.cli.options import add_config_options, resolve_config
from molddl.experiments.compare import METHODS, compare, summary_markdown


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("benchmark", help="run the paper's experiments")
    bsub = p.add_subparsers(dest="benchmark_command", metavar="EXPERIMENT", required=True)
    c = bsub.add_parser(
        "compare",
        help="every method x every reveal task, mean ± std over seeds",
        description=(
            "Train on each seed's split and score Single-y1, Single-y2, Double-y1, Double-y2 "
            "for every method. Writes results.csv (tidy), results.md and config.yaml to "
            "--output; finished seeds are kept and skipped when the command is run again."
        ),
    )
    add_config_options(c)
    c.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="split seeds")
    c.add_argument(
        "--methods", nargs="+", default=list(METHODS), choices=list(METHODS), help="methods"
    )
    c.add_argument("--output", required=True, help="output folder")
    c.set_defaults(run=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    cfg = resolve_config(args)
    with tqdm(total=len(args.seeds), desc="seeds", file=sys.stderr) as bar:
        tidy = compare(cfg, args.seeds, args.output, args.methods, progress=lambda _: bar.update())
    sys.stdout.write(summary_markdown(tidy))
    return 0
