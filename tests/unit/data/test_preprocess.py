"""The data stage (:mod:`molddl.data.preprocess`): statistics from the training part only,
persistence, row bookkeeping through ``transform``, and values back in the labels' units."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from molddl.data.dataset import DualLabelDataset
from molddl.data.featurizers import GraphStore, InvalidSmilesError
from molddl.data.labels import LabelSpec
from molddl.data.preprocess import InputInfo, Prepared, Preprocessor
from molddl.data.synthetic import make_dual_label

#: one label of every kind
LABELS = (
    LabelSpec("active", "binary"),
    LabelSpec("tox_class", "multiclass", 3),
    LabelSpec("logS", "regression"),
)
FEATURES = ("a", "b", "c", "d")


def _table(n: int = 40, seed: int = 0, shift: float = 0.0) -> DualLabelDataset:
    """A tabular dataset with a binary, a 3-class and a value label, 20 % of labels missing;
    ``shift`` moves features and values (another population than the training part)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)) * [1.0, 2.0, 0.5, 3.0] + [0.0, 10.0, -5.0, 1.0] + shift
    y = np.stack(
        [
            (rng.random(n) < 0.3).astype(float),
            rng.integers(0, 3, n).astype(float),
            rng.normal(-3.0, 2.0, n) + shift,
        ],
        axis=1,
    )
    y[rng.random((n, 3)) < 0.2] = np.nan
    return DualLabelDataset(
        y=y,
        labels=LABELS,
        ids=np.array([f"m{i}" for i in range(n)]),
        row=np.arange(n),
        X=X.astype(np.float32),
        feature_names=FEATURES,
    )


#: valid, invalid (unclosed ring), valid, invalid (no element), valid
SMILES = ["CCO", "C1CC(N", "c1ccccc1O", "xyz", "CC(=O)N"]
HEAVY_ATOMS = [3, 7, 4]  # of the valid ones: ethanol, phenol, acetamide


def _molecules() -> DualLabelDataset:
    y = np.array([[1, 0], [0, np.nan], [np.nan, 1], [1, 1], [0, 0]], dtype=float)
    return DualLabelDataset(
        y=y,
        labels=(LabelSpec("y1", "binary"), LabelSpec("y2", "binary")),
        ids=np.array([f"c{i}" for i in range(len(SMILES))]),
        row=np.arange(len(SMILES)),
        smiles=np.array(SMILES),
        name="five",
    )


# ---------------------------------------------------------------- fit: training part only
def test_value_label_scale_and_priors_come_from_present_training_values():
    data = make_dual_label(80, n_features=3, kind="mixed", missing_rate=0.3, seed=0)
    train = data.subset(np.arange(50))
    pre = Preprocessor.fit(train)

    y1, y2 = train.y[:, 0], train.y[:, 1]
    assert np.isnan(y2).any() and np.isnan(y1).any()  # NaN must not enter the statistics
    assert pre.y_mean == [0.0, pytest.approx(np.nanmean(y2), rel=1e-12)]
    assert pre.y_std == [1.0, pytest.approx(np.nanstd(y2), rel=1e-12)]
    assert pre.prior == [[pytest.approx(np.nanmean(y1), rel=1e-12)], [0.0]]
    # the whole dataset has other statistics: fit saw the training part only
    assert abs(np.nanmean(data.y[:, 1]) - pre.y_mean[1]) > 1e-6

    # rows outside the training part are scaled with the training statistics, NaN kept
    other = data.subset(np.arange(50, 80))
    shifted = other.with_labels(other.y + [0.0, 100.0])
    prep = Preprocessor.fit(train).transform(shifted)
    want = (shifted.y[:, 1] - np.nanmean(y2)) / np.nanstd(y2)
    np.testing.assert_allclose(prep.y[:, 1].numpy(), want, rtol=1e-5, equal_nan=True)
    np.testing.assert_array_equal(prep.y[:, 0].numpy(), other.y[:, 0])  # classes unscaled


