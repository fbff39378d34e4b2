"""The three DLL losses (SPEC §3, paper eq. 3): ``loss_sup``, ``loss_rec``, ``loss_dual``.

All take a batch's encoder output ``h``, labels ``y`` (``b x 2``; class index or standardised
value, NaN where missing) and the towers; each equation has its one function here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch.func import functional_call

from molddl.nn.towers import Tower, known_states

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LossWeights:
    """The loss terms in use and their weights (SPEC §3), given explicitly to the losses.

    Attributes
    ----------
    alpha, beta
        ``(α1, α2)`` of ``loss_sup`` and ``(β1, β2)`` of ``loss_rec``.
    gamma
        ``γ`` of ``loss_dual``.
    terms
        The terms in use, a subset of ``("sup", "rec", "dual")`` (the ablation modes).
    freeze_scope
        ``tower``: the imputing tower gets no gradient, the encoder learns through the
        imputed label of ``loss_rec``; ``imputation``: the imputed label is a constant.
        ``loss_dual`` takes imputed labels as constants under both.
    dual_imputed
        ``expectation`` or ``argmax`` over an imputed class label in ``loss_dual``.
    """

    alpha: tuple[float, float] = (1.0, 1.0)
    beta: tuple[float, float] = (1.0, 1.0)
    gamma: float = 0.1
    terms: tuple[str, ...] = ("sup", "rec", "dual")
    freeze_scope: str = "tower"
    dual_imputed: str = "expectation"


def frozen_call(tower: Tower, h: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """Run ``tower`` with its parameters (label embedding included) cut from the graph:
    no gradient reaches them, while gradients still flow into ``h`` and ``state``."""
    params = {name: p.detach() for name, p in tower.named_parameters()}
    return functional_call(tower, params, (h, state))


@dataclass(slots=True)
class DualBatch:
    """Tower outputs for one mini-batch, with the missing labels imputed (Algorithm 1).

    Attributes
    ----------
    parts
        ``D12``, ``D1``, ``D2`` boolean masks, shape ``b``.
    states
        Label states with missing labels imputed by the frozen opposite tower, ``[b x s1, b x s2]``.
    raw
        ``raw[0] = tower1(h, states[1])`` (ŷ1 = g(x, y2)), ``raw[1] = tower2(h, states[0])``.
    """

    parts: dict[str, torch.Tensor]
    states: list[torch.Tensor]
    raw: list[torch.Tensor]


def forward_dual(
    h: torch.Tensor, y: torch.Tensor, towers, freeze_scope: str = "tower"
) -> DualBatch:
    """Step (1) of Algorithm 1 and the tower passes the losses need.

    For ``D1`` members, ``ŷ2 = f(x, y1)`` with ``tower2`` frozen; for ``D2``, ``ŷ1 = g(x, y2)``
    with ``tower1`` frozen. With ``freeze_scope == "imputation"`` the imputed label is a
    constant (no gradient at all through the imputation).
    """
    m = ~torch.isnan(y)
    parts = {"D12": m[:, 0] & m[:, 1], "D1": m[:, 0] & ~m[:, 1], "D2": ~m[:, 0] & m[:, 1]}
    kinds = [towers[k].out_kind for k in range(2)]
    known = known_states(towers, y)
    states = []
    for k in range(2):  # towers[k] predicts label k: it imputes label k where only 1-k is known
        s_k = known[k]
        needs = ~m[:, k] & m[:, 1 - k]
        if needs.any():
            if freeze_scope == "imputation":
                with torch.no_grad():
                    imputed = kinds[k].to_state(towers[k](h.detach(), known[1 - k]))
            else:
                imputed = kinds[k].to_state(frozen_call(towers[k], h, known[1 - k]))
            s_k = torch.where(needs.unsqueeze(-1), imputed, s_k)
        states.append(s_k)
    raw = [towers[k](h, states[1 - k]) for k in range(2)]
    return DualBatch(parts=parts, states=states, raw=raw)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if not mask.any():
        return values.new_zeros(())
    return values[mask].mean()


def loss_sup(db: DualBatch, y: torch.Tensor, towers, alpha: tuple[float, float]) -> torch.Tensor:
    """``α1 · mean_D12 ℓ1(g(x, y2), y1) + α2 · mean_D12 ℓ2(f(x, y1), y2)``."""
    yf = torch.nan_to_num(y)
    return sum(
        alpha[k] * _masked_mean(towers[k].out_kind.loss(db.raw[k], yf[:, k]), db.parts["D12"])
        for k in range(2)
    )  # type: ignore[return-value]


def loss_rec(db: DualBatch, y: torch.Tensor, towers, beta: tuple[float, float]) -> torch.Tensor:
    """``β1 · mean_D1 ℓ1(g(x, ŷ2), y1) + β2 · mean_D2 ℓ2(f(x, ŷ1), y2)`` with ŷ imputed by the
    frozen opposite tower (see :func:`forward_dual`)."""
    yf = torch.nan_to_num(y)
    own = ("D1", "D2")
    return sum(
        beta[k] * _masked_mean(towers[k].out_kind.loss(db.raw[k], yf[:, k]), db.parts[own[k]])
        for k in range(2)
    )  # type: ignore[return-value]


def loss_dual(
    h: torch.Tensor,
    y: torch.Tensor,
    db: DualBatch,
    towers,
    marginal_raw: list[torch.Tensor],
    gamma: float,
    mode: str = "expectation",
) -> torch.Tensor:
    """Probabilistic duality, ``γ · mean_{D12∪D1∪D2} E[(log P̂(y1|x) + log P_f(y2|x,y1)
    − log P̂(y2|x) − log P_g(y1|x,y2))²]``; the expectation runs over imputed class labels
    (``mode``), ``P̂`` is the fixed marginal model's output ``marginal_raw``."""
    rows = db.parts["D12"] | db.parts["D1"] | db.parts["D2"]
    if not rows.any():
        return h.new_zeros(())
    m = ~torch.isnan(y)
    kinds = [towers[k].out_kind for k in range(2)]
    # the imputed label is the measure the gap is averaged over, not something this loss may
    # move: with a gradient through its weights (or an imputed value) the cheapest way to
    # shrink the gap is to make the imputation confident where the gap is small. So the
    # imputed states enter as constants here under either freeze scope; the encoder learns
    # through the imputation only in loss_rec (freeze_scope "tower", SPEC §3).
    sup = [kinds[k].support(y[:, k], m[:, k], db.states[k].detach(), mode) for k in range(2)]
    # tower2 conditioned on each value of y1, tower1 on each value of y2
    raw2 = [towers[1](h, s1) for (_, s1, _) in sup[0]]
    raw1 = [towers[0](h, s2) for (_, s2, _) in sup[1]]
    total = h.new_zeros(h.shape[0])
    for i, (v1, _, w1) in enumerate(sup[0]):
        lp_hat1 = kinds[0].log_prob(marginal_raw[0], v1)
        for j, (v2, _, w2) in enumerate(sup[1]):
            gap = (
                lp_hat1
                + kinds[1].log_prob(raw2[i], v2)
                - kinds[1].log_prob(marginal_raw[1], v2)
                - kinds[0].log_prob(raw1[j], v1)
            )
            total = total + w1 * w2 * gap**2
    return gamma * total[rows].mean()


def dual_available(towers) -> bool:
    """``loss_dual`` needs a probability for both labels (the marginal model's heads are of
    the same kinds as the towers')."""
    return all(t.out_kind.has_log_prob for t in towers)


def dll_losses(
    h: torch.Tensor,
    y: torch.Tensor,
    towers,
    weights: LossWeights,
    marginal_raw: list[torch.Tensor] | None,
) -> dict[str, torch.Tensor]:
    """One mini-batch of Algorithm 1: impute, then the enabled loss terms and their sum."""
    w = weights
    db = forward_dual(h, y, towers, w.freeze_scope)
    out: dict[str, torch.Tensor] = {}
    if "sup" in w.terms:
        out["loss_sup"] = loss_sup(db, y, towers, w.alpha)
    if "rec" in w.terms:
        out["loss_rec"] = loss_rec(db, y, towers, w.beta)
    if "dual" in w.terms and marginal_raw is not None:
        out["loss_dual"] = loss_dual(h, y, db, towers, marginal_raw, w.gamma, w.dual_imputed)
    out["loss"] = sum(out.values()) if out else h.new_zeros(())  # type: ignore[assignment]
    return out
