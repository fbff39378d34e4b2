"""``molddl tune``: hyper-parameter search over the config's ``tune.space`` with Optuna."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import optuna

from molddl.cli.options import add_config_options, resolve_config
from molddl.progress import Progress, quiet_trainings
from molddl.tuning import summary_markdown, tune
from molddl.tuning.search import quiet_optuna_tracebacks


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="search hyper-parameters (Optuna) and export the best config",
        description=(
            "Run trials that sample the config's tune.space, train on the train part and score "
            "tune.metric on the validation part (the test part is never used). Trials are kept "
            "in an Optuna storage (default: sqlite:///OUTPUT/study.db), so running the command "
            "again, or in parallel with the same --study and --storage, continues one study. "
            "Writes best_config.yaml (for molddl train --config), trials.csv, summary.md, "
            "history.png and importances.png to --output."
        ),
    )
    add_config_options(p)
    p.add_argument(
        "--trials",
        type=int,
        metavar="N",
        help="trials to add to the study (default: tune.trials); 0 writes the reports of the "
        "study as it stands",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="K",
        help="worker processes sharing the trials, each joining the study (default: 1)",
    )
    p.add_argument("--study", help="study name (default: tune.study)")
    p.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna RDB URL, e.g. postgresql://user@host/db (default: tune.storage, "
        "else sqlite:///OUTPUT/study.db)",
    )
    p.add_argument(
        "--output", required=True, metavar="DIR", help="folder for the study and its reports"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    cfg = resolve_config(args)
    given = {k: v for k in ("study", "storage") if (v := getattr(args, k)) is not None}
    cfg = replace(cfg, tune=replace(cfg.tune, **given))
    if not getattr(args, "verbose", False):
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        quiet_optuna_tracebacks()  # a failed trial's error is one line; -v shows its traceback
    cfg = quiet_trainings(cfg)
    total = cfg.tune.trials if args.trials is None else args.trials
    # a bar on a terminal; in a redirected log, a line per finished trial instead
    with Progress(total, "trials", unit="trial") as bar:
        study = tune(
            cfg, args.output, n_trials=args.trials, workers=args.workers, progress=bar.update
        )
    sys.stdout.write(summary_markdown(study, cfg.tune.metric))
    return 0
