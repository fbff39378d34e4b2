"""The dual-tower network and the marginal multi-task network (SPEC §2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn

from molddl.config import ModelConfig
from molddl.data.labels import LabelSpec, label_kind
from molddl.data.preprocess import InputInfo
from molddl.nn.encoders import GNNEncoder, MLPEncoder
from molddl.nn.label_embedding import LabelEmbedding
from molddl.nn.towers import Tower, mlp


def build_encoder(cfg: ModelConfig, input_info: InputInfo) -> GNNEncoder | MLPEncoder:
    """An encoder for the inputs described by ``input_info`` (see ``Preprocessor``)."""
    if input_info.is_graph:
        if cfg.encoder == "mlp":
            raise ValueError("model.encoder 'mlp' needs feature vectors; molecules need a GNN")
        return GNNEncoder(
            list(input_info.node_cardinalities),
            list(input_info.edge_cardinalities),
            input_info.node_dim,
            input_info.edge_dim,
            conv=cfg.encoder,
            hidden=cfg.hidden,
            layers=cfg.layers,
            dropout=cfg.dropout,
            pooling=cfg.pooling,
        )
    return MLPEncoder(input_info.dim, hidden=cfg.hidden, layers=cfg.layers, dropout=cfg.dropout)


class DualTowerNet(nn.Module):
    """``h = E(x)``; ``tower1``: ``[h, L2(y2)] → ŷ1`` (dual g); ``tower2``: ``[h, L1(y1)] → ŷ2``
    (primal f). Towers are held in order of the label they predict."""

    def __init__(
        self, cfg: ModelConfig, labels: Sequence[LabelSpec], input_info: InputInfo
    ) -> None:
        super().__init__()
        if len(labels) != 2:
            raise ValueError(f"the dual-tower model takes two labels, got {len(labels)}")
        self.labels = tuple(labels)
        self.encoder = build_encoder(cfg, input_info)
        d_h = self.encoder.out_dim
        self.towers = nn.ModuleList(
            Tower(
                d_h,
                in_spec=labels[1 - k],
                out_spec=labels[k],
                label_dim=cfg.label_dim,
                hidden=cfg.tower_hidden,
                layers=cfg.tower_layers,
                dropout=cfg.dropout,
                gaussian=cfg.gaussian,
            )
            for k in range(2)
        )

    @property
    def tower1(self) -> Tower:
        return self.towers[0]  # type: ignore[return-value]

    @property
    def tower2(self) -> Tower:
        return self.towers[1]  # type: ignore[return-value]


class ConditionalNet(nn.Module):
    """``x`` and optionally some known labels → other labels: ``h = E(x)``, then one head per
    output label on ``[h, L(y_j) for j in inputs]``.

    With no inputs this is the masked multi-task model; the baselines (SPEC §5) are stages of
    it (``x → y1``, ``(x, y1) → y2``, ...).

    Shapes:
        ``cond``: one state ``b x state_dim`` per input label → one raw output per output label
    """

    def __init__(
        self,
        cfg: ModelConfig,
        labels: Sequence[LabelSpec],
        input_info: InputInfo,
        inputs: Sequence[int] = (),
        outputs: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.labels = tuple(labels)
        self.inputs = tuple(inputs)
        self.outputs = tuple(range(len(labels)) if outputs is None else outputs)
        self.encoder = build_encoder(cfg, input_info)
        #: the kind of every label's head (``kinds[k]`` for label ``k``)
        self.kinds = tuple(label_kind(s, cfg.gaussian) for s in self.labels)
        self.embeds = nn.ModuleList(LabelEmbedding(labels[j], cfg.label_dim) for j in self.inputs)
        d = self.encoder.out_dim + cfg.label_dim * len(self.inputs)
        self.heads = nn.ModuleList(
            mlp(d, cfg.tower_hidden, self.kinds[k].raw_size, cfg.tower_layers, cfg.dropout)
            for k in self.outputs
        )

    @property
    def raw_sizes(self) -> list[int]:
        # every head is an mlp(): a Sequential ending in a Linear
        return [cast(nn.Linear, cast(nn.Sequential, head)[-1]).out_features for head in self.heads]

    def forward(self, x, cond: Sequence[torch.Tensor] = ()) -> list[torch.Tensor]:
        h = self.encoder(x)
        if self.inputs:
            h = torch.cat([h, *(emb(s) for emb, s in zip(self.embeds, cond, strict=True))], dim=-1)
        return [head(h) for head in self.heads]


class MarginalNet(ConditionalNet):
    """The masked multi-task model ``M(x) → P(y1|x), P(y2|x)`` (SPEC §2): an encoder and one
    head per label, no label input."""

    def __init__(
        self, cfg: ModelConfig, labels: Sequence[LabelSpec], input_info: InputInfo
    ) -> None:
        super().__init__(cfg, labels, input_info)
