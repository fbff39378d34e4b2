"""The featurizer base class, the registry of featurizers by name, and SMILES parsing.

Featurizers work in DeepChem's style: ``featurizer.featurize(smiles) -> list``. Graph
featurizers (:mod:`molddl.data.featurizers.graph`) return PyTorch Geometric
:class:`~torch_geometric.data.Data` objects (``None`` for a SMILES RDKit rejects);
fingerprint featurizers (:mod:`molddl.data.featurizers.fingerprints`) return NumPy vectors.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any, ClassVar

import numpy as np
import torch

from molddl.data.featurizers.store import GraphStore
from molddl.workers import die_with_parent

logger = logging.getLogger(__name__)


_rdkit_quiet = False

#: the characters through which a SMILES can carry stereo: chirality (``@``), double-bond
#: directions (``/``, ``\\``) and CXSMILES extensions (``|t:4|``, ``|w:1.0|`` set double-bond
#: stereo); RDKit's parser sets no chiral tag or bond stereo without one of them
STEREO_MARKS = ("@", "/", "\\", "|")


def parse_smiles(smiles: str):
    """An RDKit molecule, or ``None`` when RDKit rejects the string or it has no atom."""
    from rdkit import Chem

    global _rdkit_quiet
    if not _rdkit_quiet:  # once per process: molddl reports invalid SMILES itself
        from rdkit import RDLogger

        RDLogger.DisableLog("rdApp.*")  # type: ignore[attr-defined]  # rdkit-stubs drop the re-export
        _rdkit_quiet = True
    if not isinstance(smiles, str) or not smiles.strip():
        return None
    mol = Chem.MolFromSmiles(smiles)
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return mol


def worker_init() -> None:
    """Initializer of molddl's featurization workers: a worker dies with the process that
    started it (:func:`molddl.workers.die_with_parent`; a killed ``molddl predict`` leaves no
    orphan behind) and leaves Ctrl-C to it (the parent shuts the pool down; no traceback from
    each worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler, if inherited
    die_with_parent()


def process_pool(n_jobs: int) -> ProcessPoolExecutor:
    """A pool of ``n_jobs`` worker processes that die with this one (:func:`worker_init`);
    start it from the main thread."""
    return ProcessPoolExecutor(max_workers=n_jobs, initializer=worker_init)


def _map(fn, chunks: list, n_jobs: int, pool: Executor | None) -> list:
    """``[fn(c) for c in chunks]`` in ``pool``, else in a pool of ``n_jobs`` of its own that an
    exception (Ctrl-C) shuts down at once, without computing the chunks still queued."""
    if pool is not None:
        return list(pool.map(fn, chunks))
    own = process_pool(n_jobs)
    try:
        return list(own.map(fn, chunks))
    finally:
        own.shutdown(cancel_futures=True)


#: every featurizer class by its ``name``, for :func:`featurizer_from_dict`: a subclass that
#: sets ``name`` itself registers on definition (importing :mod:`molddl.data.featurizers`
#: defines the built-in ones)
FEATURIZERS: dict[str, type[Featurizer]] = {}


class Featurizer:
    """Base class: subclasses implement :meth:`_featurize_one` for a parsed molecule.

    A subclass that sets ``name`` joins :data:`FEATURIZERS` under it (a subclass that only
    changes behaviour, such as a test double, inherits its parent's name and does not).
    """

    name: ClassVar[str]
    #: ``"graph"`` (PyG ``Data``) or ``"vector"`` (NumPy array of fixed length)
    output: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            taken = FEATURIZERS.setdefault(cls.name, cls)
            if taken is not cls:
                raise ValueError(
                    f"featurizer name {cls.name!r} is taken by "
                    f"{taken.__module__}.{taken.__qualname__}"
                )

    def featurize(
        self, smiles: Sequence[str], n_jobs: int = 1, pool: Executor | None = None
    ) -> list[Any]:
        """Featurize every SMILES; an invalid one gives ``None`` at its position.

        ``n_jobs > 1`` spreads large inputs over worker processes (``pool``: an open pool of
        ``n_jobs`` workers to use instead of starting one).
        """
        smiles = list(smiles)
        if n_jobs > 1 and len(smiles) >= 4 * 256:
            if self.output == "graph":  # graphs travel between processes as one store
                valid, store = self.featurize_graphs(smiles, n_jobs, pool)
                if store is None:  # no valid SMILES
                    return [None] * len(smiles)
                graphs = iter(range(int(valid.sum())))
                return [store[next(graphs)] if ok else None for ok in valid]
            chunks = [smiles[i : i + 512] for i in range(0, len(smiles), 512)]
            parts = _map(self._featurize_many, chunks, n_jobs, pool)
            return [out for part in parts for out in part]
        return self._featurize_many(smiles)

    def featurize_graphs(
        self, smiles: Sequence[str], n_jobs: int = 1, pool: Executor | None = None
    ) -> tuple[np.ndarray, GraphStore | None]:
        """Graph featurizers: every SMILES straight into one :class:`GraphStore`.

        Returns the mask of valid SMILES and the store of their graphs, in order (``None``
        when no SMILES is valid). Equal to ``GraphStore.from_data_list`` over the valid
        graphs of :meth:`featurize`, without a ``Data`` object per molecule; workers send
        back one set of NumPy arrays per chunk (torch tensors would travel between processes
        as file descriptors, and thousands of them exhaust the limit). ``pool``: an open process pool of ``n_jobs``
        workers to use instead of starting one (a screening run keeps one for every chunk).
        """
        if self.output != "graph":
            raise TypeError(f"the {self.name} featurizer makes vectors, not graphs")
        smiles = list(smiles)
        if n_jobs > 1 and len(smiles) >= 4 * 256:
            size = min(2048, -(-len(smiles) // (4 * n_jobs)))  # >= 4 chunks per worker
            chunks = [smiles[i : i + size] for i in range(0, len(smiles), size)]
            parts = _map(self._graph_chunk, chunks, n_jobs, pool)
        else:
            parts = [self._graph_chunk(smiles)]
        valid = np.concatenate([p[0] for p in parts])
        parts = [p for p in parts if p[0].any()]
        if not parts:
            return valid, None
        x, edge_index, edge_attr, n_nodes, n_edges = (
            torch.from_numpy(np.concatenate([p[j] for p in parts], axis=-1 if j == 2 else 0))
            for j in range(1, 6)
        )
        return valid, GraphStore.from_counts(x, edge_index, edge_attr, n_nodes, n_edges)

    def _graph_chunk(self, smiles: list[str]) -> tuple[np.ndarray, ...]:
        """``valid, x, edge_index, edge_attr, n_nodes, n_edges`` of a chunk, as arrays."""
        valid = np.zeros(len(smiles), dtype=bool)
        xs, eis, eas = [], [], []
        for i, s in enumerate(smiles):
            mol = parse_smiles(s)
            stereo = mol is not None and any(c in s for c in STEREO_MARKS)
            arrays = None if mol is None else self._graph_arrays(mol, stereo)
            if arrays is not None:
                valid[i] = True
                xs.append(arrays[0])
                eis.append(arrays[1])
                eas.append(arrays[2])
        if not xs:
            return (valid,)  # the caller skips chunks without a valid molecule
        n_nodes = np.array([len(x) for x in xs], dtype=np.int64)
        n_edges = np.array([e.shape[1] for e in eis], dtype=np.int64)
        return (valid, np.concatenate(xs), np.concatenate(eis, axis=1), np.concatenate(eas),
                n_nodes, n_edges)  # fmt: skip

    def _graph_arrays(
        self, mol, stereo: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``x``, ``edge_index``, ``edge_attr`` of one molecule (``None``: cannot featurize).

        ``stereo=False`` says the molecule has no stereo information (its SMILES has none
        of :data:`STEREO_MARKS`), so a featurizer may skip reading it."""
        g = self._featurize_one(mol)
        return None if g is None else (g.x.numpy(), g.edge_index.numpy(), g.edge_attr.numpy())

    def _featurize_many(self, smiles: list[str]) -> list[Any]:
        out = []
        for s in smiles:
            mol = parse_smiles(s)
            out.append(None if mol is None else self._featurize_one(mol))
        return out

    def _featurize_one(self, mol) -> Any:
        raise NotImplementedError

    def to_dict(self) -> dict:
        """Settings that rebuild this featurizer with :func:`featurizer_from_dict`."""
        return {"name": self.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "name")
        return f"{type(self).__name__}({args})"


def featurizer_from_dict(settings: dict) -> Featurizer:
    """Rebuild a featurizer from :meth:`Featurizer.to_dict` (or a config section)."""
    settings = dict(settings)
    name = settings.pop("name", "pyg")
    if name not in FEATURIZERS:
        raise ValueError(f"unknown featurizer {name!r}; choose one of {', '.join(FEATURIZERS)}")
    return FEATURIZERS[name](**settings)
