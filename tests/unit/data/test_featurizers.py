"""Featurizers, dataset featurization (invalid SMILES, on-disk cache) and the GraphStore."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from molddl.data.featurizers import (
    DeepChemGraphFeaturizer,
    GraphStore,
    InvalidSmilesError,
    MACCSKeys,
    MorganFingerprint,
    PyGGraphFeaturizer,
    featurize_dataset,
    featurizer_from_dict,
)
from molddl.data.loaders import load_tox21

TOX21_INVALID_ROWS = [1323, 2291, 2298, 3559, 4566, 4650, 5539, 6724]


@pytest.fixture(scope="module")
def tox21(data_dir: Path):
    return load_tox21(data_dir=data_dir)


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("features")


@pytest.fixture(scope="module")
def tox21_featurized(tox21, feature_cache):
    return featurize_dataset(tox21, PyGGraphFeaturizer(), cache_dir=feature_cache)


class CountingPyG(PyGGraphFeaturizer):
    """The PyG featurizer, counting how many molecules it featurizes (a test double)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def _graph_arrays(self, mol, stereo=True):
        self.calls += 1
        return super()._graph_arrays(mol, stereo)


def _assert_same_graph(a, b) -> None:
    assert torch.equal(a.x, b.x)
    assert torch.equal(a.edge_index, b.edge_index)
    assert torch.equal(a.edge_attr, b.edge_attr)


# --------------------------------------------------------------------------- featurizers


@pytest.mark.parametrize(
    ("smiles", "n_atoms", "n_edges"),
    [("CCO", 3, 4), ("c1ccccc1", 6, 12), ("CC(=O)O", 4, 6), ("C", 1, 0), ("[Na+].[Cl-]", 2, 0)],
)
def test_pyg_graph_shapes(smiles, n_atoms, n_edges):
    f = PyGGraphFeaturizer()
    (g,) = f.featurize([smiles])
    assert g.x.shape == (n_atoms, 9)
    assert g.x.dtype == torch.long
    assert g.edge_index.shape == (2, n_edges)
    assert g.edge_attr.shape == (n_edges, 3)
    assert f.node_dim == 9 and f.edge_dim == 3
    # category indices fit the embedding tables the encoder builds from the cardinalities
    assert (g.x >= 0).all()
    assert (g.x < torch.tensor(f.node_cardinalities)).all()
    if n_edges:
        assert (g.edge_attr < torch.tensor(f.edge_cardinalities)).all()
        assert int(g.edge_index.max()) < n_atoms


def test_pyg_ethanol_edges_are_both_directions():
    (g,) = PyGGraphFeaturizer().featurize(["CCO"])
    pairs = {tuple(p) for p in g.edge_index.t().tolist()}
    assert pairs == {(0, 1), (1, 0), (1, 2), (2, 1)}


@pytest.mark.parametrize(
    "featurizer", [PyGGraphFeaturizer(), MorganFingerprint(), MACCSKeys()], ids=str
)
def test_invalid_smiles_give_none_in_place(featurizer):
    out = featurizer.featurize(["CCO", "not a smiles", "", "C1CC", "CC"])
    assert [o is None for o in out] == [False, True, True, True, False]


@pytest.mark.parametrize("n_bits", [1024, 2048])
def test_morgan_length(n_bits):
    f = MorganFingerprint(n_bits=n_bits)
    a, b = f.featurize(["c1ccccc1O", "CCN"])
    assert a.shape == (n_bits,) and f.dim == n_bits
    assert a.dtype == np.float32
    assert set(np.unique(a)) <= {0.0, 1.0} and a.sum() > 0
    assert not np.array_equal(a, b)


def test_maccs_has_166_keys():
    (v,) = MACCSKeys().featurize(["c1ccccc1C(=O)O"])
    assert v.shape == (166,) and MACCSKeys.dim == 166
    assert set(np.unique(v)) <= {0.0, 1.0} and v.sum() > 0