def test_class_priors_and_feature_scaling_come_from_the_training_part():
    train, other = _table(60, seed=1), _table(30, seed=2, shift=7.0)
    pre = Preprocessor.fit(train)

    active, cls = train.y[:, 0], train.y[:, 1]
    assert pre.prior[0] == [pytest.approx(np.nanmean(active))]
    present = cls[~np.isnan(cls)]
    want = [np.mean(present == c) for c in range(3)]
    assert pre.prior[1] == pytest.approx(want) and sum(pre.prior[1]) == pytest.approx(1.0)
    assert pre.y_mean[:2] == [0.0, 0.0] and pre.y_std[:2] == [1.0, 1.0]

    np.testing.assert_allclose(pre.x_scaler.mean, train.X.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(pre.x_scaler.std, train.X.std(axis=0), rtol=1e-5)
    assert pre.input_info == InputInfo("vector", dim=4)
    assert pre.feature_names == FEATURES
    # the training part comes out standardised, another part with the training statistics
    z = pre.transform(train).inputs.numpy()
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1.0, rtol=1e-4)
    zo = pre.transform(other).inputs.numpy()
    np.testing.assert_allclose(zo, (other.X - train.X.mean(0)) / train.X.std(0), rtol=1e-4)
    assert zo.mean() > 1.0  # the shift stays visible: nothing was refitted on ``other``


def test_a_label_with_no_training_value_is_an_error_naming_it():
    train = _table(20)
    y = train.y.copy()
    y[:, 2] = np.nan
    with pytest.raises(ValueError, match="'logS'"):
        Preprocessor.fit(train.with_labels(y))


# ---------------------------------------------------------------- persistence
def test_to_dict_and_from_dict_keep_everything_through_json():
    train = _table(50)
    pre = Preprocessor.fit(train)
    d = pre.to_dict()
    back = Preprocessor.from_dict(json.loads(json.dumps(d)))  # as a model file holds it

    assert back.to_dict() == d
    assert back.labels == LABELS and back.input_info == pre.input_info
    assert back.y_mean == pre.y_mean and back.y_std == pre.y_std and back.prior == pre.prior
    assert back.feature_names == FEATURES and back.strict == pre.strict
    np.testing.assert_array_equal(back.x_scaler.mean, pre.x_scaler.mean)
    np.testing.assert_array_equal(back.x_scaler.std, pre.x_scaler.std)
    other = _table(10, seed=5, shift=1.0)
    a, b = pre.transform(other), back.transform(other)
    np.testing.assert_allclose(a.inputs.numpy(), b.inputs.numpy(), rtol=1e-6, atol=1e-6)
    assert torch.equal(torch.nan_to_num(a.y, nan=-9.0), torch.nan_to_num(b.y, nan=-9.0))


def test_a_reloaded_preprocessor_scales_features_bit_identically():
    pre = Preprocessor.fit(_table(50))
    back = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    other = _table(10, seed=5, shift=1.0)
    assert back.x_scaler.mean.dtype == pre.x_scaler.mean.dtype
    assert torch.equal(pre.transform(other).inputs, back.transform(other).inputs)


@pytest.mark.parametrize("featurizer", ["pyg", "morgan"])
def test_molecular_input_info_round_trips(featurizer):
    pre = Preprocessor.fit(_molecules(), featurizer, strict=True)
    back = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    assert back.input_info == pre.input_info
    assert back.featurizer == pre.featurizer and back.featurizer["name"] == featurizer
    assert back.x_scaler is None and back.strict is True
    info = back.input_info
    if featurizer == "pyg":
        assert info.is_graph and info.node_dim > 0 and info.edge_dim > 0
        assert len(info.node_cardinalities) == info.node_dim
        assert len(info.edge_cardinalities) == info.edge_dim
        assert isinstance(info.node_cardinalities, tuple)
    else:
        assert not info.is_graph and info.dim == 2048


