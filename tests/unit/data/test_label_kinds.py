"""Heads: states, supervised losses and log-probabilities agree with each other."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from molddl.data.labels import LabelSpec
from molddl.nn import heads

BIN = LabelSpec("b", "binary")
MC = LabelSpec("m", "multiclass", 4)
REG = LabelSpec("r", "regression")


def test_binary_state_and_log_probs():
    raw = torch.tensor([[-3.0], [0.0], [2.5]])
    torch.testing.assert_close(heads.to_state(BIN, raw), torch.sigmoid(raw))
    lp = heads.log_prob_all(BIN, raw)
    assert lp.shape == (3, 2)
    torch.testing.assert_close(lp.exp().sum(-1), torch.ones(3))
    torch.testing.assert_close(lp[:, 1].exp(), torch.sigmoid(raw[:, 0]))


@pytest.mark.parametrize("spec", [BIN, MC], ids=["binary", "multiclass"])
def test_class_nll_is_minus_log_prob_of_true_class(spec):
    gen = torch.Generator().manual_seed(0)
    raw = 3 * torch.randn(8, heads.raw_dim(spec, False), generator=gen)
    y = torch.randint(0, spec.n_classes, (8,), generator=gen).float()
    lp = heads.log_prob_all(spec, raw)
    expected = -lp.gather(1, y.long().unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(heads.nll(spec, raw, y), expected)


def test_multiclass_state_is_softmax():
    raw = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    torch.testing.assert_close(heads.to_state(MC, raw), torch.softmax(raw, -1))
    torch.testing.assert_close(heads.log_prob_all(MC, raw), torch.log_softmax(raw, -1))


def test_gaussian_log_prob_matches_torch_normal():
    gen = torch.Generator().manual_seed(0)
    raw = torch.randn(10, 2, generator=gen)
    y = torch.randn(10, generator=gen)
    normal = torch.distributions.Normal(raw[:, 0], (0.5 * raw[:, 1]).exp())
    torch.testing.assert_close(heads.gaussian_log_prob(raw, y), normal.log_prob(y))
    torch.testing.assert_close(heads.nll(REG, raw, y), -normal.log_prob(y))


def test_regression_without_variance_is_mse():
    raw = torch.tensor([[1.0], [-2.0]])
    y = torch.tensor([0.5, 1.0])
    torch.testing.assert_close(heads.nll(REG, raw, y), torch.tensor([0.25, 9.0]))
    torch.testing.assert_close(
        heads.to_state(REG, torch.tensor([[1.5, 9.0]])), torch.tensor([[1.5]])
    )


def test_target_state_hard_labels_and_missing():
    y = torch.tensor([2.0, float("nan"), 0.0])
    assert torch.equal(heads.target_state(MC, y), F.one_hot(torch.tensor([2, 0, 0]), 4).float())
    assert torch.equal(heads.target_state(BIN, torch.tensor([1.0, float("nan")])),
                       torch.tensor([[1.0], [0.0]]))  # fmt: skip


def test_state_and_raw_dims():
    assert heads.raw_dim(BIN, True) == 1 and heads.state_dim(BIN) == 1
    assert heads.raw_dim(MC, False) == 4 and heads.state_dim(MC) == 4
    assert heads.raw_dim(REG, True) == 2 and heads.raw_dim(REG, False) == 1
    assert heads.has_log_prob(REG, 2) and not heads.has_log_prob(REG, 1)
    assert heads.has_log_prob(BIN, 1)


def test_gaussian_log_prob_clamps_log_variance():
    raw = torch.tensor([[0.0, 50.0]])
    expected = -0.5 * (math.log(2 * math.pi) + 10.0)
    torch.testing.assert_close(
        heads.gaussian_log_prob(raw, torch.zeros(1)), torch.tensor([expected])
    )
