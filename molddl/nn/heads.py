"""Label heads: raw outputs, label states, per-sample losses and log-probabilities.

Every label travels through the model as a *state* vector:

* binary → probability of class 1, shape ``b x 1``
* multiclass → class probabilities, shape ``b x C``
* regression → standardised value ``z``, shape ``b x 1``

A hard label is the one-hot (or 0/1) state, a predicted label its probabilities, so soft
labels and hard labels take the same path (SPEC §2).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from molddl.data.labels import LabelSpec

LOG_2PI = math.log(2 * math.pi)


def raw_dim(spec: LabelSpec, gaussian: bool) -> int:
    """Size of a head's raw output: logits, or mean (and log-variance)."""
    if spec.kind == "binary":
        return 1
    if spec.kind == "multiclass":
        return spec.n_classes
    return 2 if gaussian else 1


def state_dim(spec: LabelSpec) -> int:
    return spec.n_classes if spec.kind == "multiclass" else 1


def to_state(spec: LabelSpec, raw: torch.Tensor) -> torch.Tensor:
    """The label state a head's raw output stands for (shape ``b x state_dim``)."""
    if spec.kind == "binary":
        return torch.sigmoid(raw)
    if spec.kind == "multiclass":
        return torch.softmax(raw, dim=-1)
    return raw[:, :1]


def target_state(spec: LabelSpec, y: torch.Tensor) -> torch.Tensor:
    """The state of known labels ``y`` (shape ``b``; class index or ``z``); NaN → 0."""
    y = torch.nan_to_num(y, nan=0.0)
    if spec.kind == "multiclass":
        return F.one_hot(y.long(), spec.n_classes).to(torch.float32)
    return y.to(torch.float32).unsqueeze(-1)


def nll(spec: LabelSpec, raw: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample supervised loss ``ℓ`` (shape ``b``): BCE, CE, MSE or Gaussian NLL.

    ``y`` holds class indices or standardised values (shape ``b``), no NaN.
    """
    if spec.kind == "binary":
        return F.binary_cross_entropy_with_logits(raw[:, 0], y.float(), reduction="none")
    if spec.kind == "multiclass":
        return F.cross_entropy(raw, y.long(), reduction="none")
    if raw.shape[1] == 2:
        return -gaussian_log_prob(raw, y)
    return (raw[:, 0] - y) ** 2


def gaussian_log_prob(raw: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    mean, log_var = raw[:, 0], raw[:, 1].clamp(-10.0, 10.0)
    return -0.5 * (LOG_2PI + log_var + (y - mean) ** 2 / log_var.exp())


def log_prob_all(spec: LabelSpec, raw: torch.Tensor) -> torch.Tensor:
    """``log P(y = c)`` for every class ``c`` of a class label, shape ``b x C``."""
    if spec.kind == "binary":
        return torch.cat([F.logsigmoid(-raw), F.logsigmoid(raw)], dim=-1)
    return torch.log_softmax(raw, dim=-1)


def has_log_prob(spec: LabelSpec, raw_size: int) -> bool:
    """Whether the head defines a probability: classes always, values with a Gaussian head."""
    return spec.is_class or raw_size == 2
