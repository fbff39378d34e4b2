"""The three DLL losses (SPEC §3, paper eq. 3): ``loss_sup``, ``loss_rec``, ``loss_dual``.

All take a batch's encoder output ``h``, labels ``y`` (``b x 2``; class index or standardised
value, NaN where missing) and the towers; each equation has its one function here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch.func import functional_call

from molddl.config import TrainConfig
from molddl.nn.heads import (
    gaussian_log_prob,
    has_log_prob,
    log_prob_all,
    nll,
    target_state,
    to_state,
)
from molddl.nn.towers import Tower

logger = logging.getLogger(__name__)


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
    specs = [towers[k].out_spec for k in range(2)]
    known = [target_state(specs[k], y[:, k]) for k in range(2)]
    states = []
    for k in range(2):  # towers[k] predicts label k: it imputes label k where only 1-k is known
        s_k = known[k]
        needs = ~m[:, k] & m[:, 1 - k]
        if needs.any():
            if freeze_scope == "imputation":
                with torch.no_grad():
                    imputed = to_state(specs[k], towers[k](h.detach(), known[1 - k]))
            else:
                imputed = to_state(specs[k], frozen_call(towers[k], h, known[1 - k]))
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
        alpha[k] * _masked_mean(nll(towers[k].out_spec, db.raw[k], yf[:, k]), db.parts["D12"])
        for k in range(2)
    )  # type: ignore[return-value]


def loss_rec(db: DualBatch, y: torch.Tensor, towers, beta: tuple[float, float]) -> torch.Tensor:
    """``β1 · mean_D1 ℓ1(g(x, ŷ2), y1) + β2 · mean_D2 ℓ2(f(x, ŷ1), y2)`` with ŷ imputed by the
    frozen opposite tower (see :func:`forward_dual`)."""
    yf = torch.nan_to_num(y)
    own = ("D1", "D2")
    return sum(
        beta[k] * _masked_mean(nll(towers[k].out_spec, db.raw[k], yf[:, k]), db.parts[own[k]])
        for k in range(2)
    )  # type: ignore[return-value]


def _support(spec, y_k, present, state, mode):
    """Values of label ``k`` to average the duality gap over, with per-sample weights.

    Class label: every class ``c`` with weight 1 for a known label's class, or the imputed
    probability (``expectation``) / 1 for the most probable class (``argmax``).
    Value label: one point, the known or imputed standardised value, weight 1.
    Returns a list of ``(value b, state b x s, weight b)``.
    """
    if not spec.is_class:
        value = torch.where(present, torch.nan_to_num(y_k), state[:, 0])
        return [(value, value.unsqueeze(-1), torch.ones_like(value))]
    C = spec.n_classes
    probs = torch.cat([1 - state, state], -1) if spec.kind == "binary" else state
    if mode == "argmax":
        probs = torch.nn.functional.one_hot(probs.argmax(-1), C).to(probs.dtype)
    onehot_true = torch.nn.functional.one_hot(torch.nan_to_num(y_k).long(), C).to(probs.dtype)
    weights = torch.where(present.unsqueeze(-1), onehot_true, probs)
    out = []
    for c in range(C):
        value = torch.full_like(y_k, float(c))
        s = target_state(spec, value)
        out.append((value, s, weights[:, c]))
    return out


def _log_prob(spec, raw: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    if spec.is_class:
        return log_prob_all(spec, raw).gather(1, value.long().unsqueeze(-1)).squeeze(-1)
    return gaussian_log_prob(raw, value)


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
    specs = [towers[k].out_spec for k in range(2)]
    sup = [_support(specs[k], y[:, k], m[:, k], db.states[k], mode) for k in range(2)]
    # tower2 conditioned on each value of y1, tower1 on each value of y2
    raw2 = [towers[1](h, s1) for (_, s1, _) in sup[0]]
    raw1 = [towers[0](h, s2) for (_, s2, _) in sup[1]]
    total = h.new_zeros(h.shape[0])
    for i, (v1, _, w1) in enumerate(sup[0]):
        lp_hat1 = _log_prob(specs[0], marginal_raw[0], v1)
        for j, (v2, _, w2) in enumerate(sup[1]):
            gap = (
                lp_hat1
                + _log_prob(specs[1], raw2[i], v2)
                - _log_prob(specs[1], marginal_raw[1], v2)
                - _log_prob(specs[0], raw1[j], v1)
            )
            total = total + w1 * w2 * gap**2
    return gamma * total[rows].mean()


def dual_available(towers, marginal_raw_sizes: list[int]) -> bool:
    """``loss_dual`` needs a probability for both labels from towers and marginal heads."""
    for k in range(2):
        spec = towers[k].out_spec
        if not (
            has_log_prob(spec, towers[k].raw_size) and has_log_prob(spec, marginal_raw_sizes[k])
        ):
            return False
    return True


def dll_losses(
    h: torch.Tensor,
    y: torch.Tensor,
    towers,
    cfg: TrainConfig,
    marginal_raw: list[torch.Tensor] | None,
) -> dict[str, torch.Tensor]:
    """One mini-batch of Algorithm 1: impute, then the enabled loss terms and their sum."""
    db = forward_dual(h, y, towers, cfg.freeze_scope)
    out: dict[str, torch.Tensor] = {}
    if "sup" in cfg.losses:
        out["loss_sup"] = loss_sup(db, y, towers, (cfg.alpha1, cfg.alpha2))
    if "rec" in cfg.losses:
        out["loss_rec"] = loss_rec(db, y, towers, (cfg.beta1, cfg.beta2))
    if "dual" in cfg.losses and marginal_raw is not None:
        out["loss_dual"] = loss_dual(h, y, db, towers, marginal_raw, cfg.gamma, cfg.dual_imputed)
    out["loss"] = sum(out.values()) if out else h.new_zeros(())  # type: ignore[assignment]
    return out
