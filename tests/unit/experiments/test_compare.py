"""The comparison experiment's fairness rules: thresholds tuned per task, equal budgets."""

from __future__ import annotations

import numpy as np
import pytest

from molddl.config import Config
from molddl.data.dataset import DualLabelDataset
from molddl.data.labels import LabelSpec
from molddl.evaluation.reveal import tuned_thresholds
from molddl.experiments.compare import (
    METHODS,
    method_budget,
    run_seed,
    score,
)


def _binary_pair(n: int = 40) -> DualLabelDataset:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(n, 2)).astype(float)
    y[:2] = [[0.0, 1.0], [1.0, 0.0]]  # both classes of each label
    return DualLabelDataset(
        y=y,
        labels=(LabelSpec("a", "binary"), LabelSpec("b", "binary")),
        ids=np.array([f"s{i}" for i in range(n)]),
        row=np.arange(n),
    )


def _mode_dependent(truth: DualLabelDataset):
    """Separates the classes perfectly, but on another scale with and without the partner
    label: P = 0.7 / 0.8 (negative / positive) when it is shown, 0.2 / 0.3 when hidden."""
    lookup = dict(zip(truth.ids, truth.y, strict=True))

    def predict(data: DualLabelDataset) -> list[np.ndarray]:
        y = np.stack([lookup[i] for i in data.ids])
        return [np.where(np.isnan(data.y[:, 1 - k]), 0.2, 0.7) + 0.1 * y[:, k] for k in range(2)]

    return predict


def test_double_task_thresholds_are_tuned_on_double_mode_predictions():
    data = _binary_pair()
    predict = _mode_dependent(data)
    assert tuned_thresholds(predict, data) == pytest.approx(
        {"Single-y1": 0.8, "Single-y2": 0.8, "Double-y1": 0.3, "Double-y2": 0.3}
    )
    table = score({"m": predict}, data, data)
    tuned = table[table.metric == "f1_tuned"].set_index("task")
    assert tuned.loc["Double-y1", "threshold"] == pytest.approx(0.3)
    assert (tuned["value"] == 1.0).all()  # each task at its own scale's threshold


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> str:
    from molddl.data.synthetic import make_dual_label

    data = make_dual_label(n=300, kind="binary", seed=0)
    path = tmp_path_factory.mktemp("compare") / "synthetic.csv"
    data.to_frame().drop(columns=["id"]).to_csv(path, index=False)
    return str(path)


def test_every_method_trains_within_the_same_total_epoch_budget(table):
    """DLL trains the marginal model, then the dual model; every other method gets the same
    total (marginal_epochs + max_epochs), spread over the networks it trains, and the
    epochs each method ran are in the results."""
    cfg = Config.from_dict(
        {
            "data": {
                "dataset": table,
                "labels": ["y1", "y2"],
                "missing_rate": 0.4,
                "feature_columns": "all",
            },
            "model": {"encoder": "mlp", "hidden": 8, "layers": 1, "tower_hidden": 8},
            "train": {"max_epochs": 2, "marginal_epochs": 4, "patience": 50},
        }
    )
    assert method_budget(cfg) == 6
    tidy = run_seed(cfg, 0, METHODS)
    assert set(tidy["method"]) == set(METHODS)
    assert (tidy["budget"] == 6).all()
    # patience 50: no network stops early, so every method ran its whole budget
    assert (tidy["epochs"] == 6).all()
