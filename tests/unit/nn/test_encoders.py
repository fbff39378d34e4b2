"""Encoders: every GNN layer type and pooling maps a batch of molecules to b x hidden."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from molddl.data.featurizers import GraphStore, PyGGraphFeaturizer
from molddl.nn.encoders import CONVS, POOLINGS, GNNEncoder, MLPEncoder

SMILES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1"]


@pytest.fixture(scope="module")
def store_and_feat():
    feat = PyGGraphFeaturizer()
    graphs = feat.featurize(SMILES)
    assert all(g is not None for g in graphs)
    return GraphStore.from_data_list(graphs), feat


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("conv", list(CONVS))
def test_gnn_gives_one_row_per_molecule(store_and_feat, conv, pooling):
    store, feat = store_and_feat
    torch.manual_seed(0)
    enc = GNNEncoder(
        feat.node_cardinalities,
        feat.edge_cardinalities,
        feat.node_dim,
        feat.edge_dim,
        conv=conv,
        hidden=16,
        layers=2,
        dropout=0.0,
        pooling=pooling,
    )
    out = enc(store.batch(np.arange(3)))
    assert out.shape == (3, 16)
    assert torch.isfinite(out).all()
    out.sum().backward()  # trainable end to end
    assert enc.atom.tables[0].weight.grad is not None

    # in eval mode a molecule's embedding does not depend on its batch mates
    enc.eval()
    with torch.no_grad():
        together = enc(store.batch(np.arange(3)))
        alone = torch.cat([enc(store.batch(np.array([i]))) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(together[0], together[1])


def test_unknown_conv_or_pooling_is_refused(store_and_feat):
    _, feat = store_and_feat
    args = (feat.node_cardinalities, feat.edge_cardinalities, feat.node_dim, feat.edge_dim)
    with pytest.raises(ValueError, match="unknown GNN"):
        GNNEncoder(*args, conv="nope")
    with pytest.raises(ValueError, match="unknown pooling"):
        GNNEncoder(*args, pooling="nope")


def test_mlp_encoder_shape():
    enc = MLPEncoder(7, hidden=12, layers=2, dropout=0.0)
    assert enc(torch.randn(5, 7)).shape == (5, 12)
    assert enc.out_dim == 12


def test_categorical_feature_embedding_is_the_sum_of_one_lookup_per_column():
    from molddl.nn.encoders import FeatureEmbedding

    torch.manual_seed(0)
    cards = [5, 3, 7]
    emb = FeatureEmbedding(cards, len(cards), 8)
    x = torch.stack([torch.randint(0, c, (500,)) for c in cards], dim=1)
    reference = sum(t(x[:, j]) for j, t in enumerate(emb.tables)).detach()
    with torch.inference_mode():  # the fused path
        fused = emb(x)
    assert torch.equal(fused, reference)
    assert torch.equal(emb(x).detach(), reference)  # the training path
    assert "offsets" not in emb.state_dict()  # checkpoints keep their keys


def test_gine_at_prediction_equals_pygs_layer_on_tox21(data_dir):
    """At prediction the GINE edge projection is computed once per combination of bond
    values and gathered; the encoder's output equals PyG's per-bond computation (the
    training path) on real molecules, whatever the batch."""
    from molddl.data.loaders import load_tox21

    feat = PyGGraphFeaturizer()
    valid, store = feat.featurize_graphs(load_tox21(data_dir=data_dir).smiles[:600])
    torch.manual_seed(0)
    enc = GNNEncoder(feat.node_cardinalities, feat.edge_cardinalities, feat.node_dim,
                     feat.edge_dim, conv="gine", hidden=32, layers=3).eval()  # fmt: skip
    with torch.no_grad():  # train the BatchNorm statistics away from their defaults
        enc.train()(store.batch(np.arange(len(store))))
    enc.eval()
    assert enc.bond.kinds.shape == (22 * 6 * 2, 3)
    assert torch.equal(enc.bond.kinds[enc.bond.kind_index(store.edge_attr)], store.edge_attr)
    for rows in (np.arange(len(store)), np.arange(5), np.array([17])):
        batch = store.batch(rows)
        with torch.enable_grad():
            reference = enc(batch).detach()  # PyG's GINEConv, one projection per bond
        with torch.inference_mode():
            fast = enc(batch)
        torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-6)
    assert "kinds" not in enc.state_dict() and "radix" not in enc.bond.state_dict()
