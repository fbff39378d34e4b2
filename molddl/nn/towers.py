"""Towers: ``T2([h, L1(y1)]) → ŷ2`` and ``T1([h, L2(y2)]) → ŷ1`` (SPEC §2)."""

from __future__ import annotations

import torch
from torch import nn

from molddl.data.labels import LabelSpec, label_kind
from molddl.nn.label_embedding import LabelEmbedding


def mlp(d_in: int, hidden: int, d_out: int, layers: int, dropout: float) -> nn.Sequential:
    """``layers`` linear layers with ReLU and dropout between them."""
    mods: list[nn.Module] = []
    d = d_in
    for _ in range(layers - 1):
        mods += [nn.Linear(d, hidden), nn.ReLU(), nn.Dropout(dropout)]
        d = hidden
    mods.append(nn.Linear(d, d_out))
    return nn.Sequential(*mods)


class Tower(nn.Module):
    r"""Predict label ``out_spec`` from the embedding ``h`` and the other label ``in_spec``.

    The first layer acts on the concatenation :math:`[h, L(y)]`; it is written as
    :math:`W_h h + W_y L(y)`, which is the same function, so that alternate inference can
    compute :math:`W_h h` once (:meth:`encode_h`) and repeat only the label part
    (:meth:`from_parts`). The tower owns its input label's embedding, so freezing a tower
    freezes that embedding too.

    Shapes:
        ``h``: ``b x d_h``, ``state``: ``b x state_size`` of ``in_spec`` → ``b x raw_size``
    """

    def __init__(
        self,
        d_h: int,
        in_spec: LabelSpec,
        out_spec: LabelSpec,
        *,
        label_dim: int = 16,
        hidden: int = 128,
        layers: int = 2,
        dropout: float = 0.1,
        gaussian: bool = False,
    ) -> None:
        super().__init__()
        self.in_spec, self.out_spec = in_spec, out_spec
        self.out_kind = label_kind(out_spec, gaussian)
        self.raw_size = self.out_kind.raw_size
        self.embed = LabelEmbedding(in_spec, label_dim)
        self.lin_h = nn.Linear(d_h, hidden)
        self.lin_y = nn.Linear(label_dim, hidden, bias=False)
        self.body = nn.Sequential(
            nn.ReLU(),
            nn.Dropout(dropout),
            mlp(hidden, hidden, self.raw_size, max(layers - 1, 1), dropout),
        )

    def encode_h(self, h: torch.Tensor) -> torch.Tensor:
        """The part of the first layer that depends on ``h`` only (``b x hidden``)."""
        return self.lin_h(h)

    def from_parts(self, hh: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return self.body(hh + self.lin_y(self.embed(state)))

    def label_projection(self) -> tuple[torch.Tensor, torch.Tensor]:
        r"""``(M, c)`` with ``W_y L(s) = s M + c`` for every label state ``s``.

        The label path is linear in the state: a class embedding is :math:`p E`, a value
        embedding :math:`W z + b`, so :math:`W_y L(s)` folds into one ``state_dim x hidden``
        matrix (a single row for binary and value labels). Alternate inference adds ``c`` to
        ``W_h h`` once and then costs one small product per iteration (:meth:`step`).
        """
        return self.embed.projection(self.lin_y.weight)  # W_y: hidden x label_dim

    def step(self, base: torch.Tensor, M: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """The raw output from ``base = W_h h + c`` and ``(M, c)`` of :meth:`label_projection`;
        equal to :meth:`from_parts` up to rounding."""
        if self.training:  # dropout in body; inference never trains
            return self.body(base + (state * M if M.shape[0] == 1 else state @ M))
        # one fused pass for the label part, the ReLU in place (profiled: the iteration is
        # memory-bound, each extra element-wise pass costs as much as the output layer)
        pre = torch.addcmul(base, state, M) if M.shape[0] == 1 else torch.addmm(base, state, M)
        return self.body[2](pre.relu_())

    def forward(self, h: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return self.from_parts(self.encode_h(h), state)

    def __repr__(self) -> str:
        return f"Tower({self.in_spec.name} → {self.out_spec.name})"


def known_states(towers, y: torch.Tensor) -> list[torch.Tensor]:
    """The states of the labels ``y`` (``b x 2`` in model space; NaN → the zero state), in
    order of the label: ``towers[k]`` predicts label ``k``."""
    return [towers[k].out_kind.target_state(y[:, k]) for k in range(len(towers))]


def single_reveal(towers, h: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """Direct inference with the partner revealed: state ``k`` is ``towers[k]`` on ``h`` and
    the known state of the other label (every row must know both)."""
    known = known_states(towers, y)
    return [towers[k].out_kind.to_state(towers[k](h, known[1 - k])) for k in range(2)]
