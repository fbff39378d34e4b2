"""Options shared by the commands that take a config."""

from __future__ import annotations

import argparse
from pathlib import Path

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


def add_runtime_options(p: argparse.ArgumentParser) -> None:
    """``--set`` for the settings a trained model leaves open (``inference.*``, ``device``)."""
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=(
            "override an inference setting of the model, e.g. --set inference.damping=0.5 or "
            "--set device=cuda (repeatable); the model fixes everything else"
        ),
    )


def apply_runtime_overrides(model, overrides: list[str]) -> Config:
    """Set ``inference.*`` / ``device`` overrides on a loaded model; returns its config."""
    bad = [o for o in overrides if not o.strip().startswith(("inference.", "device="))]
    if bad:
        raise ValueError(
            f"cannot override {bad[0].split('=')[0]!r} of a trained model: only inference.* "
            f"and device can change after training"
        )
    if overrides:
        model.config = model.config_.override(overrides)
    return model.config_


def config_path_beside(output: str | Path) -> Path:
    """Where the resolved config of an output file goes: ``<output>.config.yaml``."""
    output = Path(output)
    return output.with_name(output.name + ".config.yaml")
