"""molddl: Dual-Label Learning for molecules and tables with irregularly missing labels.

The common entry points are importable from here (loaded on first use, so that
``import molddl`` stays cheap)::

    from molddl import Config, DualLabelModel, load_splits
"""

from __future__ import annotations

import importlib
from typing import Any

from molddl._version import __version__

_LAZY = {
    "Config": "molddl.config",
    "DualLabelModel": "molddl.models.estimator",
    "DualLabelDataset": "molddl.data.dataset",
    "load_dataset": "molddl.data.loaders",
    "load_splits": "molddl.pipeline",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'molddl' has no attribute {name!r}")
