"""``molddl predict``: fill in every unknown label of a compound table (the screening job,
:func:`molddl.inference.screen.screen`)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

from molddl.cli.options import add_runtime_options, apply_runtime_overrides, config_path_beside
from molddl.inference import thresholds as cuts
from molddl.inference.outputs import Interrupted, check_output
from molddl.inference.screen import input_files, screen
from molddl.io import atomic_write_text
from molddl.models.estimator import DualLabelModel


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="predict every unknown label of a compound table (screening)",
        description=(
            "Read a table of compounds (SMILES, optionally an id and the label columns with the "
            "values you know; an empty cell or an absent label column is unknown) and write "
            "it back with every unknown label predicted: from the other label where that one "
            "is known (direct inference), else from both jointly (alternate inference). Known "
            "labels are kept. A binary label's column holds the given value, else the predicted "
            "probability of class 1. Added columns: <label>_prob (the probability, empty on "
            "given rows), <label>_class (the given value, else the hard 0/1 call at the "
            "threshold chosen on the validation part when the model was trained, or at "
            "--threshold), <label>_prob_<c> (multiclass), <label>_source (given / direct / "
            "alternate), iterations, converged and error (an invalid SMILES keeps its row, "
            "with an error and no prediction). Finished chunks are kept in "
            "OUTPUT.parts/ until the end, so the same command resumes an interrupted run "
            "(Ctrl-C or SIGTERM); one run at a time writes OUTPUT (OUTPUT.lock)."
        ),
    )
    p.add_argument("--model", required=True, help="model file written by 'molddl train'")
    p.add_argument(
        "--input",
        required=True,
        help="CSV (or .csv.gz), Parquet or SDF (or .sdf.gz) file of compounds to predict, or a "
        "folder or glob pattern of such shards of one table (read in the order of their "
        "names); an SDF gives a row per record: its SMILES, sdf_record, sdf_title and its "
        "data items",
    )
    p.add_argument(
        "--output",
        required=True,
        help="CSV, or Parquet for a name ending .parquet, to write (replaced atomically at the end)",
    )
    p.add_argument(
        "--smiles-column",
        help="SMILES column (default: the one the model was trained with, matched ignoring case)",
    )
    p.add_argument(
        "--chunk-size",
        type=int,
        default=20000,
        help="rows read, featurized and written at a time; bounds memory (default 20000)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes that featurize molecules (default: the number of CPU cores); with "
        "more than one, the model runs on the cores they leave (at least one thread). With "
        "--dask and no ADDRESS: the local cluster's worker processes",
    )
    p.add_argument(
        "--dask",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="predict on a Dask cluster: the scheduler's address (tcp://host:8786) or "
        "scheduler file (JSON); without ADDRESS, a local cluster of --workers processes. "
        "Each worker reads the model from the --model path (a shared file system); the "
        "output is the same as without --dask (pip install 'molddl[dask]')",
    )
    p.add_argument(
        "--threshold",
        dest="thresholds",
        action="append",
        default=[],
        metavar="[LABEL=]P",
        help="decision threshold for the <label>_class column of every binary label (P) or "
        "of one (LABEL=P), replacing the validation-chosen one (repeatable)",
    )
    add_runtime_options(p)
    p.set_defaults(run=run)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops the run as Ctrl-C does (finished parts kept, workers shut down)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame) -> None:
        raise Interrupted(signum)

    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def run(args: argparse.Namespace) -> int:
    try:
        with _sigterm_interrupts():
            return _run(args)
    except KeyboardInterrupt as err:  # one line, and the status a shell gives that signal
        signum = err.signum if isinstance(err, Interrupted) else signal.SIGINT
        note = err.note if isinstance(err, Interrupted) else ""
        name = signal.Signals(signum).name
        sys.stderr.write(f"molddl: interrupted ({name}){': ' + note if note else ''}\n")
        return 128 + signum


def _run(args: argparse.Namespace) -> int:
    for file in input_files(args.input):  # before the work of loading the model
        check_output(args.output, file, args.model)
    model = DualLabelModel.load(args.model)
    cfg = apply_runtime_overrides(model, args.overrides)
    given = cuts.parse(args.thresholds, model.preprocessor_.labels)
    for name, at in cuts.merged(model.thresholds_, given).items():
        where = ", ".join(f"{source} {t:.3g}" for source, t in at.items())
        sys.stdout.write(f"{name}_class: predicted 1 at a probability >= threshold ({where})\n")
    output = screen(
        model,
        args.input,
        args.output,
        model_path=args.model,
        smiles_column=args.smiles_column,
        chunk_size=args.chunk_size,
        workers=args.workers,
        thresholds=given,
        dask=args.dask,
    )
    atomic_write_text(config_path_beside(output), cfg.to_yaml())
    sys.stdout.write(f"predictions for {args.input} written to {output}\n")
    return 0