def test_featurizer_settings_round_trip():
    f = featurizer_from_dict(MorganFingerprint(radius=3, n_bits=512).to_dict())
    assert isinstance(f, MorganFingerprint) and (f.radius, f.n_bits) == (3, 512)
    assert isinstance(featurizer_from_dict({"name": "pyg"}), PyGGraphFeaturizer)
    with pytest.raises(ValueError, match="pyg"):
        featurizer_from_dict({"name": "nope"})


def test_deepchem_featurizer_gives_float_30_11_features():
    f = DeepChemGraphFeaturizer()
    g, h, bad = f.featurize(["CCO", "c1ccccc1", "not a smiles"])
    assert g.x.shape == (3, 30) and g.x.dtype == torch.float32
    assert g.edge_index.shape == (2, 4) and g.edge_index.dtype == torch.long
    assert g.edge_attr.shape == (4, 11) and g.edge_attr.dtype == torch.float32
    assert h.x.shape == (6, 30) and h.edge_attr.shape == (12, 11)
    assert bad is None
    assert (f.node_dim, f.edge_dim) == (30, 11)


# --------------------------------------------------------------------------- featurize_dataset


def test_tox21_full_featurization_reports_the_8_invalid(tox21, tox21_featurized, data_dir):
    kept, invalid = tox21_featurized
    assert len(kept) == 7823
    assert len(kept.graphs) == 7823
    assert [i.row for i in invalid] == TOX21_INVALID_ROWS
    raw = tox21.smiles  # rows counted from 1 → position row - 1 of the file
    for inv in invalid:
        assert inv.smiles == raw[inv.row - 1]
        assert "[AlH3]" in inv.smiles
        assert str(inv.row) in str(inv)
    # the skipped samples are exactly the invalid ones and labels stay aligned with graphs
    assert set(kept.row + 1) == set(range(1, 7832)) - set(TOX21_INVALID_ROWS)
    np.testing.assert_array_equal(kept.y, tox21.y[kept.row], strict=True)
    assert sum(kept.partition_counts().values()) == 7823
    f = PyGGraphFeaturizer()
    for j in (0, 1322, 5000, 7822):
        (expected,) = f.featurize([kept.smiles[j]])
        _assert_same_graph(kept.graphs[j], expected)


def test_strict_featurization_raises_listing_every_invalid(tox21, feature_cache):
    with pytest.raises(InvalidSmilesError) as err:
        featurize_dataset(tox21, PyGGraphFeaturizer(), strict=True, cache_dir=feature_cache)
    assert [i.row for i in err.value.invalid] == TOX21_INVALID_ROWS
    msg = str(err.value)
    assert msg.startswith("8 invalid SMILES")
    for row in TOX21_INVALID_ROWS:
        assert f"row {row} " in msg
    assert isinstance(err.value, ValueError)


def test_all_invalid_is_an_error(tox21, tmp_path):
    bad = tox21.subset(np.array(TOX21_INVALID_ROWS[:2]) - 1)
    with pytest.raises(InvalidSmilesError):
        featurize_dataset(bad, PyGGraphFeaturizer(), cache_dir=tmp_path)


def test_fingerprint_featurization_sets_X(tox21, tmp_path):
    small = tox21.subset(np.arange(1315, 1330))  # holds the invalid row 1323
    kept, invalid = featurize_dataset(small, MorganFingerprint(n_bits=256), cache_dir=tmp_path)
    assert [i.row for i in invalid] == [1323]
    assert kept.X.shape == (14, 256) and kept.X.dtype == np.float32
    assert len(kept.feature_names) == 256
    assert kept.graphs is None
    (expected,) = MorganFingerprint(n_bits=256).featurize([kept.smiles[0]])
    np.testing.assert_array_equal(kept.X[0], expected)


def test_deepchem_featurization_of_a_subset(tox21, tmp_path):
    small = tox21.subset(np.arange(20))
    kept, _ = featurize_dataset(small, DeepChemGraphFeaturizer(), cache_dir=tmp_path)
    assert kept.graphs.x.shape[1] == 30 and kept.graphs.x.dtype == torch.float32
    assert kept.graphs.edge_attr.shape[1] == 11
    assert len(kept.graphs) == len(kept)


