"""``molddl demo``: the README's main job."""

from __future__ import annotations

import argparse

from molddl.cli.data import describe


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on the real datasets")
    p.add_argument("--data-dir", help="folder holding the data files")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for name in ("tox21", "higgs", "mof"):
        ns = argparse.Namespace(
            dataset=name, labels=None, data_dir=args.data_dir, missing_rate=0.4, seed=0
        )
        describe(ns)
    return 0