def test_an_old_input_info_with_kind_instead_of_form_is_read():
    pre = Preprocessor.fit(_molecules(), "pyg")
    d = json.loads(json.dumps(pre.to_dict()))
    old = d["input_info"]
    old["kind"] = old.pop("form")
    back = Preprocessor.from_dict(d)
    assert back.input_info == pre.input_info and back.input_info.form == "graph"
    assert InputInfo.from_dict({"kind": "vector", "dim": 7}) == InputInfo("vector", dim=7)
    with pytest.raises(ValueError, match="'sequence'"):
        InputInfo.from_dict({"kind": "sequence"})


# ---------------------------------------------------------------- transform
def test_transform_drops_invalid_smiles_keeps_positions_and_reports_them():
    data = _molecules()
    pre = Preprocessor.fit(data, "pyg")
    prep = pre.transform(data, use_cache=False)

    np.testing.assert_array_equal(prep.positions, [0, 2, 4])
    assert [(i.row, i.id, i.smiles) for i in prep.invalid] == [
        (2, "c1", "C1CC(N"),
        (4, "c3", "xyz"),
    ]
    assert len(prep) == 3 and isinstance(prep.inputs, GraphStore)
    # each kept row has its own molecule and its own labels
    assert torch.diff(prep.inputs.node_ptr).tolist() == HEAVY_ATOMS
    want = pre.labels_to_model(data.y[[0, 2, 4]])
    assert torch.equal(torch.nan_to_num(prep.y, nan=-1.0), torch.nan_to_num(want, nan=-1.0))

    strict = Preprocessor.fit(data, "pyg", strict=True)
    with pytest.raises(InvalidSmilesError, match="xyz") as err:
        strict.transform(data, use_cache=False)
    assert [i.smiles for i in err.value.invalid] == ["C1CC(N", "xyz"]


def test_transform_keeps_every_row_of_a_feature_table_in_order():
    train = _table(30)
    pre = Preprocessor.fit(train)
    other = _table(12, seed=3)
    prep = pre.transform(other)
    np.testing.assert_array_equal(prep.positions, np.arange(12))
    assert prep.invalid == [] and prep.inputs.shape == (12, 4)
    # columns are matched by name, not position
    order = [2, 0, 3, 1]
    shuffled = replace(other, X=other.X[:, order], feature_names=tuple(FEATURES[j] for j in order))
    assert torch.equal(pre.transform(shuffled).inputs, prep.inputs)


def test_labels_other_than_the_models_are_an_error_naming_both():
    data = make_dual_label(30, n_features=3, kind="mixed", seed=0)
    pre = Preprocessor.fit(data)
    renamed = replace(data, labels=(LabelSpec("p", "binary"), LabelSpec("q", "regression")))
    with pytest.raises(ValueError, match=r"\['p', 'q'\].*\['y1', 'y2'\]"):
        pre.transform(renamed)
    swapped = replace(data, labels=data.labels[::-1], y=data.y[:, ::-1])
    with pytest.raises(ValueError, match=r"\['y2', 'y1'\]"):
        pre.transform(swapped)


def test_a_missing_feature_column_is_an_error_naming_it():
    data = make_dual_label(30, n_features=5, seed=0)
    pre = Preprocessor.fit(data)
    keep = [0, 1, 2, 4]
    lacking = replace(data, X=data.X[:, keep], feature_names=("x0", "x1", "x2", "x4"))
    with pytest.raises(ValueError, match="'x3'") as err:
        pre.transform(lacking)
    assert "x4" not in str(err.value)


# ---------------------------------------------------------------- back to the user's units
def test_to_user_gives_probabilities_and_values_in_the_labels_units():
    pre = Preprocessor.fit(_table(50))
    mean, std = pre.y_mean[2], pre.y_std[2]
    assert std != 1.0 and mean != 0.0

    binary = pre.to_user(0, np.array([[0.1], [0.9]], dtype=np.float32))
    np.testing.assert_allclose(binary, [0.1, 0.9], rtol=1e-6)
    assert binary.shape == (2,)
    probs = np.array([[0.2, 0.5, 0.3], [0.0, 0.0, 1.0]], dtype=np.float32)
    multi = pre.to_user(1, probs)
    assert multi.shape == (2, 3)
    np.testing.assert_allclose(multi, probs, rtol=1e-6)
    value = pre.to_user(2, np.array([[0.0], [1.5]], dtype=np.float32))
    np.testing.assert_allclose(value, [mean, mean + 1.5 * std], rtol=1e-6)


