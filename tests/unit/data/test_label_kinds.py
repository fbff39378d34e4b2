"""Label kinds: states, supervised losses, log-probabilities, embeddings and user values
agree with each other, and the registry resolves every kind."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from molddl.data.labels import LabelSpec, kind_names, label_kind

BIN = LabelSpec("b", "binary")
MC = LabelSpec("m", "multiclass", 4)
REG = LabelSpec("r", "regression")


def test_binary_state_and_log_probs():
    raw = torch.tensor([[-3.0], [0.0], [2.5]])
    torch.testing.assert_close(label_kind(BIN).to_state(raw), torch.sigmoid(raw))
    lp = label_kind(BIN).log_prob_all(raw)
    assert lp.shape == (3, 2)
    torch.testing.assert_close(lp.exp().sum(-1), torch.ones(3))
    torch.testing.assert_close(lp[:, 1].exp(), torch.sigmoid(raw[:, 0]))


@pytest.mark.parametrize("spec", [BIN, MC], ids=["binary", "multiclass"])
def test_class_nll_is_minus_log_prob_of_true_class(spec):
    gen = torch.Generator().manual_seed(0)
    raw = 3 * torch.randn(8, label_kind(spec).raw_size, generator=gen)
    y = torch.randint(0, spec.n_classes, (8,), generator=gen).float()
    lp = label_kind(spec).log_prob_all(raw)
    expected = -lp.gather(1, y.long().unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(label_kind(spec).loss(raw, y), expected)


def test_multiclass_state_is_softmax():
    raw = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    torch.testing.assert_close(label_kind(MC).to_state(raw), torch.softmax(raw, -1))
    torch.testing.assert_close(label_kind(MC).log_prob_all(raw), torch.log_softmax(raw, -1))


def test_gaussian_log_prob_matches_torch_normal():
    gen = torch.Generator().manual_seed(0)
    raw = torch.randn(10, 2, generator=gen)
    y = torch.randn(10, generator=gen)
    normal = torch.distributions.Normal(raw[:, 0], (0.5 * raw[:, 1]).exp())
    torch.testing.assert_close(label_kind(REG, gaussian=True).log_prob(raw, y), normal.log_prob(y))
    torch.testing.assert_close(label_kind(REG, gaussian=True).loss(raw, y), -normal.log_prob(y))


def test_regression_without_variance_is_mse():
    raw = torch.tensor([[1.0], [-2.0]])
    y = torch.tensor([0.5, 1.0])
    torch.testing.assert_close(label_kind(REG).loss(raw, y), torch.tensor([0.25, 9.0]))
    torch.testing.assert_close(
        label_kind(REG).to_state(torch.tensor([[1.5, 9.0]])), torch.tensor([[1.5]])
    )


def test_target_state_hard_labels_and_missing():
    y = torch.tensor([2.0, float("nan"), 0.0])
    assert torch.equal(
        label_kind(MC).target_state(y), F.one_hot(torch.tensor([2, 0, 0]), 4).float()
    )
    assert torch.equal(label_kind(BIN).target_state(torch.tensor([1.0, float("nan")])),
                       torch.tensor([[1.0], [0.0]]))  # fmt: skip


def test_state_and_raw_dims():
    b, m = label_kind(BIN, gaussian=True), label_kind(MC)
    assert b.raw_size == 1 and b.state_size == 1
    assert m.raw_size == 4 and m.state_size == 4
    assert label_kind(REG, gaussian=True).raw_size == 2 and label_kind(REG).raw_size == 1
    assert label_kind(REG, gaussian=True).has_log_prob and not label_kind(REG).has_log_prob
    assert b.has_log_prob
    with pytest.raises(ValueError, match="model.gaussian=true"):
        label_kind(REG).log_prob(torch.zeros(1, 1), torch.zeros(1))


def test_gaussian_log_prob_clamps_log_variance():
    raw = torch.tensor([[0.0, 50.0]])
    expected = -0.5 * (math.log(2 * math.pi) + 10.0)
    torch.testing.assert_close(
        label_kind(REG, gaussian=True).log_prob(raw, torch.zeros(1)), torch.tensor([expected])
    )


def test_registry_holds_the_four_kinds():
    assert kind_names() == ("binary", "multiclass", "regression", "gaussian")
    assert type(label_kind(REG, gaussian=True)).__name__ == "GaussianValueKind"
    assert type(label_kind(BIN, gaussian=True)).__name__ == "BinaryKind"  # classes ignore it


def test_user_values_from_states():
    state = np.array([[0.2], [0.9]])
    assert np.array_equal(label_kind(BIN).to_user(state, 0.0, 1.0), [0.2, 0.9])
    assert np.array_equal(label_kind(REG).to_user(state, 10.0, 2.0), [10.4, 11.8])
    probs = np.array([[0.1, 0.2, 0.3, 0.4]])
    assert np.array_equal(label_kind(MC).to_user(probs, 0.0, 1.0), probs)


def test_user_columns_keep_given_values_and_give_probabilities_elsewhere():
    user, given = np.array([0.7, 0.2, 0.4, np.nan]), np.array([np.nan, 1.0, np.nan, 0.0])
    cols = label_kind(BIN).user_columns(user, given)
    assert list(cols) == ["b", "b_prob"]  # no hard call without a threshold (never 0.5)
    np.testing.assert_array_equal(cols["b"], [0.7, 1.0, 0.4, 0.0])
    np.testing.assert_array_equal(cols["b_prob"], [0.7, np.nan, 0.4, np.nan])
    cols = label_kind(BIN).user_columns(user, given, np.array([0.3, np.nan, 0.5, np.nan]))
    np.testing.assert_array_equal(cols["b_class"], [1.0, 1.0, 0.0, 0.0])
    assert label_kind(BIN).class_columns() == ["b_class"]
    cols = label_kind(MC).user_columns(
        np.array([[0.1, 0.2, 0.3, 0.4], [np.nan] * 4, [0.7, 0.1, 0.1, 0.1]]),
        np.array([np.nan, np.nan, 2.0]),
    )
    np.testing.assert_array_equal(cols["m"], [3, np.nan, 2])
    assert list(cols)[1:] == ["m_prob_0", "m_prob_1", "m_prob_2", "m_prob_3"]
    assert np.isnan(cols["m_prob_0"][2])  # a given row has no probabilities


@pytest.mark.parametrize("spec", [BIN, MC, REG], ids=["binary", "multiclass", "regression"])
def test_folded_projection_equals_the_embedding(spec):
    """``W_y L(s) = s M + c``: the label path alternate inference iterates is the embedding."""
    from molddl.nn.label_embedding import LabelEmbedding

    torch.manual_seed(0)
    emb = LabelEmbedding(spec, dim=5)
    W_y = torch.randn(7, 5)
    kind = label_kind(spec)
    state = kind.to_state(torch.randn(3, kind.raw_size))
    M, c = emb.projection(W_y)
    torch.testing.assert_close(emb(state) @ W_y.T, state @ M + c)


def test_support_weights_known_and_imputed():
    kind = label_kind(BIN)
    y = torch.tensor([1.0, float("nan")])
    present = ~torch.isnan(y)
    state = torch.tensor([[1.0], [0.3]])
    sup = kind.support(y, present, state, "expectation")
    assert [float(v[0]) for v, _, _ in sup] == [0.0, 1.0]  # every class, known or not
    torch.testing.assert_close(
        torch.stack([w for _, _, w in sup], 1), torch.tensor([[0.0, 1.0], [0.7, 0.3]])
    )
    arg = kind.support(y, present, state, "argmax")
    torch.testing.assert_close(
        torch.stack([w for _, _, w in arg], 1), torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    )
