"""Label embeddings ``L(y)`` (SPEC §2)."""

from __future__ import annotations

import torch
from torch import nn

from molddl.data.labels import LabelSpec


class LabelEmbedding(nn.Module):
    r"""Embed a label state.

    For a class label :math:`L(y) = \sum_c p_c e_c` over a learned table :math:`e_c`, with
    :math:`p` one-hot for a hard label and a probability vector for a soft one; for a
    regression label :math:`L(y) = W z(y) + b`.

    Shapes:
        input ``b x state_dim`` → output ``b x dim``
    """

    def __init__(self, spec: LabelSpec, dim: int) -> None:
        super().__init__()
        self.spec = spec
        self.dim = dim
        if spec.is_class:
            self.table = nn.Parameter(torch.empty(spec.n_classes, dim))
        else:
            self.linear = nn.Linear(1, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.spec.is_class:
            nn.init.normal_(self.table, std=1.0)
        else:
            self.linear.reset_parameters()

    def weights(self, state: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``p`` of shape ``b x C`` from a state."""
        if self.spec.kind == "binary":
            return torch.cat([1 - state, state], dim=-1)
        return state

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        if self.spec.is_class:
            return self.weights(state) @ self.table
        return self.linear(state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.name}, {self.spec.kind}, dim={self.dim})"
