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
    """Every benchmark method but DLL is a baseline class, MT included (one implementation,
    the one the benchmarks run); the registry of methods lists them in the paper's order."""
    from molddl.methods import METHODS

    assert set(BASELINES) == {"ID", "COL", "SSL", "LS", "DSML", "MT"}
    assert [m for m in METHODS if METHODS[m].estimator is not BASELINES.get(m)] == ["DLL"]


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


@pytest.mark.parametrize("name", ["ID", "COL", "SSL"])
def test_label_blind_baselines_ignore_revealed_labels(fitted, parts, name):
    test = parts[2]
    np.testing.assert_array_equal(
        _y2_given_y1(fitted[name], test, 0.0), _y2_given_y1(fitted[name], test, 1.0)
    )


def test_col_trains_on_doubly_labelled_samples_only(parts):
    """Changing labels of D1 / D2 samples leaves COL unchanged, but not ID (every sample
    with the label)."""
    train, val, test = parts
    y = train.y.copy()
    single = np.isnan(y).sum(axis=1) == 1
    y[single] = np.where(np.isnan(y[single]), np.nan, 1 - y[single])
    changed = train.with_labels(y)
    blank = test.with_labels(np.full_like(test.y, np.nan))
    col_a = BASELINES["COL"](CONFIG).fit(train, val).predict_arrays(blank)
    col_b = BASELINES["COL"](CONFIG).fit(changed, val).predict_arrays(blank)
    np.testing.assert_array_equal(col_a[0], col_b[0])
    id_a = BASELINES["ID"](CONFIG).fit(train, val).predict_arrays(blank)
    id_b = BASELINES["ID"](CONFIG).fit(changed, val).predict_arrays(blank)
    assert not np.allclose(id_a[0], id_b[0])


def test_ssl_retrains_beyond_col(fitted, parts):
    blank = parts[2].with_labels(np.full_like(parts[2].y, np.nan))
    assert not np.allclose(
        fitted["SSL"].predict_arrays(blank)[0], fitted["COL"].predict_arrays(blank)[0]
    )


def test_baselines_score_through_the_shared_evaluator(fitted, parts):
    table = fitted["DSML"].evaluate(parts[2])
    assert set(table["task"]) == {"Single-y1", "Single-y2", "Double-y1", "Double-y2"}
    assert set(table["metric"]) >= {"f1", "roc_auc", "pr_auc"}


def _recording(cls):
    """``cls`` that keeps the training and validation inputs each stage was trained on."""

    class Recording(cls):
        def _train(self, tr, va, inputs, outputs, stage):
            self.seen_ = {**getattr(self, "seen_", {}), stage: (tr, va)}
            return super()._train(tr, va, inputs, outputs, stage)

    return Recording


def test_dsml_stages_train_on_true_labels_where_known(parts):
    """Each label-taking stage is fed what it is fed at prediction: the true label where it
    is known, the previous stage's prediction elsewhere (SPEC §5, as LS)."""
    train, val, _ = parts
    model = _recording(BASELINES["DSML"])(CONFIG).fit(train, val)
    for part in (0, 1):  # training and validation inputs
        for stage, k, before in ((1, 0, model.first_), (2, 1, model.second_)):
            prep = model.seen_[stage][part]
            y, fed = prep.y[:, k].numpy(), prep.cond[:, k].numpy()
            known = ~np.isnan(y)
            assert 0 < known.sum() < len(y)
            np.testing.assert_array_equal(fed[known], y[known])
            # elsewhere the prediction of the stage before, given its own inputs
            guess = model._predict(before, model.seen_[stage - 1][part])[k][:, 0].numpy()
            np.testing.assert_allclose(fed[~known], guess[~known], rtol=1e-6)


def test_ssl_early_stops_on_true_validation_labels_only(parts):
    """SSL's retrained model is selected on the real validation labels; pseudo labels are
    for training only."""
    train, val, _ = parts
    model = _recording(BASELINES["SSL"])(CONFIG).fit(train, val)
    tr, va = model.seen_[1]
    true_va = model.preprocessor_.transform(val)
    np.testing.assert_array_equal(va.y.numpy(), true_va.y.numpy())  # NaN where missing
    assert np.isnan(va.y.numpy()).any()
    assert not np.isnan(tr.y.numpy()).any()  # training: missing labels pseudo-labelled


@pytest.mark.parametrize(
    ("name", "budget", "per_stage"),
    [("DSML", 7, [2, 2, 3]), ("ID", 6, [3, 3]), ("COL", 6, [6]), ("LS", 2, [1, 1])],
)
def test_a_total_epoch_budget_is_split_over_the_stages(parts, name, budget, per_stage):
    """``budget`` caps the epochs summed over every network a baseline trains; each network
    gets an even share (early stopping may end it sooner) and the epochs run are recorded."""
    train, val, _ = parts
    patient = {**CONFIG, "train": {**CONFIG["train"], "max_epochs": 1, "patience": 50}}
    model = BASELINES[name](patient, budget=budget)
    assert model.stage_budgets() == per_stage
    model.fit(train, val)
    assert model.epochs_ == per_stage  # nothing stopped early: every share used
    assert model.epochs_trained_ == budget
    # without a budget each stage gets train.max_epochs
    assert BASELINES[name](patient).stage_budgets() == [1] * len(per_stage)
