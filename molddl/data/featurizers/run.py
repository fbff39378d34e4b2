"""Featurize a dataset once: invalid SMILES reported, results cached on disk by content.

Large inputs are spread over worker processes (:meth:`Featurizer.featurize_graphs`); the
feature cache lives in ``molddl.io.user_cache("features")``.
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from molddl._version import __version__
from molddl.data.featurizers.base import Featurizer, parse_smiles, process_pool
from molddl.data.featurizers.store import GraphStore
from molddl.io import atomic_path, user_cache
from molddl.progress import Progress, stderr_is_terminal

if TYPE_CHECKING:  # molddl.data.dataset imports this package (for GraphStore)
    from molddl.data.dataset import DualLabelDataset

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InvalidSmiles:
    """A SMILES that RDKit rejects.

    Attributes
    ----------
    row
        Row number in the source table, counting data rows from 1 (header not counted).
    id
        The sample's id.
    smiles
        The rejected string.
    reason
        ``"RDKit rejects it"``, or why a parsed molecule could not be featurized.
    """

    row: int
    id: str
    smiles: str
    reason: str = "RDKit rejects it"

    def __str__(self) -> str:
        shown = self.smiles if len(self.smiles) <= 60 else self.smiles[:57] + "..."
        why = "" if self.reason == "RDKit rejects it" else f" ({self.reason})"
        return f"row {self.row} (id {self.id}): {shown!r}{why}"


class InvalidSmilesError(ValueError):
    """Raised under ``strict=True`` when any SMILES is invalid; lists every one."""

    def __init__(self, invalid: list[InvalidSmiles]) -> None:
        self.invalid = invalid
        shown = "; ".join(str(i) for i in invalid[:10])
        more = f" (and {len(invalid) - 10} more)" if len(invalid) > 10 else ""
        super().__init__(f"{len(invalid)} invalid SMILES: {shown}{more}")


def default_feature_cache() -> Path:
    return user_cache("features")


def _cache_key(featurizer: Featurizer, smiles: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(f"molddl {__version__}\n{sorted(featurizer.to_dict().items())}\n".encode())
    for s in smiles:
        h.update(str(s).encode())
        h.update(b"\n")
    return h.hexdigest()[:32]


#: from this many SMILES on, :func:`featurize_dataset` shows a bar on a terminal
PROGRESS_MIN = 5000
#: SMILES per piece (per worker) between two updates of that bar
PROGRESS_PIECE = 2000


def compute_features(
    featurizer: Featurizer,
    smiles: np.ndarray,
    n_jobs: int = 1,
    pool: Executor | None = None,
    progress: bool = False,
) -> dict[str, torch.Tensor]:
    """The features of ``smiles`` as :func:`featurize_dataset` stores them (``valid`` mask,
    then the graph store's tensors or ``X``); pass them back as its ``features``.

    ``pool``: an open pool of ``n_jobs`` worker processes to use
    (:func:`~molddl.data.featurizers.base.process_pool`), else one is started when needed.
    ``progress``: a bar on stderr for :data:`PROGRESS_MIN` SMILES or more, when stderr is a
    terminal (never in a log); the features are the same either way."""
    if progress and len(smiles) >= PROGRESS_MIN and stderr_is_terminal():
        return _with_progress(featurizer, smiles, n_jobs, pool)
    if featurizer.output == "graph":
        valid, store = featurizer.featurize_graphs(list(smiles), n_jobs=n_jobs, pool=pool)
        out: dict[str, torch.Tensor] = {"valid": torch.from_numpy(valid)}
        return out if store is None else {**out, **store.to_dict()}
    feats = featurizer.featurize(list(smiles), n_jobs=n_jobs, pool=pool)
    valid = np.array([f is not None for f in feats], dtype=bool)
    kept = [f for f in feats if f is not None]
    out = {"valid": torch.from_numpy(valid)}
    if not kept:
        return out
    out["X"] = torch.from_numpy(np.stack(kept).astype(np.float32))
    return out


def _with_progress(
    featurizer: Featurizer, smiles: np.ndarray, n_jobs: int, pool: Executor | None
) -> dict[str, torch.Tensor]:
    """:func:`compute_features` piece by piece under a progress bar, one pool for all."""
    size = PROGRESS_PIECE * max(1, n_jobs)
    own = process_pool(n_jobs) if n_jobs > 1 and pool is None else None
    parts = []
    try:
        with Progress(
            len(smiles), f"featurize ({featurizer.name})", unit="mol", log_lines=False
        ) as bar:
            for start in range(0, len(smiles), size):
                piece = smiles[start : start + size]
                parts.append(compute_features(featurizer, piece, n_jobs, pool or own))
                bar.update(len(piece))
    finally:
        if own is not None:
            own.shutdown(cancel_futures=True)
    return _concatenate(parts)


def _concatenate(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The features of consecutive pieces of SMILES as one :func:`compute_features` result."""
    out = {"valid": torch.cat([p["valid"] for p in parts])}
    filled = [p for p in parts if len(p) > 1]  # a piece without a valid SMILES has no tensors
    if not filled:
        return out
    if "X" in filled[0]:
        return {**out, "X": torch.cat([p["X"] for p in filled])}
    stores = [GraphStore.from_dict(p) for p in filled]
    store = GraphStore.from_counts(
        torch.cat([s.x for s in stores]),
        torch.cat([s.edge_index for s in stores], dim=1),
        torch.cat([s.edge_attr for s in stores]),
        torch.cat([s.node_ptr.diff() for s in stores]),
        torch.cat([s.edge_ptr.diff() for s in stores]),
    )
    return {**out, **store.to_dict()}


def featurize_dataset(
    data: DualLabelDataset,
    featurizer: Featurizer,
    *,
    strict: bool = False,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    n_jobs: int = 1,
    features: dict[str, torch.Tensor] | None = None,
) -> tuple[DualLabelDataset, list[InvalidSmiles]]:
    """Featurize the SMILES of ``data``.

    Invalid SMILES are reported (row number and string, logged as a warning and returned)
    and their samples are skipped; with ``strict=True`` they raise
    :class:`InvalidSmilesError` instead. Results are cached under ``cache_dir`` keyed by the
    SMILES, the featurizer settings and molddl's version, so a second run reads them back.

    ``features``: what :func:`compute_features` returned for ``data.smiles``, computed ahead
    (a screening run featurizes the next chunk while the model predicts this one); the cache
    is then neither read nor filled.

    Returns
    -------
    The featurized dataset (``graphs`` or ``X`` set, invalid samples removed) and the list of
    invalid SMILES.
    """
    if data.smiles is None:
        raise ValueError(f"dataset {data.name!r} has no SMILES column to featurize")
    if features is not None:
        if len(features["valid"]) != len(data):
            raise ValueError(
                f"features for {len(features['valid'])} SMILES given for {len(data)} samples"
            )
        use_cache = False
    cache = Path(cache_dir) if cache_dir is not None else default_feature_cache()
    path = cache / f"{_cache_key(featurizer, data.smiles)}.pt"
    stored = features
    if use_cache and path.exists():
        try:
            stored = torch.load(path, weights_only=True)
        except Exception as err:  # a damaged cache entry is recomputed, never trusted
            logger.warning("feature cache %s unreadable (%s); featurizing again", path, err)
    if stored is None:
        stored = compute_features(featurizer, data.smiles, n_jobs, progress=True)
        if use_cache:
            try:
                with atomic_path(path) as tmp:
                    torch.save(stored, tmp)
            except (OSError, RuntimeError) as err:  # torch: a short write is a RuntimeError
                logger.warning("cannot write the feature cache %s (%s); going on", path, err)
    valid = stored["valid"].numpy()
    invalid = [
        InvalidSmiles(
            int(data.row[i]) + 1,
            str(data.ids[i]),
            str(data.smiles[i]),
            "RDKit rejects it"
            if parse_smiles(str(data.smiles[i])) is None
            else f"parsed, but the {featurizer.name} featurizer cannot featurize it",
        )
        for i in np.flatnonzero(~valid)
    ]
    if invalid:
        if strict:
            raise InvalidSmilesError(invalid)
        more = f"; and {len(invalid) - 10} more" if len(invalid) > 10 else ""
        logger.warning(
            "%s: skipping %d invalid SMILES: %s%s",
            data.name,
            len(invalid),
            "; ".join(str(i) for i in invalid[:10]),
            more,
        )
    if not valid.any():
        raise InvalidSmilesError(invalid)
    kept = data.subset(np.flatnonzero(valid))
    if featurizer.output == "graph":
        kept = replace(kept, graphs=GraphStore.from_dict(stored))
    else:
        kept = replace(
            kept,
            X=stored["X"].numpy(),
            feature_names=tuple(f"{featurizer.name}_{j}" for j in range(stored["X"].shape[1])),
        )
    kept.meta["featurizer"] = featurizer.to_dict()
    kept.meta["kept_positions"] = np.flatnonzero(valid)
    kept.meta["invalid_smiles"] = [str(i) for i in invalid]
    return kept, invalid
