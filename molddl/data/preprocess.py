"""From a :class:`DualLabelDataset` to tensors: featurize, standardise, batch.

Statistics (feature means, regression label scales) come from the training part only and
travel with a saved model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol, cast

import numpy as np
import torch

from molddl.data.dataset import DualLabelDataset, Standardizer
from molddl.data.featurizers import (
    Featurizer,
    GraphStore,
    InvalidSmiles,
    featurize_dataset,
    featurizer_from_dict,
)
from molddl.data.labels import LabelKind, LabelSpec, label_kind


class _GraphDims(Protocol):
    """What a graph featurizer (``output == "graph"``) tells about its features."""

    @property
    def node_cardinalities(self) -> Sequence[int]: ...
    @property
    def edge_cardinalities(self) -> Sequence[int]: ...
    @property
    def node_dim(self) -> int: ...
    @property
    def edge_dim(self) -> int: ...


class _VectorDim(Protocol):
    """What a vector featurizer (``output == "vector"``) tells about its features."""

    @property
    def dim(self) -> int: ...


@dataclass(frozen=True, slots=True)
class InputInfo:
    """What an encoder needs to know about its inputs.

    Attributes
    ----------
    form
        ``graph`` (molecular graphs, a GNN encoder) or ``vector`` (feature vectors, an MLP).
    dim
        Width of a feature vector (``vector``).
    node_cardinalities, edge_cardinalities
        Number of values of each categorical node / edge feature (``graph``).
    node_dim, edge_dim
        Number of node / edge feature columns (``graph``).
    """

    form: Literal["graph", "vector"]
    dim: int = 0
    node_cardinalities: tuple[int, ...] = ()
    edge_cardinalities: tuple[int, ...] = ()
    node_dim: int = 0
    edge_dim: int = 0

    def __post_init__(self) -> None:
        if self.form not in ("graph", "vector"):
            raise ValueError(f"input form {self.form!r} is neither 'graph' nor 'vector'")

    @property
    def is_graph(self) -> bool:
        return self.form == "graph"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["node_cardinalities"] = list(self.node_cardinalities)
        d["edge_cardinalities"] = list(self.edge_cardinalities)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> InputInfo:
        return cls(
            # "kind" in model files before InputInfo; __post_init__ checks the value
            form=cast("Literal['graph', 'vector']", d.get("form", d.get("kind"))),
            dim=int(d.get("dim", 0)),
            node_cardinalities=tuple(int(c) for c in d.get("node_cardinalities", ())),
            edge_cardinalities=tuple(int(c) for c in d.get("edge_cardinalities", ())),
            node_dim=int(d.get("node_dim", 0)),
            edge_dim=int(d.get("edge_dim", 0)),
        )


@dataclass(slots=True)
class Prepared:
    """Model-ready tensors for ``n`` samples.

    Attributes
    ----------
    inputs
        A :class:`GraphStore` or a float tensor ``n x d``.
    y
        Labels in model space, ``n x K``: class index or standardised value, NaN if missing.
    positions
        Positions of these samples in the dataset they came from (invalid SMILES removed).
    invalid
        The invalid SMILES that were skipped.
    cond
        Optional label values a conditional model takes as input, ``n x K`` in model space
        (probabilities allowed for binary labels); batches then carry it third.
    """

    inputs: GraphStore | torch.Tensor
    y: torch.Tensor
    positions: np.ndarray
    invalid: list[InvalidSmiles] = field(default_factory=list)
    cond: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def batch(self, index) -> tuple:
        """``(inputs, y)`` for the samples at ``index``, plus ``cond`` when set."""
        index = np.asarray(index, dtype=np.int64)
        t = torch.from_numpy(index)
        x = self.inputs.batch(index) if isinstance(self.inputs, GraphStore) else self.inputs[t]
        if self.cond is None:
            return x, self.y[t]
        return x, self.y[t], self.cond[t]

    def subset(self, index: np.ndarray) -> Prepared:
        """The samples at ``index`` (integer positions or a boolean mask)."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        t = torch.from_numpy(index.astype(np.int64))
        inputs = (
            self.inputs.subset(index) if isinstance(self.inputs, GraphStore) else self.inputs[t]
        )
        cond = None if self.cond is None else self.cond[t]
        return Prepared(inputs, self.y[t], self.positions[index], list(self.invalid), cond)


