"""Shared encoders ``h = E(x)``: a GNN over molecular graphs or an MLP over feature vectors."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric import nn as gnn

from molddl.nn.towers import mlp


class FeatureEmbedding(nn.Module):
    """Embed node or edge features: one table per categorical column (summed), or a linear
    map for float features.

    Shapes:
        ``N x F`` (long or float) → ``N x dim``
    """

    # buffers (nn.Module types them as ``Tensor | Module``)
    kinds: torch.Tensor | None
    radix: torch.Tensor | None
    offsets: torch.Tensor

    def __init__(self, cardinalities: list[int], in_dim: int, dim: int) -> None:
        super().__init__()
        self.categorical = bool(cardinalities)
        self.register_buffer("kinds", None, persistent=False)  # see below
        self.register_buffer("radix", None, persistent=False)
        if self.categorical:
            self.tables = nn.ModuleList(nn.Embedding(c, dim) for c in cardinalities)
            starts = torch.tensor([0, *cardinalities[:-1]]).cumsum(0)
            self.register_buffer("offsets", starts, persistent=False)
            if math.prod(cardinalities) <= self.MAX_KINDS:
                # every combination of values, in mixed-radix order: row r has the values
                # whose digits give r (see kind_index)
                grids = torch.meshgrid(*(torch.arange(c) for c in cardinalities), indexing="ij")
                kinds = torch.stack([g.reshape(-1) for g in grids], dim=1)
                radix = torch.tensor([math.prod(cardinalities[j + 1 :]) for j in
                                      range(len(cardinalities))])  # fmt: skip
                self.register_buffer("kinds", kinds, persistent=False)
                self.register_buffer("radix", radix, persistent=False)
        else:
            self.linear = nn.Linear(in_dim, dim)

    #: the largest number of value combinations for which :attr:`kinds` is built
    MAX_KINDS: int = 4096

    def kind_index(self, x: torch.Tensor) -> torch.Tensor:
        """The row of :attr:`kinds` (every combination of categorical values) equal to each
        row of ``x``."""
        assert self.radix is not None  # built with kinds, which callers check
        return (x * self.radix).sum(dim=1)  # integer matmul has no CUDA kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.categorical:
            return self.linear(x.float())
        if torch.is_grad_enabled():
            # training: embedding_bag's backward sums the gradients in another order, and the
            # experiments in docs/RESULTS.md were trained with this path; keep it bit for bit
            return sum(t(x[:, j]) for j, t in enumerate(self.tables))
        # prediction: one embedding_bag over the stacked tables gives the same numbers as the
        # sum above (tested) without a tensor per column (profiled: the per-column lookups
        # and sums were a third of the GNN encoder's time)
        weight = torch.cat([cast(nn.Embedding, t).weight for t in self.tables])
        return F.embedding_bag(x + self.offsets, weight, mode="sum")


def _gin_mlp(d: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d, d), nn.BatchNorm1d(d), nn.ReLU(), nn.Linear(d, d))


# name -> (constructor of one layer of width d, whether it takes edge features)
CONVS: dict[str, tuple[Callable[[int], nn.Module], bool]] = {
    "gine": (lambda d: gnn.GINEConv(_gin_mlp(d), edge_dim=d), True),
    "gin": (lambda d: gnn.GINConv(_gin_mlp(d)), False),
    "gcn": (lambda d: gnn.GCNConv(d, d), False),
    "gat": (lambda d: gnn.GATv2Conv(d, d // 4, heads=4, edge_dim=d), True),
    "sage": (lambda d: gnn.SAGEConv(d, d), False),
}
POOLINGS = ("mean", "sum", "max", "attention")


class GNNEncoder(nn.Module):
    r"""Message passing over a molecular graph, then graph pooling.

    Each layer: :math:`H \leftarrow H + \mathrm{Dropout}(\mathrm{ReLU}(\mathrm{BN}(
    \mathrm{Conv}(H, E))))` (residual), with ``conv`` one of :data:`CONVS`.

    Shapes:
        a PyG batch of ``b`` graphs → ``b x hidden``
    """

    def __init__(
        self,
        node_cardinalities: list[int],
        edge_cardinalities: list[int],
        node_dim: int,
        edge_dim: int,
        *,
        conv: str = "gine",
        hidden: int = 128,
        layers: int = 3,
        dropout: float = 0.1,
        pooling: str = "mean",
    ) -> None:
        super().__init__()
        if conv not in CONVS:
            raise ValueError(f"unknown GNN {conv!r}; choose one of {', '.join(CONVS)}")
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
        make, self.uses_edges = CONVS[conv]
        self.out_dim = hidden
        self.atom = FeatureEmbedding(node_cardinalities, node_dim, hidden)
        self.bond = (
            FeatureEmbedding(edge_cardinalities, edge_dim, hidden) if self.uses_edges else None
        )
        self.convs = nn.ModuleList(make(hidden) for _ in range(layers))
        self.norms = nn.ModuleList(nn.BatchNorm1d(hidden) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        self.pooling = pooling
        if pooling == "attention":
            self.pool = gnn.aggr.AttentionalAggregation(nn.Linear(hidden, 1))

    def forward(self, batch) -> torch.Tensor:
        H = self.atom(batch.x)
        fast = (  # prediction with GINE over categorical bonds: see _gine_layer
            not torch.is_grad_enabled()
            and self.bond is not None
            and self.bond.kinds is not None
            and isinstance(self.convs[0], gnn.GINEConv)
            and self.convs[0].lin is not None
        )
        if fast:
            assert self.bond is not None and self.bond.kinds is not None  # checked by fast
            kind_of_edge = self.bond.kind_index(batch.edge_attr)
            E = self.bond(self.bond.kinds)
        else:
            E = self.bond(batch.edge_attr) if self.bond is not None else None
        for conv, norm in zip(self.convs, self.norms, strict=True):
            if fast:
                lin = cast(nn.Module, conv.lin)  # a GINEConv's edge projection: see fast
                edge_term = lin(E).index_select(0, kind_of_edge)
                out = _gine_layer(conv, H, batch.edge_index, edge_term)
            elif E is not None:
                out = conv(H, batch.edge_index, E)
            else:
                out = conv(H, batch.edge_index)
            H = H + self.dropout(torch.relu(norm(out)))
        size = int(batch.num_graphs)
        if self.pooling == "mean":
            return gnn.global_mean_pool(H, batch.batch, size)
        if self.pooling == "sum":
            return gnn.global_add_pool(H, batch.batch, size)
        if self.pooling == "max":
            return gnn.global_max_pool(H, batch.batch, size)
        return self.pool(H, batch.batch, dim_size=size)


def _gine_layer(
    conv: gnn.GINEConv, H: torch.Tensor, edge_index: torch.Tensor, edge_term: torch.Tensor
) -> torch.Tensor:
    """``conv(H, edge_index, E)`` at prediction, given ``edge_term = conv.lin(E)``.

    Bond features are a few categorical columns (PyG's: 22 x 6 x 2 = 264 combinations), so
    the edge projection, the largest matrix product of a GINE layer, is computed once per
    combination and gathered (``GNNEncoder.forward``) instead of once per bond: half the
    encoder's multiply-adds (``benchmarks/encoder.py``). The rest is PyG's computation, in its
    order: messages ``ReLU(H_j + lin(e_ji))`` summed at the target by ``scatter_add_``, plus
    ``(1 + eps) H_i``, through the layer's MLP. A test checks it against ``conv``."""
    src, dst = edge_index
    messages = (H.index_select(0, src) + edge_term).relu_()
    summed = H.new_zeros(H.shape).scatter_add_(0, dst.unsqueeze(-1).expand_as(messages), messages)
    return conv.nn(summed + (1 + conv.eps) * H)


class MLPEncoder(nn.Module):
    """An MLP over standardised feature vectors (HIGGS, MOF, fingerprints).

    Shapes:
        ``b x d_in`` → ``b x hidden``
    """

    def __init__(self, d_in: int, *, hidden: int = 128, layers: int = 3, dropout: float = 0.1):
        super().__init__()
        self.out_dim = hidden
        self.net = nn.Sequential(
            mlp(d_in, hidden, hidden, layers, dropout), nn.ReLU(), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
