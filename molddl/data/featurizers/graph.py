"""Graph featurizers: a SMILES to a PyTorch Geometric :class:`~torch_geometric.data.Data`.

PyG's own ``from_rdmol`` and DeepChem's ``MolGraphConvFeaturizer`` do the chemistry; molddl
only adapts (and, for PyG's features, computes them faster with the same result).
"""

from __future__ import annotations

import numpy as np
import torch
from torch_geometric.data import Data

from molddl.data.featurizers.base import Featurizer


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
