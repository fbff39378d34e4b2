"""Fingerprint featurizers: a SMILES to a fixed-length NumPy vector (RDKit computes it)."""

from __future__ import annotations

import numpy as np

from molddl.data.featurizers.base import Featurizer


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

        bits = MACCSkeys.GenMACCSKeys(mol)  # type: ignore[attr-defined]  # missing from rdkit-stubs
        return np.array([bits.GetBit(i) for i in range(1, 167)], dtype=np.float32)
