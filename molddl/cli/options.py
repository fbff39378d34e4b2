"""Options shared by the commands that take a config."""

from __future__ import annotations

import argparse

from molddl.config import Config


def add_config_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config (see configs/); defaults apply to missing keys")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config key, e.g. --set train.max_epochs=20 (repeatable)",
    )
    p.add_argument("--data-dir", help="folder with the data files (default: $MOLDDL_DATA_DIR)")


def resolve_config(args: argparse.Namespace, base: dict | None = None) -> Config:
    """Config from ``--config`` (or ``base``), then ``--set`` overrides, then ``--data-dir``."""
    cfg = Config.from_yaml(args.config) if args.config else Config.from_dict(base or {})
    overrides = list(args.overrides)
    if args.data_dir:
        overrides.append(f"data.data_dir={args.data_dir}")
    return cfg.override(overrides) if overrides else cfg