def test_truth_to_user_inverts_labels_to_model():
    table = _table(50)
    pre = Preprocessor.fit(table)
    z = pre.labels_to_model(table.y).numpy().astype(np.float64)
    for k in range(3):
        back = pre.truth_to_user(k, z[:, k])
        np.testing.assert_allclose(back, table.y[:, k], rtol=1e-5, equal_nan=True)
    assert set(np.unique(pre.truth_to_user(1, z[:, 1])[~np.isnan(z[:, 1])])) <= {0.0, 1.0, 2.0}


def test_arrays_from_states_put_predictions_at_their_positions_and_nan_elsewhere():
    pre = Preprocessor.fit(_table(50))
    mean, std = pre.y_mean[2], pre.y_std[2]
    states = [
        torch.tensor([[0.25], [0.75]]),
        torch.tensor([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]]),
        torch.tensor([[-1.0], [2.0]]),
    ]
    out = pre.arrays_from_states(states, np.array([3, 1]), 5)
    assert [a.shape for a in out] == [(5,), (5, 3), (5,)]
    for a in out:
        assert np.isnan(a[[0, 2, 4]]).all()
    np.testing.assert_allclose(out[0][[3, 1]], [0.25, 0.75])
    np.testing.assert_allclose(out[1][[3, 1]], states[1].numpy(), rtol=1e-6)
    np.testing.assert_allclose(out[2][[3, 1]], [mean - std, mean + 2 * std], rtol=1e-6)


# ---------------------------------------------------------------- Prepared
def test_prepared_subset_and_batch_index_the_same_samples():
    pre = Preprocessor.fit(_table(30))
    prep = pre.transform(_table(20, seed=4))
    prep.positions = prep.positions + 100  # positions in some larger table
    prep.cond = torch.arange(20 * 3, dtype=torch.float32).reshape(20, 3)

    index = np.array([7, 0, 12, 3])
    sub = prep.subset(index)
    np.testing.assert_array_equal(sub.positions, index + 100)
    x, y, c = sub.batch([0, 2])
    x_full, y_full, c_full = prep.batch([7, 12])
    assert torch.equal(x, x_full) and torch.equal(c, c_full)
    assert torch.equal(torch.nan_to_num(y, nan=-1.0), torch.nan_to_num(y_full, nan=-1.0))
    assert torch.equal(c[:, 0], torch.tensor([21.0, 36.0]))  # rows 7 and 12 of cond

    mask = np.zeros(20, dtype=bool)
    mask[[3, 7]] = True
    by_mask = prep.subset(mask)
    np.testing.assert_array_equal(by_mask.positions, [103, 107])
    assert torch.equal(by_mask.inputs, prep.inputs[[3, 7]])

    prep.cond = None
    assert len(prep.batch([1, 2])) == 2  # (inputs, y) without cond


def test_prepared_graph_subset_and_batch_keep_each_molecule_with_its_row():
    data = _molecules()
    prep = Preprocessor.fit(data, "pyg").transform(data, use_cache=False)
    sub = prep.subset(np.array([2, 0]))
    np.testing.assert_array_equal(sub.positions, [4, 0])
    assert torch.diff(sub.inputs.node_ptr).tolist() == [HEAVY_ATOMS[2], HEAVY_ATOMS[0]]
    assert [i.smiles for i in sub.invalid] == ["C1CC(N", "xyz"]

    g, y = sub.batch([0])
    g_full, y_full = prep.batch([2])
    assert torch.equal(g.x, g_full.x) and torch.equal(g.edge_index, g_full.edge_index)
    assert torch.equal(y, y_full)
    both, _ = prep.batch([2, 0])
    assert both.num_graphs == 2 and both.x.shape[0] == HEAVY_ATOMS[2] + HEAVY_ATOMS[0]
    assert isinstance(prep, Prepared)
