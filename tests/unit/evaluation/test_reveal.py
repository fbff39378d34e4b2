"""Reveal modes and the evaluator shared by DLL and the baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest

from molddl.data.dataset import DualLabelDataset
from molddl.data.labels import LabelSpec
from molddl.evaluation.reveal import REVEAL_MODES, evaluate, reveal

NAN = np.nan

# y1 = 1[y2 > 0] wherever both labels are present (rows 0, 1, 2, 3, 6, 7).
Y = np.array(
    [
        [1.0, 2.0],
        [0.0, -1.0],
        [1.0, 3.0],
        [0.0, -2.0],
        [NAN, 1.0],
        [1.0, NAN],
        [1.0, 4.0],
        [0.0, -3.0],
        [NAN, NAN],
    ]
)
BOTH = np.array([0, 1, 2, 3, 6, 7])


def make_data(y: np.ndarray = Y) -> DualLabelDataset:
    n = len(y)
    return DualLabelDataset(
        y=y,
        labels=(LabelSpec("tox", "binary"), LabelSpec("sol", "regression")),
        ids=np.array([f"m{i}" for i in range(n)]),
        row=np.arange(n),
    )


@pytest.mark.parametrize(
    ("mode", "hidden", "tasks"),
    [
        ("single_y1", [0], ["Single-y1"]),
        ("single_y2", [1], ["Single-y2"]),
        ("double", [0, 1], ["Double-y1", "Double-y2"]),
    ],
)
def test_reveal_hides_the_mode_labels_on_complete_rows(mode, hidden, tasks):
    y = Y.copy()
    task = reveal(y, mode)
    np.testing.assert_array_equal(task.rows, BOTH)
    np.testing.assert_array_equal(task.truth, Y[BOTH])
    shown = [k for k in range(2) if k not in hidden]
    assert np.isnan(task.revealed[:, hidden]).all()
    np.testing.assert_array_equal(task.revealed[:, shown], Y[BOTH][:, shown])
    assert task.scored == tuple(hidden)
    assert [task.task_name(k) for k in task.scored] == tasks
    np.testing.assert_array_equal(y, Y)  # the caller's labels are untouched


def test_task_name_refuses_revealed_label():
    with pytest.raises(ValueError, match="revealed"):
        reveal(Y, "single_y1").task_name(1)


def test_reveal_errors():
    with pytest.raises(ValueError, match="single_y1, single_y2, double"):
        reveal(Y, "triple")
    with pytest.raises(ValueError, match="no sample has all labels"):
        reveal(np.array([[1.0, NAN], [NAN, 2.0]]), "double")


def id_oracle(data: DualLabelDataset):
    """Looks the hidden labels up by sample id: perfect if rows stay aligned."""
    truth = make_data().to_frame().set_index("id")
    y = truth.loc[data.ids, ["tox", "sol"]].to_numpy()
    return [y[:, 0], y[:, 1]]


def test_evaluate_with_id_oracle_is_perfect_on_every_task():
    table = evaluate(id_oracle, make_data(), thresholds=[0.5, None])
    assert sorted(set(table.task)) == ["Double-y1", "Double-y2", "Single-y1", "Single-y2"]
    assert list(table.columns) == ["task", "label", "metric", "value", "n", "threshold"]
    assert len(table) == 2 * 4 + 2 * 3  # binary tasks: 3 metrics + f1_tuned; regression: 3
    assert (table.n == len(BOTH)).all()
    best = {"f1": 1.0, "f1_tuned": 1.0, "roc_auc": 1.0, "pr_auc": 1.0}
    best |= {"mape": 0.0, "mae": 0.0, "rmse": 0.0}
    for r in table.itertuples():
        assert r.value == pytest.approx(best[r.metric]), (r.task, r.metric)
        assert r.label == ("tox" if r.task.endswith("y1") else "sol")


def relation_predictor(seen: list[np.ndarray]):
    """Returns given labels; else y1 = 1[y2 > 0] from a shown y2, or fixed guesses 0.5 and 1."""

    def predict(data: DualLabelDataset):
        seen.append(data.y.copy())
        y1, y2 = data.y[:, 0], data.y[:, 1]
        guess1 = np.where(np.isnan(y2), 0.5, (y2 > 0).astype(float))
        return [np.where(np.isnan(y1), guess1, y1), np.where(np.isnan(y2), 1.0, y2)]

    return predict


def test_evaluate_scores_hidden_labels_only():
    seen: list[np.ndarray] = []
    table = evaluate(relation_predictor(seen), make_data(), thresholds=[0.6, None])
    value = table.set_index(["task", "metric"])["value"]
    # The model saw exactly the revealed labels of each mode, on the complete rows only.
    for y_seen, mode in zip(seen, REVEAL_MODES, strict=True):
        np.testing.assert_array_equal(y_seen, reveal(Y, mode).revealed)
    # Single-y1: y2 is shown and y1 = 1[y2 > 0] -> perfect.
    for m in ("f1", "roc_auc", "pr_auc", "f1_tuned"):
        assert value["Single-y1", m] == pytest.approx(1.0)
    # Double-y1: constant 0.5 -> ROC-AUC 1/2, AP = prevalence 3/6; at 0.5 all positive:
    # P = 1/2, R = 1, F1 = 2/3; at the tuned 0.6 none positive: F1 = 0.
    assert value["Double-y1", "roc_auc"] == pytest.approx(0.5)
    assert value["Double-y1", "pr_auc"] == pytest.approx(0.5)
    assert value["Double-y1", "f1"] == pytest.approx(2 / 3)
    assert value["Double-y1", "f1_tuned"] == pytest.approx(0.0)
    # y2 predicted as 1 against [2, -1, 3, -2, 4, -3]: errors 1, 2, 2, 3, 3, 4.
    # MAE = 15/6; RMSE = sqrt(43/6); MAPE = 100 * mean(1/2, 2, 2/3, 3/2, 3/4, 4/3) = 112.5.
    for task in ("Single-y2", "Double-y2"):
        assert value[task, "mae"] == pytest.approx(2.5)
        assert value[task, "rmse"] == pytest.approx(math.sqrt(43 / 6))
        assert value[task, "mape"] == pytest.approx(112.5)
    thr = table.set_index(["task", "metric"])["threshold"]
    assert thr["Double-y1", "f1_tuned"] == 0.6
    assert thr.drop(index="f1_tuned", level="metric").isna().all()


def test_evaluate_options():
    seen: list[np.ndarray] = []
    table = evaluate(relation_predictor(seen), make_data(), modes=("double",), metrics={1: ["mae"]})
    assert len(seen) == 1
    assert list(zip(table.task, table.metric, strict=True)) == [
        ("Double-y1", "f1"),
        ("Double-y1", "roc_auc"),
        ("Double-y1", "pr_auc"),
        ("Double-y2", "mae"),
    ]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"modes": ("double", "triple")}, "triple"),
        ({"thresholds": [None, 0.5]}, "regression label 'sol'"),
        ({"thresholds": [0.5]}, "one per label"),
        ({"metrics": {0: ["mae"]}}, "'mae' does not apply to binary"),
        ({"metrics": {2: ["mae"]}}, "label indices"),
        ({"thresholds": {"Single-y2": 0.5}}, "regression label 'sol'"),
        ({"thresholds": {"Single-y3": 0.5}}, "unknown task 'Single-y3'"),
    ],
)
def test_evaluate_rejects_bad_options_before_predicting(kwargs, match):
    seen: list[np.ndarray] = []
    with pytest.raises(ValueError, match=match):
        evaluate(relation_predictor(seen), make_data(), **kwargs)
    assert seen == []


def test_evaluate_rejects_wrong_number_of_predictions():
    with pytest.raises(ValueError, match="one per label"):
        evaluate(lambda data: [np.zeros(len(data))], make_data())


def test_evaluate_takes_a_threshold_per_task():
    """Single and Double tasks of one label predict from different inputs, so each may have
    its own validation-tuned threshold; a task without one gets no ``f1_tuned`` row."""
    table = evaluate(
        relation_predictor([]), make_data(), thresholds={"Single-y1": 0.6, "Double-y1": 0.4}
    )
    tuned = table[table.metric == "f1_tuned"].set_index("task")
    assert tuned["threshold"].to_dict() == {"Single-y1": 0.6, "Double-y1": 0.4}
    assert tuned.loc["Single-y1", "value"] == pytest.approx(1.0)
    # Double-y1 predicts a constant 0.5: at 0.4 every sample is positive, F1 = 2/3
    assert tuned.loc["Double-y1", "value"] == pytest.approx(2 / 3)
    only_double = evaluate(relation_predictor([]), make_data(), thresholds={"Double-y1": 0.4})
    assert set(only_double[only_double.metric == "f1_tuned"].task) == {"Double-y1"}