@dataclass(slots=True)
class Preprocessor:
    """Everything needed to turn raw data into model inputs the same way at every call.

    Attributes
    ----------
    labels
        Label specifications.
    featurizer
        Featurizer settings for molecular data, else ``None``.
    x_scaler
        Feature standardiser for tabular data (training statistics), else ``None``.
    y_mean, y_std
        Per-label shift and scale of regression labels (0 and 1 for class labels).
    input_info
        What the encoder needs to know about the inputs.
    feature_names
        Tabular feature columns, in order.
    """

    labels: tuple[LabelSpec, ...]
    featurizer: dict | None
    x_scaler: Standardizer | None
    y_mean: list[float]
    y_std: list[float]
    input_info: InputInfo
    feature_names: tuple[str, ...] = ()
    strict: bool = False
    prior: list[list[float]] = field(default_factory=list)
    """Label prior state from the training part: P(class 1), class frequencies, or z = 0."""

    @classmethod
    def fit(cls, train: DualLabelDataset, featurizer: str = "pyg", strict: bool = False):
        y_mean, y_std, prior = [], [], []
        for k, spec in enumerate(train.labels):
            col = train.y[:, k]
            present = col[~np.isnan(col)]
            if present.size == 0:
                raise ValueError(f"label {spec.name!r} has no present value in the training part")
            kind = label_kind(spec)
            mean, std = kind.scale(present)
            y_mean.append(mean)
            y_std.append(std)
            prior.append(kind.prior(present))
        if train.is_molecular:
            feat = featurizer_from_dict({"name": featurizer})
            if feat.output == "graph":
                g = cast(_GraphDims, feat)
                info = InputInfo(
                    "graph",
                    node_cardinalities=tuple(g.node_cardinalities),
                    edge_cardinalities=tuple(g.edge_cardinalities),
                    node_dim=g.node_dim,
                    edge_dim=g.edge_dim,
                )
            else:
                info = InputInfo("vector", dim=cast(_VectorDim, feat).dim)
            return cls(train.labels, feat.to_dict(), None, y_mean, y_std, info, (), strict, prior)
        if train.X is None:
            raise ValueError(f"dataset {train.name!r} has neither SMILES nor features")
        scaler = Standardizer.fit(train.X)
        info = InputInfo("vector", dim=int(train.X.shape[1]))
        return cls(
            train.labels, None, scaler, y_mean, y_std, info, train.feature_names, strict, prior
        )

    @property
    def kinds(self) -> tuple[LabelKind, ...]:
        """The labels' kinds as data (values, metrics, user columns)."""
        return tuple(label_kind(s) for s in self.labels)

    def labels_to_model(self, y: np.ndarray) -> torch.Tensor:
        z = (np.asarray(y, dtype=np.float64) - np.asarray(self.y_mean)) / np.asarray(self.y_std)
        return torch.tensor(z, dtype=torch.float32)  # owned, so DDP can share it

    def to_user(self, k: int, state: np.ndarray) -> np.ndarray:
        """Label ``k``'s states (``n x state_size``, model space) as user values:
        P(class 1) (binary, ``n``), class probabilities (multiclass, ``n x C``) or the
        value in the label's units (regression, ``n``)."""
        kind = label_kind(self.labels[k])
        return kind.to_user(state.astype(np.float64), self.y_mean[k], self.y_std[k])

    def truth_to_user(self, k: int, y: np.ndarray) -> np.ndarray:
        """Label ``k``'s model-space values (class index or ``z``) in the user's units."""
        return y * self.y_std[k] + self.y_mean[k]

    def arrays_from_states(
        self, states: list[torch.Tensor], positions: np.ndarray, n: int
    ) -> list[np.ndarray]:
        """Label states as user-facing arrays of ``n`` rows (NaN where no prediction), as
        :meth:`to_user` gives them."""
        out = []
        for k in range(len(self.labels)):
            s = self.to_user(k, states[k].numpy())
            full = np.full((n,) + s.shape[1:], np.nan)
            full[positions] = s
            out.append(full)
        return out

    def transform(
        self,
        data: DualLabelDataset,
        *,
        n_jobs: int = 1,
        use_cache: bool = True,
        features: dict[str, torch.Tensor] | None = None,
    ) -> Prepared:
        """Model-ready tensors for ``data``; samples with an invalid SMILES are left out.

        ``n_jobs`` featurizes molecules in that many processes; ``use_cache=False`` neither
        reads nor fills the on-disk feature cache (a one-off screen need not be kept);
        ``features`` are the molecules' features computed ahead
        (:func:`~molddl.data.featurizers.compute_features` with :meth:`make_featurizer`).
        """
        if [s.name for s in data.labels] != [s.name for s in self.labels]:
            raise ValueError(
                f"data has labels {data.label_names}, the model was trained on "
                f"{[s.name for s in self.labels]}"
            )
        positions = np.arange(len(data))
        invalid: list[InvalidSmiles] = []
        if self.featurizer is not None:
            if data.smiles is None:
                raise ValueError("this model takes molecules: the data needs a SMILES column")
            feat = self.make_featurizer()
            assert feat is not None  # self.featurizer is set
            if data.meta.get("featurizer") != feat.to_dict():  # else featurized already
                data, invalid = featurize_dataset(
                    data,
                    feat,
                    strict=self.strict,
                    use_cache=use_cache,
                    n_jobs=n_jobs,
                    features=features,
                )
                positions = data.meta["kept_positions"]
            # featurize_dataset (now, or before: meta["featurizer"]) set graphs or X
            inputs = (
                cast(GraphStore, data.graphs)
                if feat.output == "graph"
                else torch.tensor(data.X, dtype=torch.float32)
            )
        else:
            missing = [c for c in self.feature_names if c not in data.feature_names]
            if missing:
                raise ValueError(f"data lacks the model's feature columns {missing[:5]}")
            order = [data.feature_names.index(c) for c in self.feature_names]
            # a tabular model has a scaler (fit, from_dict); data without X lacks its columns
            assert self.x_scaler is not None and data.X is not None
            inputs = torch.tensor(self.x_scaler.transform(data.X[:, order]))
        return Prepared(inputs, self.labels_to_model(data.y), positions, invalid)

    def make_featurizer(self) -> Featurizer | None:
        """The featurizer this preprocessor applies to molecules (``None``: tabular data)."""
        return None if self.featurizer is None else featurizer_from_dict(self.featurizer)

    def to_dict(self) -> dict:
        return {
            "labels": [s.to_dict() for s in self.labels],
            "featurizer": self.featurizer,
            "x_scaler": None if self.x_scaler is None else self.x_scaler.to_dict(),
            "y_mean": self.y_mean,
            "y_std": self.y_std,
            "input_info": self.input_info.to_dict(),
            "feature_names": list(self.feature_names),
            "strict": self.strict,
            "prior": self.prior,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessor:
        return cls(
            labels=tuple(LabelSpec.from_dict(s) for s in d["labels"]),
            featurizer=d["featurizer"],
            x_scaler=None if d["x_scaler"] is None else Standardizer.from_dict(d["x_scaler"]),
            y_mean=list(d["y_mean"]),
            y_std=list(d["y_std"]),
            input_info=InputInfo.from_dict(d["input_info"]),
            feature_names=tuple(d["feature_names"]),
            strict=bool(d["strict"]),
            prior=[list(p) for p in d["prior"]],
        )
