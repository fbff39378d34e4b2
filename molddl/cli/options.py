"""Options shared by the commands that take a config."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from molddl.config import Config


def add_config_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config (see configs/); defaults apply to missing keys")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help=(
            "override one config key, e.g. --set train.max_epochs=20 or --set "
            "data.labels=a,b (repeatable)"
        ),
    )
    p.add_argument("--data-dir", help="folder with the data files (default: $MOLDDL_DATA_DIR)")


class ConfigKeyAction(argparse.Action):
    """A flag that stands for one config key: its value joins the ``--set`` overrides, in
    command-line order (a later ``--set`` of the same key wins, and the other way round).

    ``convert(values)`` turns what argparse parsed into the key's value (a value, not YAML
    text), raising ``ValueError`` with a message for a value the key cannot take; argparse
    then reports ``argument FLAG: message`` (exit status 2).
    """

    def __init__(
        self,
        option_strings: Sequence[str],
        dest: str,
        *,
        config_key: str,
        convert: Callable[[Any], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("default", argparse.SUPPRESS)  # the list belongs to --set
        super().__init__(option_strings, "overrides", **kwargs)
        self.config_key = config_key
        self.convert = convert

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        try:
            value = self.convert(values) if self.convert else values
        except ValueError as err:
            raise argparse.ArgumentError(self, str(err)) from None
        earlier = getattr(namespace, "overrides", None) or []
        namespace.overrides = [*earlier, (self.config_key, value)]  # a copy, as append makes


def resolve_config(args: argparse.Namespace, base: dict | None = None) -> Config:
    """Config from ``--config`` (or ``base``), then ``--set`` overrides and the flags that
    stand for a key (:class:`ConfigKeyAction`), then ``--data-dir``.

    The data paths given here (``data.dataset`` as a file, ``data.data_dir``) are made
    absolute, so that a model or config written with them works from any folder; a named
    dataset stays a name, and the paths of ``base`` (a trained model's config) stay as
    they are.
    """
    start = Config.from_yaml(args.config) if args.config else Config.from_dict(base or {})
    overrides: list[str | tuple[str, Any]] = list(getattr(args, "overrides", None) or [])
    if getattr(args, "data_dir", None):
        overrides.append(("data.data_dir", args.data_dir))
    cfg = start.override(overrides) if overrides else start
    return absolute_data_paths(cfg, keep=None if args.config else start)


def absolute_data_paths(cfg: Config, keep: Config | None = None) -> Config:
    """``cfg`` with ``data.dataset`` (a path that exists, not a named dataset) and
    ``data.data_dir`` as absolute paths; those equal to ``keep``'s stay as they are."""
    from molddl.data.loaders import LOADERS

    data = cfg.data
    dataset, data_dir = data.dataset, data.data_dir
    if (keep is None or dataset != keep.data.dataset) and (
        dataset not in LOADERS and Path(dataset).exists()
    ):
        dataset = os.path.abspath(dataset)
    if data_dir and (keep is None or data_dir != keep.data.data_dir):
        data_dir = os.path.abspath(os.path.expanduser(data_dir))
    if (dataset, data_dir) == (data.dataset, data.data_dir):
        return cfg
    return dataclasses.replace(
        cfg, data=dataclasses.replace(data, dataset=dataset, data_dir=data_dir)
    )


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