def test_cache_is_read_back_without_featurizing_again(tox21, tmp_path):
    small = tox21.subset(np.arange(40))
    f1 = CountingPyG()
    first, _ = featurize_dataset(small, f1, cache_dir=tmp_path)
    assert f1.calls == 40
    assert len(list(tmp_path.glob("*.pt"))) == 1
    f2 = CountingPyG()
    second, _ = featurize_dataset(small, f2, cache_dir=tmp_path)
    assert f2.calls == 0
    for key, value in first.graphs.to_dict().items():
        assert torch.equal(value, second.graphs.to_dict()[key]), key
    np.testing.assert_array_equal(first.y, second.y)
    # other SMILES are a different cache entry
    f3 = CountingPyG()
    featurize_dataset(tox21.subset(np.arange(40, 50)), f3, cache_dir=tmp_path)
    assert f3.calls == 10
    # use_cache=False never reads the cache
    f4 = CountingPyG()
    featurize_dataset(small, f4, cache_dir=tmp_path, use_cache=False)
    assert f4.calls == 40


def test_default_cache_dir_follows_env(tox21, tmp_path, monkeypatch):
    monkeypatch.setenv("MOLDDL_CACHE_DIR", str(tmp_path / "c"))
    featurize_dataset(tox21.subset(np.arange(5)), PyGGraphFeaturizer())
    assert len(list((tmp_path / "c" / "features").glob("*.pt"))) == 1


def test_corrupted_cache_file_is_recomputed(tox21, tmp_path):
    small = tox21.subset(np.arange(30))
    first, _ = featurize_dataset(small, PyGGraphFeaturizer(), cache_dir=tmp_path)
    (entry,) = tmp_path.glob("*.pt")
    entry.write_bytes(b"this is not a torch file")
    f = CountingPyG()
    again, _ = featurize_dataset(small, f, cache_dir=tmp_path)
    assert f.calls == 30
    for key, value in first.graphs.to_dict().items():
        assert torch.equal(value, again.graphs.to_dict()[key]), key
    # the damaged entry was replaced by a good one
    f_next = CountingPyG()
    featurize_dataset(small, f_next, cache_dir=tmp_path)
    assert f_next.calls == 0


def test_featurizing_tabular_data_is_an_error(data_dir):
    from molddl.data.loaders import load_mof

    with pytest.raises(ValueError, match="no SMILES"):
        featurize_dataset(load_mof(data_dir=data_dir), PyGGraphFeaturizer())


def test_parallel_featurization_equals_serial(tox21):
    smiles = list(tox21.smiles[300:1400])  # 1,100 SMILES including the invalid row 1323
    f = PyGGraphFeaturizer()
    serial = f.featurize(smiles, n_jobs=1)
    parallel = f.featurize(smiles, n_jobs=2)
    assert len(parallel) == len(serial) == 1100
    assert [g is None for g in parallel] == [g is None for g in serial]
    assert sum(g is None for g in serial) == 1
    for a, b in zip(serial, parallel, strict=True):
        if a is not None:
            _assert_same_graph(a, b)


@pytest.mark.parametrize("featurizer", [PyGGraphFeaturizer, DeepChemGraphFeaturizer])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_featurize_graphs_equals_the_store_of_featurize(tox21, featurizer, n_jobs):
    # 1,100 SMILES with the invalid row 1323, a chunk of invalid ones and an atomless one
    smiles = [*tox21.smiles[300:1400], *["not a smiles"] * 300, ""]
    f = featurizer()
    graphs = f.featurize(smiles)
    valid, store = f.featurize_graphs(smiles, n_jobs=n_jobs)
    assert valid.tolist() == [g is not None for g in graphs]
    assert not valid[1100:].any() and valid[:1100].sum() >= 1090
    expected = GraphStore.from_data_list([g for g in graphs if g is not None])
    for key, value in expected.to_dict().items():
        assert store.to_dict()[key].dtype == value.dtype, key
        assert torch.equal(store.to_dict()[key], value), key


