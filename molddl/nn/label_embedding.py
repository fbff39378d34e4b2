"""Label embeddings ``L(y)`` (SPEC §2)."""

from __future__ import annotations

import torch
from torch import nn

from molddl.data.labels import LabelSpec, label_kind


class LabelEmbedding(nn.Module):
    r"""Embed a label state.

    For a class label :math:`L(y) = \sum_c p_c e_c` over a learned table :math:`e_c`, with
    :math:`p` one-hot for a hard label and a probability vector for a soft one; for a
    regression label :math:`L(y) = W z(y) + b`. The label's kind
    (:mod:`molddl.data.labels`) owns the parameters and the map.

    Shapes:
        input ``b x state_size`` → output ``b x dim``
    """

    def __init__(self, spec: LabelSpec, dim: int) -> None:
        super().__init__()
        self.spec = spec
        self.kind = label_kind(spec)
        self.dim = dim
        self.kind.build_embedding(self, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.kind.reset_embedding(self)

    def weights(self, state: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``p`` of shape ``b x C`` from a state (class labels)."""
        return self.kind.class_probs(state)

    def projection(self, W_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(M, c)`` with ``W_y L(s) = s M + c`` (see :meth:`Tower.label_projection`)."""
        return self.kind.projection(self, W_y)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.kind.embed(self, state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.name}, {self.spec.kind}, dim={self.dim})"
