"""Algorithm 2: direct and alternate inference over label states (SPEC §4).

The encoder output ``h`` is constant across iterations, so each tower's first layer is split
into ``W_h h`` (computed once) and ``W_y L(y)``; the latter is linear in the label state and
folds into ``state @ M + c`` (:meth:`Tower.label_projection`). An iteration is then one small
product, a ReLU and the tower's output layer, batched over every unconverged sample, on the
device of the tensors. On the CPU the same iteration runs as machine code that numba compiles
on first use (:mod:`molddl.inference.kernel`, ``inference.kernel``).

The PyTorch loop asks the device whether any sample is left only every
``inference.sync_every`` iterations (on a GPU that question waits for every queued kernel);
in between, samples that leave are recorded and frozen by masks on the device.
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
    do samples caught in a period-2 cycle (``cfg.cycles``). The PyTorch loop drops them every
    ``cfg.sync_every`` iterations and freezes them in between: the same outcome, to float
    rounding.

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


@dataclass(slots=True, frozen=True)
class _Loop:
    """What the PyTorch loop's iterations share: the towers, their folded label paths and
    the settings, read once."""

    towers: list[Tower]
    M1: torch.Tensor
    M2: torch.Tensor
    gauss_seidel: bool
    damping: float
    tol: float
    check_cycles: bool  # tol ≤ 0 is a fixed workload: no cycle check
    resolve: bool  # cycles=fixed_point where its two fixed points pair up
    max_iter: int


Pair = tuple[torch.Tensor, torch.Tensor]  # a label state per label, rows x s1 and rows x s2


@dataclass(slots=True)
class _Work:
    """The PyTorch loop's working set: the samples not written to the result yet, one row each.

    Every row is live when a block of iterations starts. A row that leaves within the block is
    marked in ``left`` and keeps in ``S`` the state it leaves with, in ``res`` its residual
    and in ``it`` the iteration it left at (``it`` is ``None`` while every row that left did
    so at the block's first iteration), until the block's end writes it to the result and
    drops it.
    """

    idx: torch.Tensor  # each row's sample
    H1: torch.Tensor  # W_h h + c, per tower: what does not change between iterations
    H2: torch.Tensor
    S: Pair
    P: Pair | None  # the states two iterations back, for the period-2 check
    start: Pair | None  # the initial states, for cycles=fixed_point
    left: torch.Tensor | None = None  # set by a block: the rows that left in it
    it: torch.Tensor | None = None
    res: torch.Tensor | None = None  # the change of each row's last iteration

    def take(self, rows: torch.Tensor) -> _Work:
        """The working set of ``rows`` only (with their residuals), for the next block."""
        P, start, res = self.P, self.start, self.res
        return _Work(
            self.idx[rows],
            self.H1[rows],
            self.H2[rows],
            _rows(self.S, rows),
            None if P is None else _rows(P, rows),
            None if start is None else _rows(start, rows),
            res=None if res is None else res[rows],
        )


def _rows(pair: Pair, rows: torch.Tensor) -> Pair:
    return pair[0][rows], pair[1][rows]


def _distance(a: Pair, b: Pair) -> torch.Tensor:
    """Largest state difference per sample between two label-state pairs."""
    return torch.maximum((a[0] - b[0]).abs().amax(-1), (a[1] - b[1]).abs().amax(-1))


def _setup(towers, hh, init, cfg: InferenceConfig) -> tuple[_Loop, _Work]:
    """The loop's constants and its first working set (every sample, live)."""
    (M1, c1), (M2, c2) = towers[0].label_projection(), towers[1].label_projection()
    loop = _Loop(
        list(towers),
        M1,
        M2,
        cfg.method == "gauss_seidel",
        cfg.damping,
        cfg.tol,
        cfg.cycles != "continue" and cfg.tol > 0,
        # the chains' fixed points pair up as (S1ᵗ⁻¹, S2ᵗ) and (S1ᵗ, S2ᵗ⁻¹) only for plain Jacobi
        cfg.cycles == "fixed_point" and cfg.method == "jacobi" and cfg.damping == 0,
        cfg.max_iter,
    )
    start = (init[0], init[1])
    idx = torch.arange(init[0].shape[0], device=init[0].device)
    return loop, _Work(idx, hh[0] + c1, hh[1] + c2, start, None, start if loop.resolve else None)


def _iterate(w: _Work, first: int, last: int, loop: _Loop) -> _Work:
    """Iterations ``first`` … ``last`` over the working set ``w`` (every row live), without
    waiting for the device: a row that converges or enters a period-2 cycle is recorded and
    frozen by masks, and nothing here asks for a tensor's value (tested). Every row is computed
    each iteration; a frozen row's result is thrown away."""
    kind1, kind2 = loop.towers[0].out_kind, loop.towers[1].out_kind
    d = loop.damping
    (S1, S2), P = w.S, w.P
    live: torch.Tensor | None = None  # None while every row is
    it: torch.Tensor | None = None  # None while every row that left did so at `first`
    res = left = None
    for t in range(first, last + 1):
        N2 = kind2.to_state(loop.towers[1].step(w.H2, loop.M2, S1))
        N1 = kind1.to_state(loop.towers[0].step(w.H1, loop.M1, N2 if loop.gauss_seidel else S2))
        if d > 0:
            N1, N2 = (1 - d) * N1 + d * S1, (1 - d) * N2 + d * S2
        delta = _distance((N1, N2), (S1, S2))  # the largest change of either label
        done = delta < loop.tol
        if live is not None:
            done &= live
        cyc = None
        if P is not None:
            cyc = (_distance((N1, N2), P) < loop.tol / 100) & ~done
            if live is not None:
                cyc &= live
        leave = done if cyc is None else done | cyc
        # what a row leaves with: N, or for a cycle the state the rule picks
        new1, new2 = N1, N2
        if cyc is not None and loop.resolve:
            assert w.start is not None  # kept for resolve
            # the chains through ŷ1ᵗ⁻¹ and through ŷ2ᵗ⁻¹; the one nearer the start
            a = cyc & (_distance((S1, N2), w.start) <= _distance((N1, S2), w.start))
            b = (cyc & ~a).unsqueeze(-1)
            a = a.unsqueeze(-1)
            new1, new2 = torch.where(a, S1, N1), torch.where(b, S2, N2)
        elif cyc is not None and (loop.max_iter - t) % 2:
            # the state of iteration max_iter has t's parity or the other's: then S
            c = cyc.unsqueeze(-1)
            new1, new2 = torch.where(c, S1, N1), torch.where(c, S2, N2)
        if live is None:
            res = delta
        else:
            assert res is not None  # set at the block's first iteration
            res = torch.where(live, delta, res)
            keep = live.unsqueeze(-1)  # a frozen row keeps its state
            new1, new2 = torch.where(keep, new1, S1), torch.where(keep, new2, S2)
            it = (torch.full_like(w.idx, first) if it is None else it).masked_fill(leave, t)
        if loop.check_cycles:
            P = (S1, S2)
        S1, S2 = new1, new2
        if t < last:  # leave holds live rows only
            live = ~leave if live is None else live ^ leave
        else:
            left = leave if live is None else ~live | leave
    return _Work(w.idx, w.H1, w.H2, (S1, S2), P, w.start, left, it, res)


def _torch_loop(towers, hh, init, cfg: InferenceConfig) -> AlternateResult:
    """Alternate inference in PyTorch on the device of ``init``.

    Blocks of ``cfg.sync_every`` iterations (:meth:`InferenceConfig.iterations_per_sync`) run
    without waiting for the device (:func:`_iterate`); after each block the host asks once
    which samples are left, writes those that left to the result and drops them from the
    working set. ``sync_every: 1`` is the loop that drops samples as they leave. A sample
    goes through the same operations whatever the block size; only its place in the batch
    differs, which PyTorch's kernels (a matrix product, a vectorised sigmoid) may round by, as
    they do while samples leave. So outcomes agree to float rounding, and exactly where each
    row is computed on its own (``tests/unit/inference/test_alternate_sync.py``).
    """
    n, device = init[0].shape[0], init[0].device
    every = cfg.iterations_per_sync(device.type)
    out = [s.clone() for s in init]
    iterations = torch.zeros(n, dtype=torch.long, device=device)
    converged = torch.zeros(n, dtype=torch.bool, device=device)
    cycle = torch.zeros(n, dtype=torch.bool, device=device)
    residual = torch.zeros(n, device=device)
    loop, w = _setup(towers, hh, init, cfg)

    t = 0
    while t < cfg.max_iter and w.idx.numel():
        first, t = t + 1, min(t + every, cfg.max_iter)
        w = _iterate(w, first, t, loop)
        assert w.left is not None and w.res is not None  # set by every block
        gone = w.left.nonzero().squeeze(-1)  # the block's one wait for the device
        if gone.numel():
            gi = w.idx[gone]
            out[0][gi], out[1][gi] = w.S[0][gone], w.S[1][gone]
            iterations[gi] = first if w.it is None else w.it[gone]
            residual[gi] = w.res[gone]
            # a row left either converged (its change below tol) or in a period-2 cycle
            done = w.res[gone] < cfg.tol
            converged[gi], cycle[gi] = done, ~done
            w = w.take((~w.left).nonzero().squeeze(-1))
    if t == cfg.max_iter and t > 0 and w.idx.numel():  # the rows that ran to max_iter
        assert w.res is not None
        out[0][w.idx], out[1][w.idx] = w.S
        iterations[w.idx], residual[w.idx] = t, w.res
    return AlternateResult(out, iterations, converged, residual, cycle)