def test_featurize_graphs_with_no_valid_smiles_gives_no_store():
    valid, store = PyGGraphFeaturizer().featurize_graphs(["xyz", "C1CC"])
    assert valid.tolist() == [False, False] and store is None
    with pytest.raises(TypeError, match="vectors"):
        MorganFingerprint().featurize_graphs(["C"])


# --------------------------------------------------------------------------- GraphStore


@pytest.fixture(scope="module")
def small_store(tox21):
    smiles = ["C", "[Na+].[Cl-]", *tox21.smiles[:60]]
    graphs = [g for g in PyGGraphFeaturizer().featurize(smiles) if g is not None]
    return graphs, GraphStore.from_data_list(graphs)


def test_graph_store_getitem_returns_each_graph(small_store):
    graphs, store = small_store
    assert len(store) == len(graphs)
    for i, g in enumerate(graphs):
        _assert_same_graph(store[i], g)


@pytest.mark.parametrize(
    "index", [[0, 1, 2], [5, 0, 1, 40], list(range(62)), [61], [3, 3, 7]], ids=str
)
def test_graph_store_batch_equals_pyg_batch(small_store, index):
    graphs, store = small_store
    ours = store.batch(np.array(index))
    ref = Batch.from_data_list([graphs[i] for i in index])
    assert torch.equal(ours.x, ref.x)
    assert torch.equal(ours.edge_index, ref.edge_index)
    assert torch.equal(ours.edge_attr, ref.edge_attr)
    assert torch.equal(ours.batch, ref.batch)
    assert torch.equal(ours.ptr, ref.ptr)
    assert ours.num_graphs == len(index)


def test_graph_store_subset_keeps_the_chosen_graphs(small_store):
    graphs, store = small_store
    index = np.array([10, 0, 1, 33, 2])
    sub = store.subset(index)
    assert len(sub) == len(index)
    for j, i in enumerate(index):
        _assert_same_graph(sub[j], graphs[i])
    # batching a subset is batching the same graphs from the full store
    b1, b2 = sub.batch(np.arange(len(index))), store.batch(index)
    assert torch.equal(b1.x, b2.x) and torch.equal(b1.edge_index, b2.edge_index)


def test_graph_store_dict_round_trip(small_store):
    _, store = small_store
    back = GraphStore.from_dict(store.to_dict())
    for key, value in store.to_dict().items():
        assert torch.equal(value, back.to_dict()[key])


def test_dataset_subset_keeps_graphs_aligned(tox21_featurized):
    kept, _ = tox21_featurized
    index = np.array([7000, 3, 1500])
    sub = kept.subset(index)
    for j, i in enumerate(index):
        _assert_same_graph(sub.graphs[j], kept.graphs[i])
        assert sub.smiles[j] == kept.smiles[i]
    np.testing.assert_array_equal(sub.y, kept.y[index])


def test_pyg_featurizer_equals_pygs_from_rdmol(data_dir):
    """molddl's faster lookups give PyG's own features, tensor for tensor."""
    from torch_geometric.utils.smiles import from_rdmol

    from molddl.data.featurizers import parse_smiles

    smiles = load_tox21(data_dir=data_dir).smiles[:2000]
    featurizer = PyGGraphFeaturizer()
    for s in smiles:
        mol = parse_smiles(s)
        if mol is None:
            continue
        ours, ref = featurizer._featurize_one(mol), from_rdmol(mol)
        assert torch.equal(ours.x, ref.x), s
        assert torch.equal(ours.edge_index, ref.edge_index), s
        assert torch.equal(ours.edge_attr, ref.edge_attr), s


STEREO = [
    "C[C@H](N)C(=O)O", "C[C@@H]1CCCO1", "F/C=C/F", "F/C=C\\F", "C/C=C/C=C\\C",
    "N[C@@H](Cc1ccccc1)C(=O)O", r"O=C(O)/C=C\C(=O)O", "C[C@@]12CC[C@H]3[C@@H](CCc4cc(O)ccc43)[C@@H]1CC[C@@H]2O",
    "C1CC/C=C/CC1", "CC=CC", "[2H]C([2H])([2H])O", "[Na+].[Cl-]", "C[N+](C)(C)C", "[CH2]C",
    # CXSMILES: double-bond stereo set by the extension, no '/' in the SMILES
    "C1CCCC=CCCC1 |t:4|", "C1CCCC=CCCC1 |c:4|", "CC=CC |w:1.0|", "C[C@H](F)Cl |o1:1|",
]  # fmt: skip


