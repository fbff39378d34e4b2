"""What the repository ships beside the package, found by name from any working folder: the
configs of its top-level ``configs/`` and the committed benchmark runs of ``docs/results/``.

Both folders stay at the repository's top level, beside the ``molddl`` package. ``make setup``
installs molddl editable (``pip install -e .``: the package is imported from the checkout), so
they are found relative to the package, whatever the working folder::

    Config.from_yaml("tox21")        # configs/tox21.yaml of the checkout
    shipped_results("mof-compare")   # docs/results/mof-compare/results.csv

An install without the checkout (a built wheel) ships neither folder; the errors say so and
name where they were looked for.
"""

from __future__ import annotations

import os
from pathlib import Path

from molddl.config.validate import ConfigError, _suggest

#: the checkout that holds the ``molddl`` package (of an editable install)
REPOSITORY = Path(__file__).resolve().parents[2]
#: the shipped configs, ``<name>.yaml``
CONFIG_DIR = REPOSITORY / "configs"
#: the committed benchmark runs, ``<name>/results.csv``
RESULTS_DIR = REPOSITORY / "docs" / "results"


def shipped_configs() -> list[str]:
    """The names of the shipped configs (``tox21``, ``mof``, ...), sorted; empty when this
    install has no ``configs/`` folder."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def is_bare_name(path: str | Path) -> bool:
    """Whether ``path`` is a bare name such as ``"tox21"`` (a string without a folder or a
    suffix) rather than a file's path; a :class:`~pathlib.Path` is always a path."""
    if not isinstance(path, str) or not path or path in (".", ".."):
        return False
    separators = {"/", os.sep, *([os.altsep] if os.altsep else [])}
    return not any(s in path for s in separators) and not Path(path).suffix


def shipped_config(name: str) -> Path:
    """The file of the shipped config ``name`` (``configs/<name>.yaml``).

    Raises
    ------
    ConfigError
        No shipped config has that name: the error lists the shipped ones (or says that this
        install has none, and where they were looked for).
    """
    path = CONFIG_DIR / f"{name}.yaml"
    if is_bare_name(name) and path.is_file():
        return path
    names = shipped_configs()
    if not names:
        raise ConfigError(
            f"no shipped config {name!r}: this install has no configs folder ({CONFIG_DIR}); "
            "the configs ship with the repository (install it with `pip install -e .` from a "
            "checkout), or give the path of a YAML file"
        )
    raise ConfigError(
        f"no shipped config {name!r}{_suggest(name, names)}; the shipped configs are "
        f"{', '.join(names)} (in {CONFIG_DIR}), or give the path of a YAML file"
    )


def shipped_results(name: str) -> Path:
    """``results.csv`` of the committed benchmark run ``name`` (``docs/results/<name>``).

    Raises
    ------
    FileNotFoundError
        No committed run of that name has a ``results.csv`` here: the error lists those
        that do (or says that this install has no ``docs/results`` folder).
    """
    path = RESULTS_DIR / name / "results.csv"
    if is_bare_name(name) and path.is_file():
        return path
    names = sorted(p.parent.name for p in RESULTS_DIR.glob("*/results.csv"))
    if not names:
        raise FileNotFoundError(
            f"no committed results {name!r}: this install has no {RESULTS_DIR} (they ship "
            "with the repository, not with the package)"
        )
    raise FileNotFoundError(
        f"no committed results {name!r}{_suggest(name, names)}; {RESULTS_DIR} holds "
        f"{', '.join(names)}"
    )
