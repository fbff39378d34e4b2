"""molddl: Dual-Label Learning for molecules and tables with irregularly missing labels.

The public API is importable from here (each name loaded on first use, so that
``import molddl`` stays cheap)::

    from molddl import Config, DualLabelModel, load_splits, tune

    cfg = Config.from_yaml("tox21")          # a shipped config by name, from any folder
    train, val, test = load_splits(cfg.data, seed=0)
    model = DualLabelModel(cfg).fit(train, val)

- :class:`Config` / :class:`ConfigError`: the validated configuration;
  :func:`shipped_configs` names the configs shipped in the repository's ``configs/``, and
  :func:`shipped_results` finds a committed benchmark run of ``docs/results/``;
- :func:`load_splits`: a config's dataset, split (seeded) and masked; :func:`load_dataset`
  reads one without splitting, as a :class:`DualLabelDataset`;
- :class:`DualLabelModel`: fit / predict / evaluate / save, scikit-learn shaped;
- :func:`tune`: an Optuna study over ``tune.space``, continued by a rerun.

The figures of the paper's experiments are in the modules of :mod:`molddl.experiments`
(``compare.figure(tidy)``, ...).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
from typing import TYPE_CHECKING, Any

from molddl._version import __version__

if TYPE_CHECKING:  # the names as a type checker and an editor see them
    from molddl.config import Config, ConfigError, shipped_configs, shipped_results
    from molddl.data.dataset import DualLabelDataset
    from molddl.data.loaders import load_dataset
    from molddl.models.estimator import DualLabelModel
    from molddl.pipeline import load_splits
    from molddl.tuning import tune

#: public name -> the module that defines it, imported on first use
_LAZY = {
    "Config": "molddl.config",
    "ConfigError": "molddl.config",
    "DualLabelDataset": "molddl.data.dataset",
    "DualLabelModel": "molddl.models.estimator",
    "load_dataset": "molddl.data.loaders",
    "load_splits": "molddl.pipeline",
    "shipped_configs": "molddl.config",
    "shipped_results": "molddl.config",
    "tune": "molddl.tuning",
}

__all__ = [
    "Config",
    "ConfigError",
    "DualLabelDataset",
    "DualLabelModel",
    "__version__",
    "load_dataset",
    "load_splits",
    "shipped_configs",
    "shipped_results",
    "tune",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'molddl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def _quiet_notebook_tqdm() -> None:
    """In a Jupyter kernel without ipywidgets, import ``tqdm.autonotebook`` once without its
    ``TqdmWarning: IProgress not found``.

    molddl's own progress bars are plain tqdm bars on stderr; but two of its dependencies
    import ``tqdm.auto`` when they are imported (``torch_geometric.utils.influence``, reached
    through ``molddl.data.featurizers.graph``, and ``optuna.progress_bar``), and in a kernel
    without ipywidgets ``tqdm.autonotebook`` warns once, at that import, then falls back to
    the plain bar. The warning names nothing molddl shows, so it is dropped; any bar then
    drawn is the plain one, as it would have been. Outside a kernel (no ``IPython`` imported)
    this does nothing and costs nothing; with ipywidgets installed, nothing is imported.
    """
    if "IPython" not in sys.modules or "tqdm.autonotebook" in sys.modules:
        return
    if importlib.util.find_spec("ipywidgets") is not None:
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        importlib.import_module("tqdm.autonotebook")


_quiet_notebook_tqdm()
