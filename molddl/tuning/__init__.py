"""Hyper-parameter search with Optuna over the ``tune.space`` of a config.

Each trial copies the config, sets the sampled ``model.*`` / ``train.*`` values, fits a
:class:`~molddl.models.estimator.DualLabelModel` on the train part and scores it by the best
validation value of ``tune.metric``; the test part is never loaded into a trial. Trials live
in an Optuna RDB storage (SQLite by default), so a second run, a second process or a second
machine with the same study name and storage continues the same study.

- :mod:`~molddl.tuning.study`: storage, heartbeats, sampler, pruner, the metric check;
- :mod:`~molddl.tuning.objective`: one trial;
- :mod:`~molddl.tuning.search`: :func:`tune`, in one process or several workers;
- :mod:`~molddl.tuning.report`: best config, trials table, summary and plots.
"""

from molddl.tuning.objective import Objective, PruningCallback, apply_params, suggest
from molddl.tuning.report import best_config, summary_markdown, write_reports
from molddl.tuning.search import LOSS_WEIGHTS, tune
from molddl.tuning.study import (
    FINISHED,
    check_metric,
    join_study,
    open_storage,
    storage_url,
    study_direction,
)

__all__ = [
    "FINISHED",
    "LOSS_WEIGHTS",
    "Objective",
    "PruningCallback",
    "apply_params",
    "best_config",
    "check_metric",
    "join_study",
    "open_storage",
    "storage_url",
    "study_direction",
    "suggest",
    "summary_markdown",
    "tune",
    "write_reports",
]
