"""Towers: the split first layer W_h h + W_y L(y) is the concat-then-linear layer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from molddl.data.labels import LabelSpec, label_kind
from molddl.nn.towers import Tower

SPECS = {
    "binary": LabelSpec("b", "binary"),
    "multiclass": LabelSpec("m", "multiclass", 3),
    "regression": LabelSpec("r", "regression"),
}


def _state(spec: LabelSpec, n: int, gen: torch.Generator) -> torch.Tensor:
    if spec.kind == "multiclass":
        return torch.softmax(torch.randn(n, spec.n_classes, generator=gen), -1)
    if spec.kind == "binary":
        return torch.rand(n, 1, generator=gen)
    return torch.randn(n, 1, generator=gen)


@pytest.mark.parametrize("in_kind", list(SPECS))
@pytest.mark.parametrize("out_kind", list(SPECS))
def test_split_first_layer_is_concat_linear(in_kind, out_kind):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    in_spec, out_spec = SPECS[in_kind], SPECS[out_kind]
    tower = Tower(7, in_spec, out_spec, label_dim=5, hidden=11, layers=3, gaussian=True).eval()
    h = torch.randn(6, 7, generator=gen)
    s = _state(in_spec, 6, gen)

    out = tower(h, s)
    assert out.shape == (6, label_kind(out_spec, gaussian=True).raw_size)
    torch.testing.assert_close(out, tower.from_parts(tower.encode_h(h), s), rtol=0, atol=0)

    # explicit [h, L(y)] @ [W_h, W_y]^T + b, then the rest of the tower
    W = torch.cat([tower.lin_h.weight, tower.lin_y.weight], dim=1)
    first = F.linear(torch.cat([h, tower.embed(s)], dim=1), W, tower.lin_h.bias)
    torch.testing.assert_close(out, tower.body(first), rtol=1e-5, atol=1e-6)


def test_tower_owns_its_label_embedding():
    tower = Tower(4, SPECS["binary"], SPECS["regression"], label_dim=3, hidden=8)
    own = {id(p) for p in tower.parameters()}
    assert all(id(p) in own for p in tower.embed.parameters())


def test_output_depends_on_the_input_label():
    torch.manual_seed(0)
    tower = Tower(4, SPECS["binary"], SPECS["binary"], label_dim=3, hidden=8).eval()
    h = torch.randn(1, 4).expand(2, 4)
    out = tower(h, torch.tensor([[0.0], [1.0]]))
    assert not torch.allclose(out[0], out[1])


def test_gaussian_head_only_for_regression():
    assert Tower(4, SPECS["binary"], SPECS["regression"], gaussian=True).raw_size == 2
    assert Tower(4, SPECS["binary"], SPECS["regression"], gaussian=False).raw_size == 1
    assert Tower(4, SPECS["regression"], SPECS["binary"], gaussian=True).raw_size == 1
    assert Tower(4, SPECS["regression"], SPECS["multiclass"], gaussian=True).raw_size == 3


@pytest.mark.parametrize("in_kind", ["binary", "multiclass", "regression"])
def test_label_projection_step_equals_from_parts(in_kind):
    """Alternate inference's folded label path computes the same tower output."""
    torch.manual_seed(0)
    in_spec = {
        "binary": LabelSpec("a", "binary"),
        "multiclass": LabelSpec("a", "multiclass", 4),
        "regression": LabelSpec("a", "regression"),
    }[in_kind]
    tower = Tower(12, in_spec, LabelSpec("b", "binary"), label_dim=5, hidden=16).eval()
    h = torch.randn(9, 12)
    if in_kind == "multiclass":
        state = torch.softmax(torch.randn(9, 4), dim=-1)
    elif in_kind == "binary":
        state = torch.rand(9, 1)
    else:
        state = torch.randn(9, 1)
    with torch.no_grad():
        M, c = tower.label_projection()
        hh = tower.encode_h(h)
        torch.testing.assert_close(tower.step(hh + c, M, state), tower.from_parts(hh, state))
