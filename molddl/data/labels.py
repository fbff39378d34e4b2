"""Label specifications: what kind of value each label column holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

LabelKind = Literal["binary", "multiclass", "regression"]
LABEL_KINDS: tuple[str, ...] = ("binary", "multiclass", "regression")


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """One label column of a dual-label dataset.

    Attributes
    ----------
    name
        Column name in the source table.
    kind
        ``"binary"`` (values 0/1), ``"multiclass"`` (integers ``0 .. n_classes-1``) or
        ``"regression"`` (real values).
    n_classes
        Number of classes; 2 for binary, 0 for regression.
    """

    name: str
    kind: LabelKind
    n_classes: int = 0

    def __post_init__(self) -> None:
        if self.kind not in LABEL_KINDS:
            raise ValueError(
                f"label {self.name!r}: kind {self.kind!r} is not one of {', '.join(LABEL_KINDS)}"
            )
        if self.kind == "binary" and self.n_classes not in (0, 2):
            raise ValueError(f"label {self.name!r}: a binary label has 2 classes")
        if self.kind == "binary":
            object.__setattr__(self, "n_classes", 2)
        if self.kind == "multiclass" and self.n_classes < 2:
            raise ValueError(f"label {self.name!r}: multiclass needs n_classes >= 2")
        if self.kind == "regression" and self.n_classes != 0:
            raise ValueError(f"label {self.name!r}: a regression label has no classes")

    @property
    def is_class(self) -> bool:
        return self.kind != "regression"

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "n_classes": self.n_classes}

    @classmethod
    def from_dict(cls, d: dict) -> LabelSpec:
        return cls(name=d["name"], kind=d["kind"], n_classes=int(d.get("n_classes", 0)))


def infer_label_spec(name: str, values: np.ndarray) -> LabelSpec:
    """Guess a label's kind from its present values: {0,1} → binary, small non-negative
    integers → multiclass, anything else → regression."""
    v = values[~np.isnan(values)]
    if v.size == 0:
        raise ValueError(f"label column {name!r} has no present value (all missing)")
    if np.all(np.isin(v, (0.0, 1.0))):
        return LabelSpec(name, "binary")
    if np.all(v == np.round(v)) and v.min() >= 0 and v.max() < 20:
        return LabelSpec(name, "multiclass", int(v.max()) + 1)
    return LabelSpec(name, "regression")


def check_label_values(
    spec: LabelSpec, values: np.ndarray, row_offset: int = 0, allow_empty: bool = False
) -> None:
    """Raise a ``ValueError`` naming the first row whose value does not fit ``spec``.

    ``row_offset`` is added to positions so that messages name rows of the user's file
    (e.g. 2 for a CSV with a header, counting lines from 1). A column with no present value
    is an error unless ``allow_empty`` (data to predict may know no label at all).
    """
    present = ~np.isnan(values)
    if not present.any() and not allow_empty:
        raise ValueError(f"label column {spec.name!r} has no present value (all missing)")
    if spec.kind == "regression":
        bad = present & ~np.isfinite(values)
    else:
        ok = (values == np.round(values)) & (values >= 0) & (values < spec.n_classes)
        bad = present & ~ok
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        allowed = (
            "a finite number"
            if spec.kind == "regression"
            else f"an integer class in 0..{spec.n_classes - 1}"
        )
        raise ValueError(
            f"label column {spec.name!r}, row {i + row_offset}: value {values[i]!r} is not "
            f"{allowed} ({spec.kind} label); leave the cell empty for a missing label"
        )
