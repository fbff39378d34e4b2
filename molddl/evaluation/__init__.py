"""Evaluation: the metric registry and the reveal-mode evaluator (SPEC §6)."""

from molddl.evaluation.metrics import (
    METRICS,
    Metric,
    choose_threshold,
    compute,
    get_metric,
    metrics_for,
    register,
)
from molddl.evaluation.reveal import REVEAL_MODES, RevealTask, evaluate, reveal

__all__ = [
    "METRICS",
    "REVEAL_MODES",
    "Metric",
    "RevealTask",
    "choose_threshold",
    "compute",
    "evaluate",
    "get_metric",
    "metrics_for",
    "register",
    "reveal",
]
