"""Molecular graphs stored as flat tensors, batched without building one object per molecule."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch_geometric.data import Batch, Data


@dataclass(slots=True)
class GraphStore:
    """``n`` graphs held as concatenated tensors (CSR style).

    Attributes
    ----------
    x
        Node features of all graphs, shape ``N x F`` (long for categorical features).
    edge_index
        Edges, shape ``2 x E``, indices local to each graph.
    edge_attr
        Edge features, shape ``E x B``.
    node_ptr, edge_ptr
        Offsets of shape ``n + 1``: graph ``i`` owns nodes ``node_ptr[i]:node_ptr[i+1]``.
    """

    x: torch.Tensor
    edge_index: torch.Tensor
    edge_attr: torch.Tensor
    node_ptr: torch.Tensor
    edge_ptr: torch.Tensor

    def __len__(self) -> int:
        return int(self.node_ptr.numel() - 1)

    @classmethod
    def from_counts(
        cls,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        edge_attr: torch.Tensor,
        n_nodes: torch.Tensor,
        n_edges: torch.Tensor,
    ) -> GraphStore:
        """The store of concatenated graphs with ``n_nodes[i]`` / ``n_edges[i]`` each."""
        zero = torch.zeros(1, dtype=torch.long)
        return cls(
            x=x,
            edge_index=edge_index,
            edge_attr=edge_attr,
            node_ptr=torch.cat([zero, n_nodes.cumsum(0)]),
            edge_ptr=torch.cat([zero, n_edges.cumsum(0)]),
        )

    @classmethod
    def from_data_list(cls, graphs: Sequence[Data]) -> GraphStore:
        if not graphs:
            raise ValueError("no graph to store")
        edge_dim = graphs[0].edge_attr.size(1) if graphs[0].edge_attr is not None else 0
        return cls.from_counts(
            x=torch.cat([g.x for g in graphs]),
            edge_index=torch.cat([g.edge_index for g in graphs], dim=1),
            edge_attr=torch.cat(
                [
                    g.edge_attr
                    if g.edge_attr is not None
                    else torch.zeros(g.edge_index.size(1), edge_dim)
                    for g in graphs
                ]
            ),
            n_nodes=torch.tensor([g.num_nodes for g in graphs]),
            n_edges=torch.tensor([g.edge_index.size(1) for g in graphs]),
        )

    def __getitem__(self, i: int) -> Data:
        a, b = int(self.node_ptr[i]), int(self.node_ptr[i + 1])
        c, d = int(self.edge_ptr[i]), int(self.edge_ptr[i + 1])
        return Data(
            x=self.x[a:b], edge_index=self.edge_index[:, c:d], edge_attr=self.edge_attr[c:d]
        )

    def _ranges(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Node and edge positions of the graphs at ``index``, and per-graph node counts."""
        idx = torch.as_tensor(np.asarray(index, dtype=np.int64))
        n_nodes = self.node_ptr[idx + 1] - self.node_ptr[idx]
        n_edges = self.edge_ptr[idx + 1] - self.edge_ptr[idx]
        node_pos = _expand(self.node_ptr[idx], n_nodes)
        edge_pos = _expand(self.edge_ptr[idx], n_edges)
        return node_pos, edge_pos, torch.stack([n_nodes, n_edges])

    def subset(self, index: np.ndarray) -> GraphStore:
        node_pos, edge_pos, counts = self._ranges(index)
        return GraphStore.from_counts(
            self.x[node_pos], self.edge_index[:, edge_pos], self.edge_attr[edge_pos], *counts
        )

    def batch(self, index: np.ndarray) -> Batch:
        """The graphs at ``index`` as one PyG :class:`Batch` (node indices offset per graph)."""
        node_pos, edge_pos, counts = self._ranges(index)
        n_nodes, n_edges = counts
        new_node_ptr = torch.cat([torch.zeros(1, dtype=torch.long), n_nodes.cumsum(0)])
        shift = torch.repeat_interleave(new_node_ptr[:-1], n_edges)
        batch_vec = torch.repeat_interleave(torch.arange(len(n_nodes)), n_nodes)
        return Batch(
            x=self.x[node_pos],
            edge_index=self.edge_index[:, edge_pos] + shift,
            edge_attr=self.edge_attr[edge_pos],
            batch=batch_vec,
            ptr=new_node_ptr,
        )

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {
            "x": self.x,
            "edge_index": self.edge_index,
            "edge_attr": self.edge_attr,
            "node_ptr": self.node_ptr,
            "edge_ptr": self.edge_ptr,
        }

    @classmethod
    def from_dict(cls, d: dict[str, torch.Tensor]) -> GraphStore:
        return cls(**{k: d[k] for k in ("x", "edge_index", "edge_attr", "node_ptr", "edge_ptr")})


def _expand(starts: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Concatenate ``arange(s, s + c)`` for every pair, without a Python loop."""
    total = int(counts.sum())
    if total == 0:
        return torch.zeros(0, dtype=torch.long)
    offsets = torch.repeat_interleave(
        starts - torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)[:-1]]), counts
    )
    return torch.arange(total) + offsets
