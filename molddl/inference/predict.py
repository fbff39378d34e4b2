"""Algorithm 2 as a policy over a batch of samples (SPEC §4): known labels are kept, a label
whose partner is known is predicted directly, a sample with no known label is solved by
alternate inference from the marginal model (or the prior), and a diverged sample falls back
to the marginal prediction.

The encoders run only where their output is used, batched, on the model's device, under
autocast when ``inference.precision`` asks for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch

from molddl.config import InferenceConfig
from molddl.data.preprocess import Prepared, Preprocessor
from molddl.inference.alternate import alternate, direct
from molddl.models.nets import DualTowerNet, MarginalNet
from molddl.nn.towers import Tower


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when present, else the CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA device is available")
    return torch.device(name)


@dataclass(slots=True)
class Prediction:
    """Label states for ``n`` samples and how each was obtained.

    Attributes
    ----------
    states
        ``[n x s1, n x s2]``: probabilities (class labels) or standardised values.
    source
        ``n x K`` strings: ``given``, ``direct``, ``alternate`` or ``marginal``.
    iterations, converged
        Alternate-inference iterations and convergence per sample (0 / True otherwise).
    """

    states: list[torch.Tensor]
    source: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray

    @classmethod
    def empty(cls, pre: Preprocessor) -> Prediction:
        """A prediction for no sample, with the label states' widths."""
        widths = [k.state_size for k in pre.kinds]
        return cls(
            [torch.empty(0, w) for w in widths],
            np.empty((0, len(widths)), dtype=object),
            np.empty(0, dtype=np.int64),
            np.empty(0, dtype=bool),
        )


def diverged_samples(kinds, states, converged, max_abs_z: float) -> torch.Tensor:
    """Unconverged samples whose value label left the data's scale: a standardised value
    beyond ``max_abs_z`` (or not finite). Class states are probabilities and cannot
    diverge."""
    out = torch.zeros_like(converged)
    for kind, s in zip(kinds, states, strict=True):
        out |= kind.diverged(s, max_abs_z)
    return out & ~converged


@torch.inference_mode()
def encode(
    net: DualTowerNet,
    marginal: MarginalNet,
    data: Prepared,
    device: torch.device,
    batch_size: int,
    precision: str = "fp32",
    rows_h: np.ndarray | None = None,
    rows_m: np.ndarray | None = None,
):
    """``h`` from the dual encoder for the samples ``rows_h`` and the marginal raw outputs
    for ``rows_m`` (boolean masks; ``None``: every sample), in fp32, computed under
    autocast when ``precision`` is bf16 / fp16. Rows not asked for hold NaN."""
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("inference.precision fp16 needs a CUDA device; use bf16 on CPU")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    n = len(data)
    all_rows = np.ones(n, dtype=bool)
    rows_h = all_rows if rows_h is None else np.asarray(rows_h, dtype=bool)
    rows_m = all_rows if rows_m is None else np.asarray(rows_m, dtype=bool)
    net, marg = net.to(device).eval(), marginal.to(device).eval()
    H = torch.full((n, net.encoder.out_dim), float("nan"), device=device)
    M = [torch.full((n, k.raw_size), float("nan"), device=device) for k in marginal.kinds]
    for rows, which in ((rows_h, "h"), (rows_m, "m")):
        idx = np.flatnonzero(rows)
        for start in range(0, len(idx), batch_size):
            part = idx[start : start + batch_size]
            x = data.batch(part)[0].to(device)
            at = torch.from_numpy(part).to(device)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                if which == "h":
                    H[at] = net.encoder(x).float()
                else:
                    for k, r in enumerate(marg(x)):
                        M[k][at] = r.float()
    return H, M


@torch.inference_mode()
def predict_states(
    net: DualTowerNet,
    marginal: MarginalNet,
    pre: Preprocessor,
    data: Prepared,
    icfg: InferenceConfig,
    device: torch.device,
    mode: str = "dll",
) -> Prediction:
    """Label states for prepared samples (``data.y`` holds the known labels, NaN the
    unknown); ``mode="marginal"`` uses the marginal model only."""
    n = len(data)
    known = ~np.isnan(data.y.cpu().numpy())
    some_missing, none_known = ~known.all(axis=1), ~known.any(axis=1)
    # the dual encoder runs for every sample with a missing label, the marginal model where
    # no label is known (its prediction starts alternate inference and is the fallback of a
    # diverged sample)
    H, mraw = encode(
        net,
        marginal,
        data,
        device,
        icfg.encoder_batch_size(device.type),
        icfg.precision,
        rows_h=np.zeros(n, dtype=bool) if mode == "marginal" else some_missing,
        rows_m=some_missing if mode == "marginal" else none_known,
    )
    kinds = marginal.kinds
    y = data.y.to(device)
    m = ~torch.isnan(y)
    marg_states = [kinds[k].to_state(mraw[k]) for k in range(2)]
    states = [
        torch.where(m[:, k : k + 1], kinds[k].target_state(y[:, k]), marg_states[k])
        for k in range(2)
    ]
    source = np.where(m.cpu().numpy(), "given", "marginal").astype(object)
    iterations = np.zeros(n, dtype=np.int64)
    converged = np.ones(n, dtype=bool)
    if mode == "marginal":
        return Prediction([s.cpu() for s in states], source, iterations, converged)
    towers = cast(Sequence[Tower], net.towers)  # a ModuleList of the two towers
    hh = [towers[k].encode_h(H) for k in range(2)]
    for k in range(2):
        rows = ~m[:, k] & m[:, 1 - k]
        if rows.any():
            states[k][rows] = direct(towers[k], hh[k][rows], states[1 - k][rows])
            source[rows.cpu().numpy(), k] = "direct"
    none = ~m.any(dim=1)
    if none.any() and icfg.max_iter > 0:
        count = int(none.sum())
        if icfg.init == "marginal":
            init = [marg_states[k][none] for k in range(2)]
        else:
            init = [kinds[k].prior_state(pre.prior[k], count, device) for k in range(2)]
        res = alternate(towers, [hh[0][none], hh[1][none]], init, icfg)
        diverged = diverged_samples(kinds, res.states, res.converged, icfg.max_abs_z)
        for k in range(2):  # a diverged pair falls back to the marginal prediction
            res.states[k][diverged] = marg_states[k][none][diverged]
            states[k][none] = res.states[k]
        rows_none = np.flatnonzero(none.cpu().numpy())
        source[rows_none] = "alternate"
        source[rows_none[diverged.cpu().numpy()]] = "marginal"
        iterations[rows_none] = res.iterations.cpu().numpy()
        converged[rows_none] = res.converged.cpu().numpy()
    return Prediction([s.cpu() for s in states], source, iterations, converged)
