"""A synthetic dual-label generator whose second label needs the first one.

Used by tests and examples to check that Dual-Label Learning exploits the dependence between
the labels: the marginal model sees ``x`` only, the towers also see the other label.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from molddl.data.dataset import DualLabelDataset
from molddl.data.labels import LabelSpec
from molddl.data.masking import mask_labels

SyntheticKind = Literal["binary", "regression", "mixed"]
KINDS: tuple[str, ...] = ("binary", "regression", "mixed")


def make_dual_label(
    n: int = 3000,
    n_features: int = 10,
    kind: SyntheticKind = "binary",
    missing_rate: float = 0.0,
    seed: int = 0,
) -> DualLabelDataset:
    r"""Tabular samples ``(x, y1, y2)`` where ``y2`` depends strongly on ``y1``.

    Construction
    ------------
    A hidden factor :math:`z \sim N(0, 1)` is drawn per sample and is *not* part of ``x``;
    the features are :math:`x \sim N(0, I_d)`. Then, with :math:`\epsilon_i \sim N(0, 1)`:

    * ``binary``:
      :math:`y_1 = 1[x_0 + 1.5 z > 0]`,
      :math:`y_2 = 1[0.5 x_1 + 1.5 z + 0.8 (2 y_1 - 1) > 0]`;
    * ``regression``:
      :math:`y_1 = x_0 + 1.5 z + 0.3 \epsilon_1`,
      :math:`y_2 = 0.5 x_1 + 1.5 z + 0.8 y_1 + 0.3 \epsilon_2`;
    * ``mixed``: binary :math:`y_1` as in ``binary``, regression
      :math:`y_2 = 0.5 x_1 + 1.5 z + 0.8 (2 y_1 - 1) + 0.3 \epsilon_2`.

    Because ``z`` enters both labels and is invisible in ``x``, ``x`` alone predicts ``y2``
    poorly, while ``y1`` carries most of the information on ``z``: a model of
    ``P(y2 | x, y1)`` (the primal tower) beats any model of ``P(y2 | x)`` (the marginal
    model) by a wide margin, and symmetrically for ``y1`` given ``(x, y2)``.

    Parameters
    ----------
    n
        Number of samples.
    n_features
        Number of features, at least 2 (``x0`` and ``x1`` drive the labels, the rest is
        noise).
    kind
        ``"binary"``, ``"regression"`` or ``"mixed"`` (binary ``y1``, regression ``y2``).
    missing_rate
        Each label is hidden completely at random with this probability
        (:func:`molddl.data.masking.mask_labels`); 0 keeps every label.
    seed
        Seed of every random draw: the same arguments give identical arrays.

    Returns
    -------
    DualLabelDataset
        ``X`` of shape ``n x n_features`` (float32, columns ``x0 ..``), labels ``y1``, ``y2``
        with NaN where hidden, ids ``s0 ..``, name ``synthetic-<kind>``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    if n_features < 2:
        raise ValueError(f"n_features must be at least 2, got {n_features}")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_features))
    z = rng.standard_normal(n)
    eps = rng.standard_normal((n, 2))
    # the label kinds of each setting; y2 depends on y1 through a ±0.8 shift (classes) or
    # 0.8 y1 (values)
    kinds = {
        "binary": ("binary", "binary"),
        "regression": ("regression", "regression"),
        "mixed": ("binary", "regression"),
    }[kind]
    y1_value = X[:, 0] + 1.5 * z + 0.3 * eps[:, 0]
    y1 = y1_value if kinds[0] == "regression" else (X[:, 0] + 1.5 * z > 0).astype(np.float64)
    shift = 0.8 * y1 if kinds[0] == "regression" else 0.8 * (2 * y1 - 1)
    s2 = 0.5 * X[:, 1] + 1.5 * z + shift
    y2 = s2 + 0.3 * eps[:, 1] if kinds[1] == "regression" else (s2 > 0).astype(np.float64)
    specs = (LabelSpec("y1", kinds[0]), LabelSpec("y2", kinds[1]))  # type: ignore[arg-type]
    y = np.stack([y1, y2], axis=1)
    if missing_rate > 0:
        y = mask_labels(y, missing_rate, seed=seed + 1)
    return DualLabelDataset(
        y=y,
        labels=specs,
        ids=np.array([f"s{i}" for i in range(n)]),
        row=np.arange(n),
        X=X.astype(np.float32),
        feature_names=tuple(f"x{j}" for j in range(n_features)),
        name=f"synthetic-{kind}",
    )
