"""Featurizers in DeepChem's style: ``featurizer.featurize(smiles) -> list``.

Graph featurizers return PyTorch Geometric :class:`~torch_geometric.data.Data` objects
(``None`` for a SMILES RDKit rejects); fingerprint featurizers return NumPy vectors.
PyG's own ``from_rdmol`` and DeepChem's featurizers do the chemistry; molddl only adapts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, ClassVar

import numpy as np
import torch
from torch_geometric.data import Data

logger = logging.getLogger(__name__)


def parse_smiles(smiles: str):
    """An RDKit molecule, or ``None`` when RDKit rejects the string or it has no atom."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
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
            chunks = [smiles[i : i + 512] for i in range(0, len(smiles), 512)]
            with ProcessPoolExecutor(max_workers=n_jobs) as pool:
                parts = pool.map(self._featurize_many_portable, chunks)
                return [_from_portable(out) for part in parts for out in part]
        return self._featurize_many(smiles)

    def _featurize_many_portable(self, smiles: list[str]) -> list[Any]:
        """As :meth:`_featurize_many`, with graphs as NumPy arrays: tensors sent between
        processes travel as file descriptors, and thousands of them exhaust the limit."""
        return [_to_portable(out) for out in self._featurize_many(smiles)]

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


def _to_portable(out: Any) -> Any:
    if isinstance(out, Data):
        return ("graph", out.x.numpy(), out.edge_index.numpy(), out.edge_attr.numpy())
    return out


def _from_portable(out: Any) -> Any:
    if isinstance(out, tuple) and out and out[0] == "graph":
        x, edge_index, edge_attr = (torch.from_numpy(a) for a in out[1:])
        return Data(x=x, edge_index=edge_index, edge_attr=edge_attr)
    return out


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
        from torch_geometric.utils.smiles import e_map, x_map

        self.node_cardinalities = [len(v) for v in x_map.values()]
        self.edge_cardinalities = [len(v) for v in e_map.values()]
        self.node_dim = len(self.node_cardinalities)
        self.edge_dim = len(self.edge_cardinalities)
        self._x_index = [{v: i for i, v in enumerate(vals)} for vals in x_map.values()]
        self._e_index = [{v: i for i, v in enumerate(vals)} for vals in e_map.values()]
        self._enum_index: dict[object, int] = {}  # RDKit enum value -> index, filled lazily

    def _enum(self, table: dict, value) -> int:
        key = (id(table), value)
        idx = self._enum_index.get(key)
        if idx is None:
            idx = self._enum_index[key] = table[str(value)]
        return idx

    def _featurize_one(self, mol) -> Data | None:
        xi, ei, en = self._x_index, self._e_index, self._enum
        try:
            x = [
                (
                    xi[0][a.GetAtomicNum()],
                    en(xi[1], a.GetChiralTag()),
                    xi[2][a.GetTotalDegree()],
                    xi[3][a.GetFormalCharge()],
                    xi[4][a.GetTotalNumHs()],
                    xi[5][a.GetNumRadicalElectrons()],
                    en(xi[6], a.GetHybridization()),
                    int(a.GetIsAromatic()),
                    int(a.IsInRing()),
                )
                for a in mol.GetAtoms()
            ]
            bonds = [
                (
                    b.GetBeginAtomIdx(),
                    b.GetEndAtomIdx(),
                    en(ei[0], b.GetBondType()),
                    en(ei[1], b.GetStereo()),
                    int(b.GetIsConjugated()),
                )
                for b in mol.GetBonds()
            ]
        except KeyError:
            return None
        n = len(x)
        if bonds:
            b = np.asarray(bonds, dtype=np.int64)
            src = np.concatenate([b[:, 0], b[:, 1]])
            dst = np.concatenate([b[:, 1], b[:, 0]])
            attr = np.concatenate([b[:, 2:], b[:, 2:]])
            perm = np.argsort(src * n + dst, kind="stable")
            edge_index = np.stack([src[perm], dst[perm]])
            edge_attr = attr[perm]
        else:
            edge_index = np.zeros((2, 0), dtype=np.int64)
            edge_attr = np.zeros((0, 3), dtype=np.int64)
        return Data(
            x=torch.from_numpy(np.asarray(x, dtype=np.int64).reshape(-1, 9)),
            edge_index=torch.from_numpy(edge_index),
            edge_attr=torch.from_numpy(edge_attr),
        )


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
