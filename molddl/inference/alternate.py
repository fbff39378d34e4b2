"""Algorithm 2: direct and alternate inference over label states (SPEC §4).

The encoder output ``h`` is constant across iterations, so each tower's first layer is split
into ``W_h h`` (computed once) and ``W_y L(y)``; the latter is linear in the label state and
folds into ``state @ M + c`` (:meth:`Tower.label_projection`). An iteration is then one small
product, a ReLU and the tower's output layer, batched over every unconverged sample, on the
device of the tensors. On the CPU the same iteration runs as machine code that numba compiles
on first use (:mod:`molddl.inference.kernel`, ``inference.kernel``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from molddl.config import ConfigError, InferenceConfig
from molddl.nn.towers import Tower

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class AlternateResult:
    """Outcome of alternate inference for ``n`` samples.

    Attributes
    ----------
    states
        Final label states ``[n x s1, n x s2]``.
    iterations
        Iterations each sample ran, shape ``n``.
    converged
        Whether each sample's largest state change fell below the tolerance, shape ``n``.
    residual
        Each sample's largest state change at its last iteration, shape ``n``.
    cycle
        Whether each sample left the loop in a period-2 cycle (``InferenceConfig.cycles``),
        shape ``n``; such a sample has not converged.
    """

    states: list[torch.Tensor]
    iterations: torch.Tensor
    converged: torch.Tensor
    residual: torch.Tensor
    cycle: torch.Tensor


def direct(tower: Tower, hh: torch.Tensor, other_state: torch.Tensor) -> torch.Tensor:
    """Direct inference: ``ŷ = T(h, y_other)`` from the precomputed ``W_h h``."""
    return tower.out_kind.to_state(tower.from_parts(hh, other_state))


@torch.inference_mode()
def alternate(
    towers,
    hh: list[torch.Tensor],
    init: list[torch.Tensor],
    cfg: InferenceConfig,
) -> AlternateResult:
    """Iterate ``ŷ2ᵗ = f(x, ŷ1ᵗ⁻¹)``, ``ŷ1ᵗ = g(x, ŷ2ᵗ⁻¹)`` (Jacobi; Gauss–Seidel uses
    ``ŷ2ᵗ`` in the second update) until ``max |ŷᵗ − ŷᵗ⁻¹| < tol`` per sample or ``max_iter``.

    Converged samples leave the working set, so later iterations cost only what is left; so
    do samples caught in a period-2 cycle (``cfg.cycles``).

    Parameters
    ----------
    towers
        ``[tower1, tower2]``; ``towers[k]`` predicts label ``k``.
    hh
        ``[W_h¹ h, W_h² h]`` from :meth:`Tower.encode_h`, each ``n x hidden``.
    init
        Initial states ``[n x s1, n x s2]`` (marginal prediction or prior).
    cfg
        The settings; ``cfg.kernel`` picks the numba loop (:mod:`molddl.inference.kernel`)
        or this function's PyTorch loop.
    """
    n, device = init[0].shape[0], init[0].device
    # auto keeps a GPU model's iterations on the GPU; numba copies them to the CPU kernel
    use_kernel = cfg.kernel == "numba" or (cfg.kernel == "auto" and device.type == "cpu")
    if use_kernel and n and cfg.max_iter > 0:
        from molddl.inference import kernel  # imports numba: only when it is used

        why = kernel.unsupported(towers, hh) or kernel.unavailable()
        if why is None:
            host = [[t.cpu() for t in ts] for ts in (hh, init)]
            states, iterations, status, residual = kernel.run(towers, host[0], host[1], cfg)
            return AlternateResult(
                [torch.from_numpy(s).to(device) for s in states],
                torch.from_numpy(iterations).to(device),
                torch.from_numpy(status == kernel.CONVERGED).to(device),
                torch.from_numpy(residual).to(device),
                torch.from_numpy(status == kernel.CYCLE).to(device),
            )
        if cfg.kernel == "numba":
            raise ConfigError(
                f"config key 'inference.kernel' is 'numba', but {why}; set it to 'auto' "
                "(the numba kernel where it can run) or 'torch'"
            )
        logger.debug("alternate inference in PyTorch: the numba kernel cannot run (%s)", why)
    return _torch_loop(towers, hh, init, cfg)


def _torch_loop(towers, hh, init, cfg: InferenceConfig) -> AlternateResult:
    n = init[0].shape[0]
    device = init[0].device
    out = [s.clone() for s in init]
    iterations = torch.zeros(n, dtype=torch.long, device=device)
    converged = torch.zeros(n, dtype=torch.bool, device=device)
    cycle = torch.zeros(n, dtype=torch.bool, device=device)
    residual = torch.zeros(n, device=device)
    idx = torch.arange(n, device=device)
    (M1, c1), (M2, c2) = towers[0].label_projection(), towers[1].label_projection()
    H1, H2 = hh[0] + c1, hh[1] + c2  # everything that does not change between iterations
    S1, S2 = init[0].clone(), init[1].clone()
    P1 = P2 = None  # the states two iterations back, for the period-2 check
    kind1, kind2 = towers[0].out_kind, towers[1].out_kind
    d = cfg.damping
    check_cycles = cfg.cycles != "continue" and cfg.tol > 0  # tol ≤ 0: a fixed workload
    # the chains' fixed points pair up as (S1ᵗ⁻¹, S2ᵗ) and (S1ᵗ, S2ᵗ⁻¹) only for plain Jacobi
    resolve = cfg.cycles == "fixed_point" and cfg.method == "jacobi" and d == 0
    t = 0
    for t in range(1, cfg.max_iter + 1):
        if idx.numel() == 0:
            break
        N2 = kind2.to_state(towers[1].step(H2, M2, S1))
        N1 = kind1.to_state(towers[0].step(H1, M1, N2 if cfg.method == "gauss_seidel" else S2))
        if d > 0:
            N1, N2 = (1 - d) * N1 + d * S1, (1 - d) * N2 + d * S2
        delta = torch.maximum((N1 - S1).abs().amax(-1), (N2 - S2).abs().amax(-1))
        done = delta < cfg.tol
        cyc = None
        if P1 is not None:
            delta2 = torch.maximum((N1 - P1).abs().amax(-1), (N2 - P2).abs().amax(-1))
            cyc = (delta2 < cfg.tol / 100) & ~done
        leave = done if cyc is None else done | cyc
        if check_cycles:
            P1, P2 = S1, S2
        if leave.any():  # the only host synchronisation of an iteration where no one leaves
            if done.any():
                gi = idx[done]
                out[0][gi], out[1][gi] = N1[done], N2[done]
                iterations[gi], converged[gi], residual[gi] = t, True, delta[done]
            if cyc is not None and cyc.any():
                gi = idx[cyc]
                if resolve:
                    a = [S1[cyc], N2[cyc]]  # the chain through ŷ1ᵗ⁻¹
                    b = [N1[cyc], S2[cyc]]  # the chain through ŷ2ᵗ⁻¹
                    da = _distance(a, [init[0][gi], init[1][gi]])
                    db = _distance(b, [init[0][gi], init[1][gi]])
                    pick = (da <= db).unsqueeze(-1)
                    out[0][gi] = torch.where(pick, a[0], b[0])
                    out[1][gi] = torch.where(pick, a[1], b[1])
                else:  # the state of iteration max_iter, which has t's parity or the other
                    same = (cfg.max_iter - t) % 2 == 0
                    out[0][gi] = N1[cyc] if same else S1[cyc]
                    out[1][gi] = N2[cyc] if same else S2[cyc]
                iterations[gi], cycle[gi], residual[gi] = t, True, delta[cyc]
            keep = ~leave
            idx, H1, H2, N1, N2, delta = (
                idx[keep],
                H1[keep],
                H2[keep],
                N1[keep],
                N2[keep],
                delta[keep],
            )
            if P1 is not None:
                assert P2 is not None  # set with P1
                P1, P2 = P1[keep], P2[keep]
        S1, S2 = N1, N2
        if t == cfg.max_iter and idx.numel():
            out[0][idx], out[1][idx] = S1, S2
            iterations[idx], residual[idx] = t, delta
    return AlternateResult(out, iterations, converged, residual, cycle)


def _distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    """Largest state difference per sample between two label-state pairs."""
    return torch.maximum((a[0] - b[0]).abs().amax(-1), (a[1] - b[1]).abs().amax(-1))
