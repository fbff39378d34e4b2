"""Entry point of the ``molddl`` command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from molddl._version import __version__
from molddl.cli import benchmark as benchmark_cmd
from molddl.cli import data as data_cmd
from molddl.cli import demo as demo_cmd
from molddl.cli import evaluate as evaluate_cmd
from molddl.cli import predict as predict_cmd
from molddl.cli import train as train_cmd
from molddl.cli import tune as tune_cmd

COMMANDS = (data_cmd, train_cmd, predict_cmd, evaluate_cmd, benchmark_cmd, demo_cmd, tune_cmd)


class UserError(Exception):
    """A problem with the user's input: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="molddl",
        description="Dual-Label Learning: train and predict with irregularly missing labels.",
    )
    parser.add_argument("--version", action="version", version=f"molddl {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in COMMANDS:
        cmd.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.run(args) or 0)
    except (UserError, ValueError, FileNotFoundError, KeyError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        sys.stderr.write(f"molddl: error: {msg}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
