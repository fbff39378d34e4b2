"""``molddl benchmark``: the paper's experiments (§IV), each resumable, each writing
``results.csv`` (tidy), ``results.md``, ``figure.png`` and ``config.yaml``."""

from __future__ import annotations

import argparse
import sys

from molddl.cli.options import add_config_options, resolve_config
from molddl.config import Config
from molddl.experiments.ablation import ablation
from molddl.experiments.compare import compare
from molddl.experiments.convergence import ITERATIONS, convergence
from molddl.experiments.missing_rate import RATES, missing_rate
from molddl.methods import METHODS
from molddl.progress import Progress, quiet_trainings

#: what --quick changes: a tiny model and budget, for a smoke run in tests
QUICK = [
    "model.hidden=16",
    "model.tower_hidden=16",
    "model.layers=1",
    "model.label_dim=4",
    "train.max_epochs=2",
    "train.patience=1",
]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmark",
        help="run the paper's experiments",
        description="The paper's experiments; every run resumes where a killed one stopped.",
    )
    bsub = p.add_subparsers(dest="benchmark_command", metavar="EXPERIMENT", required=True)

    def common(q: argparse.ArgumentParser, seeds: list[int], methods: bool = False) -> None:
        add_config_options(q)
        q.add_argument("--seeds", type=int, nargs="+", default=seeds, help="split/training seeds")
        q.add_argument("--output", required=True, help="output folder (reused to resume)")
        q.add_argument("--quick", action="store_true", help="tiny model and 2 epochs (smoke test)")
        if methods:
            q.add_argument(
                "--methods",
                nargs="+",
                choices=list(METHODS),
                metavar="METHOD",
                help="methods (default: config 'methods'): "
                + "; ".join(f"{m.name} = {m.description}" for m in METHODS.values()),
            )

    c = bsub.add_parser(
        "compare",
        help="every method × every reveal task (paper Fig. 4)",
        description="Single-y1, Single-y2, Double-y1, Double-y2 for every method, mean ± std.",
    )
    common(c, [0, 1, 2, 3, 4], methods=True)
    c.set_defaults(run=run)

    m = bsub.add_parser(
        "missing-rate",
        help="every method against the label missing rate (paper Fig. 5)",
        description="Hide each label of train/val at every rate, then compare the methods.",
    )
    common(m, [0, 1, 2, 3, 4], methods=True)
    m.add_argument("--rates", type=float, nargs="+", default=list(RATES), help="missing rates")
    m.set_defaults(run=run)

    a = bsub.add_parser(
        "ablation",
        help="training modes MT, a, a+b, a+b+c (paper Fig. 6)",
        description="MT = marginal model; a = loss_sup; a+b = + loss_rec; a+b+c = + loss_dual.",
    )
    common(a, [0, 1, 2, 3, 4])
    a.set_defaults(run=run)

    v = bsub.add_parser(
        "convergence",
        help="metric and fraction converged against iterations (paper Fig. 7)",
        description="Double-task scores, fraction converged and wall time per iteration budget.",
    )
    common(v, [0, 1, 2])
    v.add_argument("--iterations", type=int, nargs="+", default=list(ITERATIONS))
    v.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.quick:
        args.overrides = QUICK + list(args.overrides)
    cfg: Config = resolve_config(args)
    if hasattr(args, "methods") and not args.methods:
        args.methods = list(cfg.methods)
    cfg = quiet_trainings(cfg)
    name = args.benchmark_command
    n = len(args.seeds) * (len(args.rates) if name == "missing-rate" else 1)
    # a bar on a terminal; in a redirected log, a line per finished cell instead
    with Progress(n, f"{name} cells", unit="cell") as bar:
        tick = lambda _: bar.update()  # noqa: E731
        if name == "compare":
            compare(cfg, args.seeds, args.output, args.methods, tick)
        elif name == "missing-rate":
            missing_rate(cfg, args.seeds, args.output, args.methods, args.rates, tick)
        elif name == "ablation":
            ablation(cfg, args.seeds, args.output, tick)
        else:
            convergence(cfg, args.seeds, args.output, args.iterations, tick)
    with open(f"{args.output}/results.md") as fh:
        sys.stdout.write(fh.read())
    sys.stdout.write(f"\n{args.output}: results.csv, results.md, figure.png, config.yaml\n")
    return 0
