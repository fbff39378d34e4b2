"""Train / validation / test splitters: random, scaffold (Bemis–Murcko) and the user's column."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from molddl.data.dataset import SPLITS, DualLabelDataset

SPLIT_METHODS: tuple[str, ...] = ("random", "scaffold", "column")
Indices = tuple[np.ndarray, np.ndarray, np.ndarray]


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(
            f"split fractions must be three non-negative numbers (train, val, test) summing to "
            f"1, got {list(fractions)}"
        )
    return float(fractions[0]), float(fractions[1]), float(fractions[2])


def random_split(n: int, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> Indices:
    """Shuffle ``0..n-1`` with ``seed`` and cut it by ``fractions``; returns sorted indices."""
    f_train, f_val, _ = _check_fractions(fractions)
    perm = np.random.default_rng(seed).permutation(n)
    n_train, n_val = int(round(f_train * n)), int(round(f_val * n))
    parts = perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :]
    return tuple(np.sort(p) for p in parts)  # type: ignore[return-value]


def murcko_scaffold(smiles: str) -> str:
    """The Bemis–Murcko scaffold of a molecule as canonical SMILES (empty for acyclic ones).

    An unparsable SMILES is its own group (its scaffold is the string itself), so it can
    never be split apart from an identical string.
    """
    from rdkit import Chem
    from rdkit.Chem.Scaffolds import MurckoScaffold

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return f"<invalid>{smiles}"
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)


def scaffold_split(
    smiles: Sequence[str], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> Indices:
    """Group molecules by Bemis–Murcko scaffold and assign whole groups to one part.

    Balanced and seeded, as in chemprop: groups larger than half the validation or test
    size go to training first (so that no small part is one big scaffold), the remaining
    groups follow in a seeded random order. Every group lands in exactly one part.
    """
    f_train, f_val, _ = _check_fractions(fractions)
    n = len(smiles)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(smiles):
        groups[murcko_scaffold(s)].append(i)
    n_train, n_val = f_train * n, f_val * n
    n_test = n - n_train - n_val
    sets = list(groups.values())
    big = [g for g in sets if len(g) > n_val / 2 or len(g) > n_test / 2]
    small = [g for g in sets if not (len(g) > n_val / 2 or len(g) > n_test / 2)]
    rng = np.random.default_rng(seed)
    rng.shuffle(big)
    rng.shuffle(small)
    train: list[int] = []
    val: list[int] = []
    test: list[int] = []
    for g in big + small:
        if len(train) + len(g) <= n_train:
            train += g
        elif len(val) + len(g) <= n_val:
            val += g
        else:
            test += g
    return tuple(np.sort(np.asarray(p, dtype=np.int64)) for p in (train, val, test))  # type: ignore[return-value]


def column_split(
    values: Sequence[object] | np.ndarray,
    row_offset: int = 0,
    rows: Sequence[int] | np.ndarray | None = None,
) -> Indices:
    """Use the user's ``split`` column (``train`` / ``val`` / ``test``).

    ``rows`` gives each value's position in the source table (e.g. ``data.row``) so that an
    error names the user's row even after samples were dropped; ``row_offset`` is added.
    """
    arr = np.asarray([str(v).strip().lower() for v in values])
    bad = ~np.isin(arr, SPLITS)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        row = (int(rows[i]) if rows is not None else i) + row_offset
        raise ValueError(
            f"column 'split', row {row}: {values[i]!r} is not one of {', '.join(SPLITS)}"
        )
    return tuple(np.flatnonzero(arr == s) for s in SPLITS)  # type: ignore[return-value]


def split_indices(
    data: DualLabelDataset,
    method: str = "random",
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> Indices:
    """Indices of the three parts. A dataset with a user ``split`` column always uses it."""
    if data.split is not None or method == "column":
        if data.split is None:
            raise ValueError("split method 'column' needs a 'split' column in the data")
        return column_split(data.split, row_offset=data.meta.get("row_offset", 0), rows=data.row)
    if method == "random":
        return random_split(len(data), fractions, seed)
    if method == "scaffold":
        if data.smiles is None:
            raise ValueError("scaffold split needs SMILES; this dataset is tabular")
        return scaffold_split(list(data.smiles), fractions, seed)
    raise ValueError(f"unknown split method {method!r}; choose one of {', '.join(SPLIT_METHODS)}")


def split_dataset(
    data: DualLabelDataset,
    method: str = "random",
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> tuple[DualLabelDataset, DualLabelDataset, DualLabelDataset]:
    """Split ``data`` into train, validation and test datasets (see :func:`split_indices`)."""
    return tuple(data.subset(i) for i in split_indices(data, method, fractions, seed))  # type: ignore[return-value]