def test_pyg_featurizer_equals_from_rdmol_with_and_without_stereo(data_dir):
    """The SMILES path skips reading chirality and bond stereo when the SMILES has no stereo
    marks: over all of Tox21 and molecules with stereo centres, double-bond stereo,
    isotopes, charges and radicals, it still gives ``from_rdmol``'s features exactly."""
    from torch_geometric.utils.smiles import from_rdmol

    from molddl.data.featurizers import parse_smiles

    smiles = [*load_tox21(data_dir=data_dir).smiles, *STEREO]
    valid, store = PyGGraphFeaturizer().featurize_graphs(smiles)
    refs = [from_rdmol(parse_smiles(s)) for s, ok in zip(smiles, valid, strict=True) if ok]
    assert len(refs) == len(store) == len(smiles) - 8
    assert sum(bool((r.x[:, 1] > 0).any()) for r in refs) > 100  # chirality is exercised
    assert sum(bool((r.edge_attr[:, 1] > 0).any()) for r in refs) > 50  # and bond stereo
    for i, ref in enumerate(refs):
        _assert_same_graph(store[i], ref)


@pytest.mark.parametrize("smiles", ["[Fe-6]", "[U+7]", "[N+8]"])
def test_pyg_featurizer_refuses_what_from_rdmol_cannot_encode(smiles):
    """A formal charge outside PyG's table: ``from_rdmol`` raises, molddl gives ``None``."""
    from torch_geometric.utils.smiles import from_rdmol

    from molddl.data.featurizers import parse_smiles

    mol = parse_smiles(smiles)
    with pytest.raises(ValueError):
        from_rdmol(mol)
    assert PyGGraphFeaturizer().featurize([smiles]) == [None]
    assert not PyGGraphFeaturizer().featurize_graphs([smiles])[0].any()


def test_a_parsed_molecule_a_featurizer_refuses_says_why(tmp_path):
    """DeepChem's graph featurizer refuses bond-less molecules; the report tells it apart
    from a SMILES RDKit rejects."""
    from molddl.data.dataset import DualLabelDataset
    from molddl.data.labels import LabelSpec

    data = DualLabelDataset(
        y=np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
        labels=(LabelSpec("a", "binary"), LabelSpec("b", "binary")),
        ids=np.array(["x", "y", "z"]),
        row=np.arange(3),
        smiles=np.array(["CCO", "C", "C1CC(N"]),
    )
    _, invalid = featurize_dataset(data, DeepChemGraphFeaturizer(), cache_dir=tmp_path)
    reasons = {i.smiles: i.reason for i in invalid}
    assert reasons["C1CC(N"] == "RDKit rejects it"
    assert "deepchem featurizer" in reasons["C"]


def test_features_computed_ahead_are_used_as_they_are(tox21, tmp_path):
    from molddl.data.featurizers import compute_features

    small = tox21.subset(np.arange(1320, 1330))  # holds the invalid row 1323
    ahead = compute_features(PyGGraphFeaturizer(), small.smiles)
    f = CountingPyG()
    kept, invalid = featurize_dataset(small, f, cache_dir=tmp_path, features=ahead)
    assert f.calls == 0 and not list(tmp_path.glob("*.pt"))  # no work, no cache entry
    assert len(kept) == 9 and [i.row for i in invalid] == [1323]
    direct, _ = featurize_dataset(small, PyGGraphFeaturizer(), use_cache=False)
    for key, value in direct.graphs.to_dict().items():
        assert torch.equal(kept.graphs.to_dict()[key], value), key
    with pytest.raises(ValueError, match="features for 9 SMILES given for 10 samples"):
        featurize_dataset(small, f, features=compute_features(f, small.smiles[:9]))
