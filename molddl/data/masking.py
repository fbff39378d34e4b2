"""Synthetic missingness: hide labels completely at random (SPEC §1)."""

from __future__ import annotations

import numpy as np

from molddl.data.dataset import DualLabelDataset


def mask_labels(y: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """Hide each present label independently with probability ``rate``.

    Parameters
    ----------
    y
        Labels of shape ``n x K``; NaN marks a missing label.
    rate
        Missing rate in ``[0, 1)``; with two fully present labels and ``rate = 0.4`` the parts
        ``D12 / D1 / D2 / D0`` hold about 36 / 24 / 24 / 16 %.
    seed
        Seed of the random draw; the same seed gives the same mask.

    Returns
    -------
    A copy of ``y`` with the hidden labels set to NaN.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"missing rate must be in [0, 1), got {rate}")
    hide = np.random.default_rng(seed).random(y.shape) < rate
    out = np.array(y, dtype=np.float64)
    out[hide] = np.nan
    return out


def apply_missingness(
    train: DualLabelDataset,
    val: DualLabelDataset,
    test: DualLabelDataset,
    rate: float,
    seed: int,
) -> tuple[DualLabelDataset, DualLabelDataset, DualLabelDataset]:
    """Mask the training and validation parts after the split; the test part keeps its truth."""
    return (
        train.with_labels(mask_labels(train.y, rate, seed)),
        val.with_labels(mask_labels(val.y, rate, seed + 1_000_003)),
        test,
    )
