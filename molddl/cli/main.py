"""Entry point of the ``molddl`` command."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from molddl._version import __version__
from molddl.config.validate import ConfigError

#: command name -> module with ``register(subparsers)``; a command imports only its own
#: module, so ``molddl predict`` does not pay for Optuna, matplotlib or the experiments
COMMANDS: dict[str, str] = {
    "data": "molddl.cli.data",
    "train": "molddl.cli.train",
    "predict": "molddl.cli.predict",
    "evaluate": "molddl.cli.evaluate",
    "benchmark": "molddl.cli.benchmark",
    "demo": "molddl.cli.demo",
    "tune": "molddl.cli.tune",
}


class UserError(Exception):
    """A problem with the user's input: printed as one line, exit status 2."""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of ``only`` that one (faster start-up)."""
    parser = argparse.ArgumentParser(
        prog="molddl",
        description="Dual-Label Learning: train and predict with irregularly missing labels.",
    )
    parser.add_argument("--version", action="version", version=f"molddl {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        if only in (None, name):
            importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    named = [a for a in args_list if not a.startswith("-")][:1]
    parser = build_parser(named[0] if named and named[0] in COMMANDS else None)
    args = parser.parse_args(args_list)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.run(args) or 0)
    except (UserError, ValueError, FileNotFoundError, KeyError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        sys.stderr.write(f"molddl: error: {_one_line(msg)}\n")
        return 2
    except OSError as err:  # the machine, not the input: a folder not writable, a full disk
        where = f" ({err.filename})" if err.filename else ""
        sys.stderr.write(f"molddl: error: {err.strerror or err}{where}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("molddl: interrupted\n")
        return 130
    except Exception as err:  # a defect of molddl: one line, the traceback under --verbose
        if args.verbose:
            raise
        sys.stderr.write(
            f"molddl: error: internal error {type(err).__name__}: {_one_line(err)} "
            f"(run again with -v for the traceback, and please report it)\n"
        )
        return 1


def _one_line(msg: object) -> str:
    """``msg`` on one line: an error line stays one line in logs and shells. A config error
    with several problems numbers them, ``(1) …; (2) …``."""
    problems = msg.problems if isinstance(msg, ConfigError) else [msg]
    lines = [" ".join(str(p).split()) for p in problems]
    if len(lines) == 1:
        return lines[0]
    return f"{len(lines)} problems: " + "; ".join(f"({i}) {t}" for i, t in enumerate(lines, 1))


if __name__ == "__main__":
    sys.exit(main())
