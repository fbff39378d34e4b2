"""Conversion to and from DeepChem datasets: NaN ↔ (y = 0, w = 0)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from molddl.data.deepchem import from_deepchem, to_deepchem
from molddl.data.featurizers import PyGGraphFeaturizer, featurize_dataset
from molddl.data.loaders import load_higgs, load_tox21
from molddl.data.masking import mask_labels

dc = pytest.importorskip("deepchem")


@pytest.fixture(scope="module")
def tox21(data_dir: Path):
    return load_tox21(data_dir=data_dir).subset(np.arange(500))


def test_to_deepchem_zero_label_zero_weight_exactly_where_missing(tox21):
    missing = np.isnan(tox21.y)
    assert missing.any() and (~missing).any()
    ds = to_deepchem(tox21)
    assert isinstance(ds, dc.data.NumpyDataset)
    assert ds.y.shape == (500, 2) and ds.w.shape == (500, 2)
    assert not np.isnan(ds.y).any()
    np.testing.assert_array_equal(ds.w == 0, missing)
    np.testing.assert_array_equal(ds.w[~missing], 1.0)
    np.testing.assert_array_equal(ds.y[missing], 0.0)
    np.testing.assert_array_equal(ds.y[~missing], tox21.y[~missing])
    np.testing.assert_array_equal(ds.ids, tox21.ids)
    # without features, X holds the SMILES
    assert list(ds.X) == list(tox21.smiles)


def test_from_deepchem_restores_nan(tox21):
    back = from_deepchem(to_deepchem(tox21), labels=tox21.label_names, smiles=tox21.smiles)
    np.testing.assert_array_equal(np.isnan(back.y), np.isnan(tox21.y))
    np.testing.assert_array_equal(back.y[~np.isnan(back.y)], tox21.y[~np.isnan(tox21.y)])
    assert back.label_names == tox21.label_names
    assert [s.kind for s in back.labels] == ["binary", "binary"]
    assert back.partition_counts() == tox21.partition_counts()
    np.testing.assert_array_equal(back.smiles, tox21.smiles)


def test_label_specs_are_kept_when_given(tox21):
    back = from_deepchem(to_deepchem(tox21), labels=list(tox21.labels), smiles=tox21.smiles)
    assert back.labels == tox21.labels


def test_tabular_round_trip(data_dir):
    higgs = load_higgs(data_dir=data_dir).subset(np.arange(300))
    masked = higgs.with_labels(mask_labels(higgs.y, 0.4, seed=0))
    ds = to_deepchem(masked)
    np.testing.assert_array_equal(ds.X, masked.X)
    back = from_deepchem(ds, labels=masked.label_names)
    np.testing.assert_array_equal(back.X, masked.X)
    assert back.X.dtype == np.float32
    assert back.X.shape == (300, 21)
    assert back.smiles is None
    np.testing.assert_array_equal(np.isnan(back.y), np.isnan(masked.y))
    np.testing.assert_array_equal(back.y[~np.isnan(back.y)], masked.y[~np.isnan(masked.y)])
    assert [s.kind for s in back.labels] == ["regression", "regression"]
    np.testing.assert_array_equal(back.ids, masked.ids)


def test_ids_are_smiles(tox21):
    ds = dc.data.NumpyDataset(
        X=np.zeros((len(tox21), 1)),
        y=np.where(np.isnan(tox21.y), 0.0, tox21.y),
        w=(~np.isnan(tox21.y)).astype(float),
        ids=tox21.smiles,
    )
    back = from_deepchem(ds, labels=["a", "b"], ids_are_smiles=True)
    assert back.is_molecular and back.X is None
    np.testing.assert_array_equal(back.smiles, tox21.smiles)
    np.testing.assert_array_equal(np.isnan(back.y), np.isnan(tox21.y))
    assert back.label_names == ["a", "b"]


def test_smiles_in_X_round_trip_without_arguments(tox21):
    """to_deepchem keeps the SMILES in X (ids are molddl's): from_deepchem finds them."""
    back = from_deepchem(to_deepchem(tox21), labels=tox21.label_names)
    assert list(back.smiles) == list(tox21.smiles) and list(back.ids) == list(tox21.ids)
    np.testing.assert_array_equal(np.isnan(back.y), np.isnan(tox21.y))


def test_object_X_without_smiles_is_an_error(tox21):
    import deepchem as dc

    ds = dc.data.NumpyDataset(
        X=np.array(["not a molecule"] * len(tox21), dtype=object), y=np.nan_to_num(tox21.y),
        w=(~np.isnan(tox21.y)).astype(float), ids=tox21.ids,
    )  # fmt: skip
    with pytest.raises(ValueError, match="ids_are_smiles"):
        from_deepchem(ds, labels=tox21.label_names)


def test_wrong_number_of_label_names(tox21):
    with pytest.raises(ValueError, match="label names"):
        from_deepchem(to_deepchem(tox21), labels=["only-one"], smiles=tox21.smiles)


def test_graphs_convert_to_deepchem_graph_data(tox21, tmp_path):
    kept, _ = featurize_dataset(
        tox21.subset(np.arange(10)), PyGGraphFeaturizer(), cache_dir=tmp_path
    )
    ds = to_deepchem(kept)
    from deepchem.feat.graph_data import GraphData

    assert all(isinstance(g, GraphData) for g in ds.X)
    for i in range(len(kept)):
        np.testing.assert_array_equal(ds.X[i].node_features, kept.graphs[i].x.numpy())
        np.testing.assert_array_equal(ds.X[i].edge_index, kept.graphs[i].edge_index.numpy())
