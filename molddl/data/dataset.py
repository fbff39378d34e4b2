"""The dual-label dataset: inputs, labels with NaN for missing, and the D12/D1/D2/D0 partition."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from molddl.data.featurizers import GraphStore
from molddl.data.labels import LabelSpec

PARTS: tuple[str, ...] = ("D12", "D1", "D2", "D0")
SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(slots=True)
class DualLabelDataset:
    """Samples ``(x, y1, y2)`` where either label may be missing (SPEC §1).

    Labels are held as a sequence of ``K`` columns (``K = 2`` for DLL) so that the K-label
    generalisation needs no new container.

    Attributes
    ----------
    y
        Labels, a float array of shape ``n x K``; NaN marks a missing label, never 0.
    labels
        One :class:`LabelSpec` per column of ``y``.
    ids
        Sample identifiers, shape ``n`` (strings).
    row
        Position of each sample in the source table (0-based data row), shape ``n``.
    smiles
        SMILES strings for molecular data, shape ``n``, else ``None``.
    X
        Feature matrix for tabular data, shape ``n x d`` (float32), else ``None``.
    feature_names
        Names of the columns of ``X``.
    graphs
        Featurized molecular graphs, one per sample, once featurized.
    split
        A user-given ``train`` / ``val`` / ``test`` assignment, shape ``n``, else ``None``.
    name
        Dataset name, used in reports.
    """

    y: np.ndarray
    labels: tuple[LabelSpec, ...]
    ids: np.ndarray
    row: np.ndarray
    smiles: np.ndarray | None = None
    X: np.ndarray | None = None
    feature_names: tuple[str, ...] = ()
    graphs: GraphStore | None = None
    split: np.ndarray | None = None
    name: str = "dataset"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.y = np.asarray(self.y, dtype=np.float64)
        if self.y.ndim != 2 or self.y.shape[1] != len(self.labels):
            raise ValueError(
                f"y has shape {self.y.shape}, expected (n, {len(self.labels)}) for labels "
                f"{[s.name for s in self.labels]}"
            )
        n = self.y.shape[0]
        for attr in ("ids", "row", "smiles", "X", "split"):
            value = getattr(self, attr)
            if value is not None and len(value) != n:
                raise ValueError(f"{attr} has {len(value)} entries, y has {n} rows")
        if self.graphs is not None and len(self.graphs) != n:
            raise ValueError(f"graphs has {len(self.graphs)} entries, y has {n} rows")

    def __len__(self) -> int:
        return self.y.shape[0]

    @property
    def label_names(self) -> list[str]:
        return [s.name for s in self.labels]

    @property
    def is_molecular(self) -> bool:
        return self.smiles is not None

    @property
    def mask(self) -> np.ndarray:
        """Presence indicators ``m``, a boolean array of shape ``n x K``."""
        return ~np.isnan(self.y)

    def part_masks(self) -> dict[str, np.ndarray]:
        """Boolean masks of shape ``n`` for ``D12``, ``D1``, ``D2`` and ``D0`` (two labels)."""
        if len(self.labels) != 2:
            raise ValueError("the D12/D1/D2/D0 partition is defined for two labels")
        m1, m2 = self.mask[:, 0], self.mask[:, 1]
        return {"D12": m1 & m2, "D1": m1 & ~m2, "D2": ~m1 & m2, "D0": ~m1 & ~m2}

    def partition_counts(self) -> dict[str, int]:
        return {k: int(v.sum()) for k, v in self.part_masks().items()}

    def subset(self, index: np.ndarray) -> DualLabelDataset:
        """A new dataset holding the samples at ``index`` (integer positions or a mask)."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)

        def take(a):
            return None if a is None else a[index]

        return replace(
            self,
            y=self.y[index],
            ids=self.ids[index],
            row=self.row[index],
            smiles=take(self.smiles),
            X=take(self.X),
            split=take(self.split),
            graphs=None if self.graphs is None else self.graphs.subset(index),
            meta=dict(self.meta),
        )

    def with_labels(self, y: np.ndarray) -> DualLabelDataset:
        """The same samples with another label array (e.g. after synthetic masking)."""
        return replace(self, y=np.array(y, dtype=np.float64), meta=dict(self.meta))

    def describe(self) -> pd.DataFrame:
        """The partition table: count and share of each of ``D12 / D1 / D2 / D0``."""
        counts = self.partition_counts()
        n = max(len(self), 1)
        return pd.DataFrame(
            {
                "part": list(counts),
                "labels present": [
                    f"{self.labels[0].name} + {self.labels[1].name}",
                    f"only {self.labels[0].name}",
                    f"only {self.labels[1].name}",
                    "none",
                ],
                "count": list(counts.values()),
                "share": [f"{100 * c / n:.1f} %" for c in counts.values()],
            }
        )

    def to_frame(self) -> pd.DataFrame:
        """A plain table: id, SMILES or features, and the label columns (NaN for missing)."""
        cols: dict[str, object] = {"id": self.ids}
        if self.smiles is not None:
            cols["smiles"] = self.smiles
        if self.X is not None:
            cols.update({n: self.X[:, j] for j, n in enumerate(self.feature_names)})
        cols.update({s.name: self.y[:, k] for k, s in enumerate(self.labels)})
        if self.split is not None:
            cols["split"] = self.split
        return pd.DataFrame(cols)


@dataclass(slots=True)
class Standardizer:
    """Per-column standardisation with statistics from the training part only.

    Attributes
    ----------
    mean, std
        Arrays of shape ``d``; a constant column gets ``std = 1``.
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> Standardizer:
        # float64 statistics, as a model file stores and reads them back: a reloaded model
        # scales features bit-identically to the one that was trained
        X = np.asarray(X, dtype=np.float64)
        mean = np.nanmean(X, axis=0)
        std = np.nanstd(X, axis=0)
        std = np.where(std > 0, std, 1.0)
        return cls(mean=mean, std=std)

    def transform(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean) / self.std).astype(np.float32)

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        return Z * self.std + self.mean

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Standardizer:
        return cls(
            mean=np.asarray(d["mean"], dtype=np.float64), std=np.asarray(d["std"], dtype=np.float64)
        )
