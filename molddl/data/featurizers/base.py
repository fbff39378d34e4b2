"""Featurizers in DeepChem's style: ``featurizer.featurize(smiles) -> list``.

Graph featurizers return PyTorch Geometric :class:`~torch_geometric.data.Data` objects
(``None`` for a SMILES RDKit rejects); fingerprint featurizers return NumPy vectors.
PyG's own ``from_rdmol`` and DeepChem's featurizers do the chemistry; molddl only adapts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any, ClassVar

import numpy as np
import torch
from torch_geometric.data import Data

from molddl.data.graphs import GraphStore

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

        RDLogger.DisableLog("rdApp.*")
        _rdkit_quiet = True
    if not isinstance(smiles, str) or not smiles.strip():
        return None
    mol = Chem.MolFromSmiles(smiles)
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return mol


class Featurizer:
    """Base class: subclasses implement :meth:`_featurize_one` for a parsed molecule."""

    name: ClassVar[str]
    #: ``"graph"`` (PyG ``Data``) or ``"vector"`` (NumPy array of fixed length)
    output: ClassVar[str]

    def featurize(self, smiles: Sequence[str], n_jobs: int = 1) -> list[Any]:
        """Featurize every SMILES; an invalid one gives ``None`` at its position.

        ``n_jobs > 1`` spreads large inputs over worker processes.
        """
        smiles = list(smiles)
        if n_jobs > 1 and len(smiles) >= 4 * 256:
            if self.output == "graph":  # graphs travel between processes as one store
                valid, store = self.featurize_graphs(smiles, n_jobs)
                graphs = iter(range(int(valid.sum())))
                return [store[next(graphs)] if ok else None for ok in valid]
            chunks = [smiles[i : i + 512] for i in range(0, len(smiles), 512)]
            with ProcessPoolExecutor(max_workers=n_jobs) as pool:
                return [out for part in pool.map(self._featurize_many, chunks) for out in part]
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
            if pool is not None:
                parts = list(pool.map(self._graph_chunk, chunks))
            else:
                with ProcessPoolExecutor(max_workers=n_jobs) as own:
                    parts = list(own.map(self._graph_chunk, chunks))
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


class PyGGraphFeaturizer(Featurizer):
    """PyG's molecular graph features (``torch_geometric.utils.from_rdmol``): 9 categorical
    atom features, 3 categorical bond features, both directions of every bond.

    Node features are integer category indices (shape ``N x 9``) into PyG's own ``x_map`` /
    ``e_map`` tables, embedded by the encoder with one table per column
    (:attr:`node_cardinalities` gives their sizes). The output equals ``from_rdmol``'s
    exactly; the lookups are dictionaries built once instead of ``list.index`` over
    stringified enums, which made ``from_rdmol`` the slowest step of screening (see
    ``benchmarks/featurization.py``). A value outside PyG's tables makes the molecule
    invalid (reported) instead of raising.
    """

    name = "pyg"
    output = "graph"
    categorical = True

    def __init__(self) -> None:
        from rdkit.Chem import rdchem
        from torch_geometric.utils.smiles import e_map, x_map

        self.node_cardinalities = [len(v) for v in x_map.values()]
        self.edge_cardinalities = [len(v) for v in e_map.values()]
        self.node_dim = len(self.node_cardinalities)
        self.edge_dim = len(self.edge_cardinalities)
        # RDKit enum value -> PyG index, for the four enum columns
        self._chirality = _enum_index(rdchem.ChiralType, x_map["chirality"])
        self._hybridization = _enum_index(rdchem.HybridizationType, x_map["hybridization"])
        self._bond_type = _enum_index(rdchem.BondType, e_map["bond_type"])
        self._stereo = _enum_index(rdchem.BondStereo, e_map["stereo"])
        self._no_chirality = self._chirality[rdchem.ChiralType.CHI_UNSPECIFIED]
        self._no_stereo = self._stereo[rdchem.BondStereo.STEREONONE]
        # the integer columns are ranges: index = value - first value, range-checked at once
        self._x_offset = np.zeros(self.node_dim, dtype=np.int64)
        for j, (key, vals) in enumerate(x_map.items()):
            if key not in ("chirality", "hybridization"):
                if list(vals) != list(range(int(vals[0]), int(vals[0]) + len(vals))):
                    raise RuntimeError(f"PyG's x_map[{key!r}] is no longer a range of integers")
                self._x_offset[j] = int(vals[0])
        self._x_card = np.array(self.node_cardinalities, dtype=np.int64)

    def _featurize_one(self, mol) -> Data | None:
        arrays = self._graph_arrays(mol)
        if arrays is None:
            return None
        x, edge_index, edge_attr = (torch.from_numpy(a) for a in arrays)
        return Data(x=x, edge_index=edge_index, edge_attr=edge_attr)

    def _graph_arrays(
        self, mol, stereo: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        # One Python call into RDKit per atom or bond property is most of the cost (timed
        # in benchmarks/featurization.py --profile), so fewer calls: atoms by index
        # (cheaper than iterating GetAtoms()), total degree as bonds + Hs (RDKit's own
        # definition), and no chirality or bond stereo read when the SMILES carries none
        # (``stereo``: the SMILES parser sets them only from STEREO_MARKS).
        chir, hyb = self._chirality, self._hybridization
        btype, bstereo = self._bond_type, self._stereo
        n = mol.GetNumAtoms()
        atom, bond = mol.GetAtomWithIdx, mol.GetBondWithIdx
        try:
            x = [
                (
                    a.GetAtomicNum(),
                    chir[a.GetChiralTag()] if stereo else self._no_chirality,
                    0,  # total degree, below
                    a.GetFormalCharge(),
                    a.GetTotalNumHs(),
                    a.GetNumRadicalElectrons(),
                    hyb[a.GetHybridization()],
                    a.GetIsAromatic(),
                    a.IsInRing(),
                )
                for a in map(atom, range(n))
            ]
            bonds = [
                (
                    b.GetBeginAtomIdx(),
                    b.GetEndAtomIdx(),
                    btype[b.GetBondType()],
                    bstereo[b.GetStereo()] if stereo else self._no_stereo,
                    b.GetIsConjugated(),
                )
                for b in map(bond, range(mol.GetNumBonds()))
            ]
        except KeyError:  # an enum value outside PyG's tables
            return None
        xa = np.asarray(x, dtype=np.int64).reshape(-1, 9)
        if bonds:
            b = np.asarray(bonds, dtype=np.int64)
            xa[:, 2] = np.bincount(b[:, :2].ravel(), minlength=n)
        xa[:, 2] += xa[:, 4]
        xa -= self._x_offset
        if not ((xa >= 0) & (xa < self._x_card)).all():  # a value outside PyG's tables
            return None
        if bonds:
            src = np.concatenate([b[:, 0], b[:, 1]])
            dst = np.concatenate([b[:, 1], b[:, 0]])
            attr = np.concatenate([b[:, 2:], b[:, 2:]])
            perm = np.argsort(src * n + dst, kind="stable")
            edge_index = np.stack([src[perm], dst[perm]])
            edge_attr = attr[perm]
        else:
            edge_index = np.zeros((2, 0), dtype=np.int64)
            edge_attr = np.zeros((0, 3), dtype=np.int64)
        return xa, edge_index, edge_attr


def _enum_index(enum_type, names: list[str]) -> dict[object, int]:
    """``{RDKit enum value: position of its name in names}`` for the names RDKit knows."""
    return {enum_type.names[name]: i for i, name in enumerate(names) if name in enum_type.names}


class DeepChemGraphFeaturizer(Featurizer):
    """DeepChem's ``MolGraphConvFeaturizer(use_edges=True)`` converted to PyG graphs.

    Features are floats (30 per atom, 11 per bond); the encoder projects them linearly.
    """

    name = "deepchem"
    output = "graph"
    categorical = False

    def __init__(self) -> None:
        from deepchem.feat import MolGraphConvFeaturizer

        self._dc = MolGraphConvFeaturizer(use_edges=True)
        self.node_cardinalities: list[int] = []
        self.edge_cardinalities: list[int] = []
        self.node_dim = 30
        self.edge_dim = 11

    def _featurize_one(self, mol) -> Data | None:
        graphs = self._dc.featurize([mol])
        g = graphs[0]
        if not hasattr(g, "node_features"):
            return None
        return Data(
            x=torch.as_tensor(g.node_features, dtype=torch.float32),
            edge_index=torch.as_tensor(g.edge_index, dtype=torch.long),
            edge_attr=torch.as_tensor(g.edge_features, dtype=torch.float32).reshape(-1, 11),
        )


class MorganFingerprint(Featurizer):
    """Morgan / ECFP bit vector (``radius`` 2 = ECFP4), ``n_bits`` long."""

    name = "morgan"
    output = "vector"

    def __init__(self, radius: int = 2, n_bits: int = 2048) -> None:
        self.radius = radius
        self.n_bits = n_bits

    @property
    def dim(self) -> int:
        return self.n_bits

    def _featurize_one(self, mol) -> np.ndarray:
        from rdkit.Chem import rdFingerprintGenerator

        gen = rdFingerprintGenerator.GetMorganGenerator(radius=self.radius, fpSize=self.n_bits)
        return gen.GetFingerprintAsNumPy(mol).astype(np.float32)

    def to_dict(self) -> dict:
        return {"name": self.name, "radius": self.radius, "n_bits": self.n_bits}


class MACCSKeys(Featurizer):
    """The 166 MACCS structural keys (RDKit's bit 0 is unused and dropped)."""

    name = "maccs"
    output = "vector"
    dim = 166

    def _featurize_one(self, mol) -> np.ndarray:
        from rdkit.Chem import MACCSkeys

        bits = MACCSkeys.GenMACCSKeys(mol)
        return np.array([bits.GetBit(i) for i in range(1, 167)], dtype=np.float32)


FEATURIZERS: dict[str, type[Featurizer]] = {
    cls.name: cls
    for cls in (PyGGraphFeaturizer, DeepChemGraphFeaturizer, MorganFingerprint, MACCSKeys)
}


def featurizer_from_dict(settings: dict) -> Featurizer:
    """Rebuild a featurizer from :meth:`Featurizer.to_dict` (or a config section)."""
    settings = dict(settings)
    name = settings.pop("name", "pyg")
    if name not in FEATURIZERS:
        raise ValueError(f"unknown featurizer {name!r}; choose one of {', '.join(FEATURIZERS)}")
    return FEATURIZERS[name](**settings)
