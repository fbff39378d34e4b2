"""Shared encoders ``h = E(x)``: a GNN over molecular graphs or an MLP over feature vectors."""

from __future__ import annotations

from collections.abc import Callable

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

    def __init__(self, cardinalities: list[int], in_dim: int, dim: int) -> None:
        super().__init__()
        self.categorical = bool(cardinalities)
        if self.categorical:
            self.tables = nn.ModuleList(nn.Embedding(c, dim) for c in cardinalities)
            starts = torch.tensor([0, *cardinalities[:-1]]).cumsum(0)
            self.register_buffer("offsets", starts, persistent=False)
        else:
            self.linear = nn.Linear(in_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.categorical:
            return self.linear(x.float())
        if torch.is_grad_enabled():
            # training: embedding_bag's backward sums the gradients in another order, and the
            # experiments in docs/RESULTS.md were trained with this path; keep it bit for bit
            return sum(t(x[:, j]) for j, t in enumerate(self.tables))  # type: ignore[return-value]
        # prediction: one embedding_bag over the stacked tables gives the same numbers as the
        # sum above (tested) without a tensor per column (profiled: the per-column lookups
        # and sums were a third of the GNN encoder's time)
        weight = torch.cat([t.weight for t in self.tables])
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
        E = self.bond(batch.edge_attr) if self.bond is not None else None
        for conv, norm in zip(self.convs, self.norms, strict=True):
            out = conv(H, batch.edge_index, E) if E is not None else conv(H, batch.edge_index)
            H = H + self.dropout(torch.relu(norm(out)))
        size = int(batch.num_graphs)
        if self.pooling == "mean":
            return gnn.global_mean_pool(H, batch.batch, size)
        if self.pooling == "sum":
            return gnn.global_add_pool(H, batch.batch, size)
        if self.pooling == "max":
            return gnn.global_max_pool(H, batch.batch, size)
        return self.pool(H, batch.batch, dim_size=size)


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
