"""The metric registry: hand-computed values, NaN handling, undefined cases, misuse."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from molddl.data.labels import LabelSpec
from molddl.evaluation import metrics as M
from molddl.evaluation.metrics import METRICS, choose_threshold, compute, metrics_for, register

NAN = np.nan

# Binary: at 0.5 the predictions are [1, 0, 1, 0, 1]: TP = 2 (rows 0, 4), FP = 1 (row 2),
# FN = 1 (row 1), so P = R = 2/3 and F1 = 2/3. At 0.3 they are [1, 1, 1, 0, 1]: TP = 3,
# FP = 1, FN = 0, so P = 3/4, R = 1, F1 = 2 * 3/4 / (7/4) = 6/7.
Y_BIN = np.array([1.0, 1.0, 0.0, 0.0, 1.0])
P_BIN = np.array([0.9, 0.4, 0.6, 0.2, 0.7])

# Multiclass: arg-max classes [0, 1, 2, 0] against truth [0, 1, 2, 2].
# F1 per class: class 0 P = 1/2, R = 1 -> 2/3; class 1 -> 1; class 2 P = 1, R = 1/2 -> 2/3;
# macro = 7/9. ROC-AUC one-vs-rest: classes 0 and 1 rank their positive first -> 1; class 2
# positives .6, .15 vs negatives .1, .2: 3 of 4 pairs ordered -> 3/4; macro = 11/12.
# Average precision: classes 0 and 1 -> 1; class 2 ranks pos, neg, pos, neg:
# 1/2 * 1 + 1/2 * 2/3 = 5/6; macro = (1 + 1 + 5/6) / 3 = 17/18.
Y_MC = np.array([0.0, 1.0, 2.0, 2.0])
P_MC = np.array([[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.2, 0.2, 0.6], [0.45, 0.4, 0.15]])

# Regression: absolute errors 1, 1, 1, 0 -> MAE = 3/4, RMSE = sqrt(3/4). MAPE leaves out the
# row with y = 0: 100 * mean(1/2, 1/4, 0/5) = 25.
Y_REG = np.array([2.0, 4.0, 0.0, -5.0])
P_REG = np.array([3.0, 3.0, 1.0, -5.0])


@pytest.mark.parametrize(
    ("name", "y", "p", "kwargs", "expected"),
    [
        ("f1", Y_BIN, P_BIN, {}, 2 / 3),
        ("f1", Y_BIN, P_BIN, {"threshold": 0.3}, 6 / 7),
        ("f1", Y_MC, P_MC, {}, 7 / 9),
        ("roc_auc", Y_MC, P_MC, {}, 11 / 12),
        ("pr_auc", Y_MC, P_MC, {}, 17 / 18),
        ("mae", Y_REG, P_REG, {}, 3 / 4),
        ("rmse", Y_REG, P_REG, {}, math.sqrt(3 / 4)),
        ("mape", Y_REG, P_REG, {}, 25.0),
    ],
)
def test_hand_computed_values(name, y, p, kwargs, expected):
    assert compute(name, y, p, **kwargs) == pytest.approx(expected)


def test_binary_aucs_by_hand():
    # Positives score .35 and .8, negatives .1 and .4: 3 of the 4 (pos, neg) pairs are ordered,
    # so ROC-AUC = 3/4. Ranked: .8 pos (P 1, R 1/2), .4 neg, .35 pos (P 2/3, R 1):
    # AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    y = np.array([0.0, 0.0, 1.0, 1.0])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    assert compute("roc_auc", y, p) == pytest.approx(3 / 4)
    assert compute("pr_auc", y, p) == pytest.approx(5 / 6)


@pytest.mark.parametrize(
    ("name", "y", "p"),
    [
        ("f1", Y_BIN, P_BIN),
        ("roc_auc", Y_BIN, P_BIN),
        ("pr_auc", Y_BIN, P_BIN),
        ("f1", Y_MC, P_MC),
        ("roc_auc", Y_MC, P_MC),
        ("mae", Y_REG, P_REG),
        ("rmse", Y_REG, P_REG),
        ("mape", Y_REG, P_REG),
    ],
)
def test_nan_truth_rows_are_ignored(name, y, p):
    # Missing truth inserted with predictions that would change every metric if counted.
    y_nan = np.insert(y, [1, 3], NAN)
    p_nan = np.insert(p, [1, 3], np.ones_like(p[:1]) * 0.95, axis=0)
    assert compute(name, y_nan, p_nan) == pytest.approx(compute(name, y, p))


@pytest.mark.parametrize(
    ("name", "y", "p"),
    [
        ("roc_auc", [1.0, 1.0, NAN], [0.2, 0.9, 0.5]),
        ("pr_auc", [0.0, 0.0], [0.2, 0.9]),
        ("f1", [0.0, 0.0], [0.2, 0.3]),
        ("roc_auc", [2.0, 2.0], [[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]]),
        ("mape", [0.0, 0.0, NAN], [1.0, 2.0, 3.0]),
        ("mae", [NAN, NAN], [1.0, 2.0]),
        ("rmse", [], []),
        ("f1", [NAN], [0.9]),
    ],
)
def test_undefined_is_nan(name, y, p, caplog):
    with caplog.at_level(logging.DEBUG, logger="molddl.evaluation.metrics"):
        assert math.isnan(compute(name, np.array(y), np.array(p)))
    assert "undefined" in caplog.text


def test_multiclass_auc_averages_classes_present_in_truth():
    # Class 1 never occurs in truth: only classes 0 and 2 (both perfectly ranked) count.
    y = np.array([0.0, 2.0, 2.0])
    P = np.array([[0.9, 0.05, 0.05], [0.1, 0.5, 0.4], [0.2, 0.1, 0.7]])
    assert compute("roc_auc", y, P) == pytest.approx(1.0)


def test_unknown_metric_lists_known_names():
    with pytest.raises(KeyError, match="roc_auc") as err:
        compute("accuracy", Y_BIN, P_BIN)
    assert "accuracy" in str(err.value)


@pytest.mark.parametrize(
    ("name", "kind", "p"),
    [("mape", "binary", P_BIN), ("roc_auc", "regression", P_BIN), ("mae", None, P_MC[:, :2])],
)
def test_wrong_kind_names_metric_and_kind(name, kind, p):
    y = np.array([0.0, 1.0, 1.0, 0.0]) if p.ndim == 2 else Y_BIN
    expected_kind = kind or "multiclass"
    with pytest.raises(ValueError, match=rf"{name}.*{expected_kind}"):
        compute(name, y, p[: len(y)], kind=kind)


def test_bad_shapes_and_classes_raise():
    with pytest.raises(ValueError, match="shape"):
        compute("mae", Y_REG, P_REG[:3])
    with pytest.raises(ValueError, match="classes 0..1"):
        compute("roc_auc", np.array([0.0, 2.0]), np.array([0.1, 0.9]))
    with pytest.raises(ValueError, match="NaN"):
        compute("mae", Y_REG, np.array([1.0, NAN, 1.0, 1.0]))


def test_metrics_for_each_kind():
    assert metrics_for(LabelSpec("a", "binary")) == ["f1", "roc_auc", "pr_auc"]
    assert metrics_for(LabelSpec("b", "multiclass", 3)) == ["f1", "roc_auc", "pr_auc"]
    assert metrics_for(LabelSpec("c", "regression")) == ["mape", "mae", "rmse"]
    for kind, names in [("binary", ["f1"]), ("regression", ["mape", "mae", "rmse"])]:
        assert all(kind in METRICS[n].kinds for n in names)
    assert not METRICS["mae"].higher_is_better and METRICS["roc_auc"].higher_is_better


def test_register_adds_metric_and_refuses_duplicates(monkeypatch):
    monkeypatch.setattr(M, "METRICS", dict(METRICS))

    @register("max_error", ("regression",), higher_is_better=False)
    def max_error(y, p, threshold):
        return float(np.max(np.abs(y - p)))

    assert compute("max_error", np.array([1.0, NAN, 3.0]), np.array([2.0, 9.0, 0.0])) == 3.0
    with pytest.raises(ValueError, match="already registered"):
        register("max_error", ("regression",), higher_is_better=False)(max_error)
    with pytest.raises(ValueError, match="unknown label kinds"):
        register("odd", ("ordinal",), higher_is_better=True)


def test_choose_threshold_maximises_f1():
    # Cuts at each score give F1: .2 -> 3/4, .4 -> 6/7, .6 -> 2/3, .7 -> 4/5, .9 -> 1/2.
    y = np.append(Y_BIN, NAN)
    p = np.append(P_BIN, 0.5)  # would change the counts at .4 if the NaN row were used
    t = choose_threshold(y, p)
    assert t == pytest.approx(0.4)
    assert compute("f1", y, p, threshold=t) == pytest.approx(6 / 7)
    assert compute("f1", y, p, threshold=t) > compute("f1", y, p)


def test_choose_threshold_without_positives_keeps_default(caplog):
    with caplog.at_level(logging.WARNING):
        assert choose_threshold(np.array([0.0, 0.0]), np.array([0.3, 0.8])) == 0.5
    assert "no positive" in caplog.text
