"""The paper's baselines: each trains on what SPEC §5 says and uses revealed labels only
where it can take them as input."""

from __future__ import annotations

import numpy as np
import pytest

from molddl.data.synthetic import make_dual_label
from molddl.models.baselines import BASELINES

CONFIG = {
    "model": {"encoder": "mlp", "hidden": 16, "layers": 1, "tower_hidden": 16, "label_dim": 4},
    "train": {"max_epochs": 3, "patience": 2, "batch_size": 64},
}


@pytest.fixture(scope="module")
def parts():
    data = make_dual_label(n=900, kind="binary", missing_rate=0.4, seed=3)
    full = make_dual_label(n=900, kind="binary", seed=3)
    return (
        data.subset(np.arange(600)),
        data.subset(np.arange(600, 750)),
        full.subset(np.arange(750, 900)),
    )


@pytest.fixture(scope="module")
def fitted(parts):
    train, val, _ = parts
    return {name: cls(CONFIG).fit(train, val) for name, cls in BASELINES.items()}


def test_every_baseline_is_registered():
    assert set(BASELINES) == {"ID", "COL", "SSL", "LS", "DSML", "MT"}


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_predicts_every_label_as_probabilities(fitted, parts, name):
    test = parts[2]
    out = fitted[name].predict_arrays(test.with_labels(np.full_like(test.y, np.nan)))
    assert len(out) == 2
    for arr in out:
        assert arr.shape == (len(test),)
        assert np.all((arr >= 0) & (arr <= 1))


def _y2_given_y1(model, test, value: float) -> np.ndarray:
    y = np.full_like(test.y, np.nan)
    y[:, 0] = value
    return model.predict_arrays(test.with_labels(y))[1]


@pytest.mark.parametrize("name", ["LS", "DSML"])
def test_label_taking_baselines_use_a_revealed_label(fitted, parts, name):
    test = parts[2]
    assert not np.allclose(
        _y2_given_y1(fitted[name], test, 0.0), _y2_given_y1(fitted[name], test, 1.0)
    )


@pytest.mark.parametrize("name", ["ID", "COL", "SSL", "MT"])
def test_label_blind_baselines_ignore_revealed_labels(fitted, parts, name):
    test = parts[2]
    np.testing.assert_array_equal(
        _y2_given_y1(fitted[name], test, 0.0), _y2_given_y1(fitted[name], test, 1.0)
    )


def test_col_trains_on_doubly_labelled_samples_only(parts):
    """Changing labels of D1 / D2 samples leaves COL unchanged, but not MT (masked loss)."""
    train, val, test = parts
    y = train.y.copy()
    single = np.isnan(y).sum(axis=1) == 1
    y[single] = np.where(np.isnan(y[single]), np.nan, 1 - y[single])
    changed = train.with_labels(y)
    blank = test.with_labels(np.full_like(test.y, np.nan))
    col_a = BASELINES["COL"](CONFIG).fit(train, val).predict_arrays(blank)
    col_b = BASELINES["COL"](CONFIG).fit(changed, val).predict_arrays(blank)
    np.testing.assert_array_equal(col_a[0], col_b[0])
    mt_a = BASELINES["MT"](CONFIG).fit(train, val).predict_arrays(blank)
    mt_b = BASELINES["MT"](CONFIG).fit(changed, val).predict_arrays(blank)
    assert not np.allclose(mt_a[0], mt_b[0])


def test_ssl_retrains_beyond_col(fitted, parts):
    blank = parts[2].with_labels(np.full_like(parts[2].y, np.nan))
    assert not np.allclose(
        fitted["SSL"].predict_arrays(blank)[0], fitted["COL"].predict_arrays(blank)[0]
    )


def test_baselines_score_through_the_shared_evaluator(fitted, parts):
    table = fitted["DSML"].evaluate(parts[2])
    assert set(table["task"]) == {"Single-y1", "Single-y2", "Double-y1", "Double-y2"}
    assert set(table["metric"]) >= {"f1", "roc_auc", "pr_auc"}
