"""Label embeddings: hard labels pick a table row, soft labels mix rows, values are linear."""

from __future__ import annotations

import torch

from molddl.data.labels import LabelSpec
from molddl.nn.label_embedding import LabelEmbedding


def test_binary_hard_label_is_the_table_row():
    emb = LabelEmbedding(LabelSpec("a", "binary"), dim=4)
    state = torch.tensor([[0.0], [1.0]])
    assert torch.equal(emb.weights(state), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    out = emb(state)
    assert torch.equal(out[0], emb.table[0].detach())
    assert torch.equal(out[1], emb.table[1].detach())


def test_binary_soft_label_is_convex_combination_of_rows():
    emb = LabelEmbedding(LabelSpec("a", "binary"), dim=3)
    with torch.no_grad():
        emb.table.copy_(torch.tensor([[1.0, 2.0, -4.0], [3.0, -2.0, 8.0]]))
    out = emb(torch.tensor([[0.25], [0.5]]))
    expected = torch.tensor([[1.5, 1.0, -1.0], [2.0, 0.0, 2.0]])  # 0.75 e0 + 0.25 e1, e0/2 + e1/2
    assert torch.equal(out.detach(), expected)


def test_multiclass_state_weights_rows():
    emb = LabelEmbedding(LabelSpec("c", "multiclass", 3), dim=2)
    with torch.no_grad():
        emb.table.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]]))
    hard = torch.tensor([[0.0, 0.0, 1.0]])
    soft = torch.tensor([[0.5, 0.25, 0.25]])
    assert torch.equal(emb(hard).detach(), torch.tensor([[2.0, 2.0]]))
    assert torch.equal(emb(soft).detach(), torch.tensor([[1.0, 0.75]]))


def test_regression_embedding_is_affine_in_the_value():
    emb = LabelEmbedding(LabelSpec("v", "regression"), dim=5)
    z = torch.tensor([[-1.0], [0.0], [2.0]])
    out = emb(z).detach()
    w, b = emb.linear.weight.detach()[:, 0], emb.linear.bias.detach()
    torch.testing.assert_close(out, z * w + b)
    # affine: L(a) + L(b) - L(0) == L(a + b)
    torch.testing.assert_close(out[0] + out[2] - out[1], emb(torch.tensor([[1.0]])).detach()[0])


def test_class_embedding_has_no_bias_path():
    """A one-hot label adds nothing but its row: a zero table gives a zero embedding."""
    emb = LabelEmbedding(LabelSpec("a", "binary"), dim=3)
    with torch.no_grad():
        emb.table.zero_()
    assert torch.count_nonzero(emb(torch.tensor([[0.3]]))) == 0
