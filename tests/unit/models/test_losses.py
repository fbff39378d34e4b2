"""The three DLL losses (SPEC §3): the freeze, the masks and the duality gap by hand."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from molddl.config import ModelConfig
from molddl.data.labels import LabelSpec, label_kind
from molddl.data.preprocess import InputInfo
from molddl.models.losses import (
    DualBatch,
    LossWeights,
    dll_losses,
    forward_dual,
    loss_dual,
    loss_sup,
)
from molddl.models.nets import DualTowerNet

NAN = float("nan")
BIN = LabelSpec("y1", "binary"), LabelSpec("y2", "binary")


def _net(seed: int = 0, labels=BIN, gaussian: bool = False) -> DualTowerNet:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        encoder="mlp", hidden=16, layers=2, tower_hidden=16, dropout=0.0, gaussian=gaussian
    )
    return DualTowerNet(cfg, labels, InputInfo("vector", dim=5))


def _x(n: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 5, generator=torch.Generator().manual_seed(seed))


def _params(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def _d1_batch(n: int = 8) -> torch.Tensor:
    y1 = torch.tensor([float(i % 2) for i in range(n)])
    return torch.stack([y1, torch.full((n,), NAN)], dim=1)


# ----------------------------------------------------------------------------- the freeze
def test_rec_step_on_d1_leaves_imputing_tower_bit_identical():
    net = _net()
    x, y = _x(8), _d1_batch(8)
    before = {"tower1": _params(net.tower1), "tower2": _params(net.tower2),
              "encoder": _params(net.encoder)}  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    terms = dll_losses(net.encoder(x), y, net.towers, LossWeights(terms=("rec",)), None)
    assert set(terms) == {"loss_rec", "loss"} and terms["loss"] > 0
    terms["loss"].backward()
    opt.step()

    for name, p in net.tower2.named_parameters():  # tower2 imputed y2: frozen
        assert torch.equal(p.detach(), before["tower2"][name]), name
    assert any(p.requires_grad for p in net.tower2.embed.parameters())
    for name, p in net.tower2.embed.named_parameters():
        assert torch.equal(p.detach(), before["tower2"][f"embed.{name}"])
    # tower1 reconstructs y1 (incl. its embedding of the imputed y2), the encoder learns
    changed = [
        n for n, p in net.tower1.named_parameters() if not torch.equal(p, before["tower1"][n])
    ]
    assert "embed.table" in changed and "lin_h.weight" in changed
    assert any(not torch.equal(p, before["encoder"][n]) for n, p in net.encoder.named_parameters())


def test_rec_step_on_d2_freezes_tower1_instead():
    net = _net()
    y = _d1_batch(8).flip(1)  # y2 present, y1 missing
    before = _params(net.tower1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    dll_losses(net.encoder(_x(8)), y, net.towers, LossWeights(terms=("rec",)), None)[
        "loss"
    ].backward()
    opt.step()
    assert all(torch.equal(p, before[n]) for n, p in net.tower1.named_parameters())
    assert net.tower2.lin_h.weight.grad is not None


def _encoder_grads(scope: str) -> tuple[list[torch.Tensor], torch.Tensor]:
    net = _net()
    y = _d1_batch(8)
    h = net.encoder(_x(8))
    db = forward_dual(h, y, net.towers, scope)
    dll_losses(h, y, net.towers, LossWeights(terms=("rec",), freeze_scope=scope), None)[
        "loss"
    ].backward()
    return [p.grad.clone() for p in net.encoder.parameters()], db.states[1]


def test_freeze_scope_tower_lets_encoder_learn_through_imputation():
    g_tower, s_tower = _encoder_grads("tower")
    g_imp, s_imp = _encoder_grads("imputation")
    assert s_tower.requires_grad  # imputed y2 depends on h
    assert not s_imp.requires_grad  # imputed y2 is a constant
    assert any(not torch.allclose(a, b) for a, b in zip(g_tower, g_imp, strict=True))


def test_imputation_scope_still_freezes_tower2():
    net = _net()
    h = net.encoder(_x(8))
    cfg = LossWeights(terms=("rec",), freeze_scope="imputation")
    dll_losses(h, _d1_batch(8), net.towers, cfg, None)["loss"].backward()
    assert all(p.grad is None for p in net.tower2.parameters())


def test_imputed_state_is_frozen_tower_prediction():
    net = _net().eval()
    y = torch.tensor([[1.0, NAN], [NAN, 0.0], [1.0, 1.0], [NAN, NAN]])
    h = net.encoder(_x(4))
    db = forward_dual(h, y, net.towers)
    with torch.no_grad():
        p2 = torch.sigmoid(net.tower2(h, torch.tensor([[1.0]] * 4)))
        p1 = torch.sigmoid(net.tower1(h, torch.tensor([[0.0]] * 4)))
    torch.testing.assert_close(db.states[1][0], p2[0])
    torch.testing.assert_close(db.states[0][1], p1[1])
    assert torch.equal(db.states[0][2], torch.tensor([1.0]))  # known labels stay hard
    assert torch.equal(db.states[1][2], torch.tensor([1.0]))
    assert db.parts["D1"].tolist() == [True, False, False, False]
    assert db.parts["D2"].tolist() == [False, True, False, False]
    assert db.parts["D12"].tolist() == [False, False, True, False]


# ----------------------------------------------------------------------------- masks
def test_loss_sup_needs_d12_rows():
    net = _net()
    h = net.encoder(_x(4))
    towers = net.towers
    no_d12 = torch.tensor([[1.0, NAN], [NAN, 0.0], [NAN, NAN], [0.0, NAN]])
    db = forward_dual(h, no_d12, towers)
    assert loss_sup(db, no_d12, towers, (1.0, 1.0)).item() == 0.0
    some = no_d12.clone()
    some[2] = torch.tensor([1.0, 1.0])
    db = forward_dual(h, some, towers)
    value = loss_sup(db, some, towers, (1.0, 1.0))
    assert value.item() > 0
    # only the D12 row counts: BCE of both towers on row 2
    expected = sum(
        F.binary_cross_entropy_with_logits(db.raw[k][2, 0], torch.tensor(1.0)) for k in range(2)
    )
    torch.testing.assert_close(value, expected)
    # alpha weights each term
    half = loss_sup(db, some, towers, (0.5, 0.0))
    torch.testing.assert_close(
        half, 0.5 * F.binary_cross_entropy_with_logits(db.raw[0][2, 0], torch.tensor(1.0))
    )


def test_d0_only_batch_adds_nothing():
    net = _net()
    h = net.encoder(_x(3))
    y = torch.full((3, 2), NAN)
    mraw = [torch.zeros(3, 1), torch.zeros(3, 1)]
    terms = dll_losses(h, y, net.towers, LossWeights(), mraw)
    assert set(terms) == {"loss_sup", "loss_rec", "loss_dual", "loss"}
    assert all(v.item() == 0.0 for v in terms.values())


def test_d0_rows_do_not_change_the_loss():
    net = _net()
    x = _x(6)
    y = torch.tensor([[1.0, 0.0], [0.0, NAN], [NAN, 1.0], [NAN, NAN], [NAN, NAN], [NAN, NAN]])
    mraw = [torch.randn(6, 1), torch.randn(6, 1)]
    full = dll_losses(net.encoder(x), y, net.towers, LossWeights(), mraw)
    part = dll_losses(net.encoder(x[:3]), y[:3], net.towers, LossWeights(), [m[:3] for m in mraw])
    for k in full:
        torch.testing.assert_close(full[k], part[k])


@pytest.mark.parametrize(
    ("losses", "keys"),
    [
        (["sup"], {"loss_sup"}),
        (["sup", "rec"], {"loss_sup", "loss_rec"}),
        (["sup", "rec", "dual"], {"loss_sup", "loss_rec", "loss_dual"}),
    ],
)
def test_ablation_modes_compute_exactly_the_listed_terms(losses, keys):
    net = _net()
    y = torch.tensor([[1.0, 0.0], [0.0, NAN], [NAN, 1.0], [1.0, 1.0]])
    mraw = [torch.randn(4, 1), torch.randn(4, 1)]
    terms = dll_losses(net.encoder(_x(4)), y, net.towers, LossWeights(terms=tuple(losses)), mraw)
    assert set(terms) == keys | {"loss"}
    torch.testing.assert_close(terms["loss"], sum(terms[k] for k in keys))
    assert all(terms[k].item() > 0 for k in keys)


def test_dual_term_needs_marginal_outputs():
    net = _net()
    y = torch.tensor([[1.0, 0.0], [0.0, NAN]])
    terms = dll_losses(net.encoder(_x(2)), y, net.towers, LossWeights(), None)
    assert "loss_dual" not in terms


# ----------------------------------------------------------------------------- loss_dual
class LogitTower(nn.Module):
    """A binary tower whose logit is ``a + b · p`` for input state ``p`` (h is ignored)."""

    def __init__(self, spec: LabelSpec, a: float, b: float) -> None:
        super().__init__()
        self.out_kind, self.raw_size = label_kind(spec, False), 1
        self.a = nn.Parameter(torch.tensor(a))
        self.b = nn.Parameter(torch.tensor(b))

    def forward(self, h: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return self.a + self.b * state + 0 * h[:, :1]


def _ls(z: float) -> float:
    """log sigmoid"""
    return F.logsigmoid(torch.tensor(z)).item()


def _hand_gap(m1, m2, t1, t2, v1, v2):
    """log P̂(y1=v1) + log P_f(y2=v2|y1=v1) − log P̂(y2=v2) − log P_g(y1=v1|y2=v2)."""

    def lp(logit, v):
        return _ls(logit) if v == 1 else _ls(-logit)

    return lp(m1, v1) + lp(t2(v1), v2) - lp(m2, v2) - lp(t1(v2), v1)


@pytest.fixture
def tiny_binary():
    t1 = LogitTower(BIN[0], a=0.3, b=-1.2)  # ŷ1 = g(y2)
    t2 = LogitTower(BIN[1], a=-0.4, b=2.0)  # ŷ2 = f(y1)
    y = torch.tensor([[1.0, 0.0], [1.0, NAN], [NAN, 1.0], [NAN, NAN]])
    m1 = [0.5, -1.0, 2.0, 0.0]
    m2 = [-0.7, 0.25, 1.5, 0.0]
    mraw = [torch.tensor(m1).unsqueeze(-1), torch.tensor(m2).unsqueeze(-1)]
    return [t1, t2], y, mraw, m1, m2


@pytest.mark.parametrize("mode", ["expectation", "argmax"])
def test_loss_dual_equals_hand_computation(tiny_binary, mode):
    towers, y, mraw, m1, m2 = tiny_binary
    h = torch.zeros(4, 3)
    db = forward_dual(h, y, towers)
    got = loss_dual(h, y, db, towers, mraw, gamma=0.5, mode=mode)

    def f(p):
        return -0.4 + 2.0 * p

    def g(p):
        return 0.3 - 1.2 * p

    sig = torch.sigmoid
    # row 0, D12: y1 = 1, y2 = 0
    r0 = _hand_gap(m1[0], m2[0], g, f, 1, 0) ** 2
    # row 1, D1: y1 = 1 known, y2 imputed q = P_f(y2 = 1 | y1 = 1)
    q = sig(torch.tensor(f(1.0))).item()
    g0, g1 = _hand_gap(m1[1], m2[1], g, f, 1, 0) ** 2, _hand_gap(m1[1], m2[1], g, f, 1, 1) ** 2
    r1 = (1 - q) * g0 + q * g1 if mode == "expectation" else (g1 if q >= 0.5 else g0)
    # row 2, D2: y2 = 1 known, y1 imputed p = P_g(y1 = 1 | y2 = 1); the towers see p as state
    p = sig(torch.tensor(g(1.0))).item()
    h0, h1 = _hand_gap(m1[2], m2[2], g, f, 0, 1) ** 2, _hand_gap(m1[2], m2[2], g, f, 1, 1) ** 2
    r2 = (1 - p) * h0 + p * h1 if mode == "expectation" else (h1 if p >= 0.5 else h0)
    expected = 0.5 * (r0 + r1 + r2) / 3  # row 3 is D0: not counted
    assert got.item() == pytest.approx(expected, rel=1e-5)
    assert got.item() >= 0


def test_expectation_and_argmax_differ_on_imputed_rows(tiny_binary):
    towers, y, mraw, *_ = tiny_binary
    h = torch.zeros(4, 3)
    db = forward_dual(h, y, towers)
    exp = loss_dual(h, y, db, towers, mraw, 1.0, "expectation")
    arg = loss_dual(h, y, db, towers, mraw, 1.0, "argmax")
    assert exp.item() != pytest.approx(arg.item(), rel=1e-3)
    # on D12 rows only the two modes agree
    d12 = y[:1]
    db12 = forward_dual(h[:1], d12, towers)
    m12 = [m[:1] for m in mraw]
    torch.testing.assert_close(
        loss_dual(h[:1], d12, db12, towers, m12, 1.0, "expectation"),
        loss_dual(h[:1], d12, db12, towers, m12, 1.0, "argmax"),
    )


def test_loss_dual_is_zero_when_bayes_identity_holds():
    """Towers and marginals built from one joint distribution satisfy the identity exactly."""
    joint = torch.tensor([[0.1, 0.3], [0.4, 0.2]])  # P(y1 = i, y2 = j)
    p1, p2 = joint.sum(1), joint.sum(0)
    logit = torch.logit
    # P(y2 = 1 | y1 = v) and P(y1 = 1 | y2 = v); both are affine in a hard label v
    f1 = [logit(joint[v, 1] / p1[v]).item() for v in (0, 1)]
    g1 = [logit(joint[1, v] / p2[v]).item() for v in (0, 1)]
    towers = [
        LogitTower(BIN[0], a=g1[0], b=g1[1] - g1[0]),
        LogitTower(BIN[1], a=f1[0], b=f1[1] - f1[0]),
    ]
    y = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    mraw = [torch.full((4, 1), logit(p1[1]).item()), torch.full((4, 1), logit(p2[1]).item())]
    h = torch.zeros(4, 1)
    db = forward_dual(h, y, towers)
    assert loss_dual(h, y, db, towers, mraw, 1.0).item() == pytest.approx(0.0, abs=1e-10)
    mraw_off = [mraw[0] + 1.0, mraw[1]]  # a wrong marginal breaks it
    assert loss_dual(h, y, db, towers, mraw_off, 1.0).item() > 0.1


def test_loss_dual_gaussian_regression_runs_and_is_positive():
    labels = (LabelSpec("y1", "binary"), LabelSpec("y2", "regression"))
    net = _net(labels=labels, gaussian=True)
    y = torch.tensor([[1.0, 0.3], [0.0, NAN], [NAN, -1.0]])
    mraw = [torch.randn(3, 1), torch.randn(3, 2)]
    terms = dll_losses(net.encoder(_x(3)), y, net.towers, LossWeights(), mraw)
    assert terms["loss_dual"].item() > 0
    terms["loss"].backward()


# ----------------------------------------------------------------------------- estimator
def test_regression_without_gaussian_skips_dual_and_trains(caplog):
    from molddl.data.synthetic import make_dual_label
    from molddl.models.estimator import DualLabelModel

    data = make_dual_label(300, n_features=4, kind="regression", missing_rate=0.3, seed=0)
    cfg = {
        "model": {"encoder": "mlp", "hidden": 16, "layers": 2, "tower_hidden": 16},
        "train": {"max_epochs": 2},
        "device": "cpu",
    }
    with caplog.at_level(logging.INFO, logger="molddl.models.training"):
        model = DualLabelModel(cfg).fit(data.subset(range(250)), data.subset(range(250, 300)))
    assert any("loss_dual skipped" in r.getMessage() for r in caplog.records)
    assert model.history_["dll"]["epochs"] >= 1
    out = model.predict(data.subset(range(250, 300)))
    assert out["y2"].notna().all() and out["y1"].notna().all()


# ----------------------------------------------------------------------------- loss_dual gradient
REG = LabelSpec("y1", "regression"), LabelSpec("y2", "regression")


def _dual_grad_wrt_h(labels, gaussian: bool, detach_states: bool) -> tuple[torch.Tensor, bool]:
    """``∂ loss_dual / ∂ h`` on a batch with D12, D1 and D2 rows (imputed by the frozen
    towers, ``freeze_scope="tower"``, so the imputed states depend on ``h``)."""
    net = _net(labels=labels, gaussian=gaussian)
    y = torch.tensor([[1.0, 0.0], [0.0, NAN], [1.0, NAN], [NAN, 1.0], [NAN, 0.0], [0.0, 1.0]])
    if labels[0].kind == "regression":
        y = torch.tensor(
            [[0.4, -0.2], [1.1, NAN], [-0.7, NAN], [NAN, 0.9], [NAN, -1.3], [0.2, 0.5]]
        )
    h = net.encoder(_x(len(y))).detach().requires_grad_()
    db = forward_dual(h, y, net.towers, "tower")
    imputed_depends_on_h = all(s.requires_grad for s in db.states)
    if detach_states:
        db = DualBatch(parts=db.parts, states=[s.detach() for s in db.states], raw=db.raw)
    gen = torch.Generator().manual_seed(5)
    mraw = [torch.randn(len(y), t.out_kind.raw_size, generator=gen) for t in net.towers]
    loss_dual(h, y, db, net.towers, mraw, gamma=1.0, mode="expectation").backward()
    return h.grad, imputed_depends_on_h


@pytest.mark.parametrize(
    ("labels", "gaussian"), [(BIN, False), (REG, True)], ids=["binary", "gaussian"]
)
def test_loss_dual_takes_imputed_states_as_constants(labels, gaussian):
    """No gradient of ``loss_dual`` flows through an imputed label (the expectation weights
    of a class label, the imputed value of a Gaussian one): the gradient w.r.t. ``h`` is the
    one computed with the imputed states replaced by detached copies."""
    got, depends = _dual_grad_wrt_h(labels, gaussian, detach_states=False)
    want, _ = _dual_grad_wrt_h(labels, gaussian, detach_states=True)
    assert depends  # the imputation is a function of h: there is a path to cut
    assert want.abs().sum() > 0  # the loss still trains the encoder through the towers
    torch.testing.assert_close(got, want, rtol=0, atol=0)
