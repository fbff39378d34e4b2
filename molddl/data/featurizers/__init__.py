"""Featurizers: SMILES to model inputs, and featurizing a whole dataset.

- :mod:`~molddl.data.featurizers.base`: the :class:`Featurizer` base class, the registry
  (:data:`FEATURIZERS`, :func:`featurizer_from_dict`) and SMILES parsing;
- :mod:`~molddl.data.featurizers.graph`: PyG and DeepChem molecular graphs;
- :mod:`~molddl.data.featurizers.fingerprints`: Morgan and MACCS fingerprints;
- :mod:`~molddl.data.featurizers.store`: :class:`GraphStore`, graphs held as flat tensors;
- :mod:`~molddl.data.featurizers.run`: :func:`featurize_dataset` (invalid SMILES reported,
  the on-disk feature cache, worker processes) and :func:`compute_features`.
"""

# the graph featurizers register first, so FEATURIZERS lists the default (pyg) first
from molddl.data.featurizers.graph import DeepChemGraphFeaturizer, PyGGraphFeaturizer

# isort: split
from molddl.data.featurizers.base import (
    FEATURIZERS,
    STEREO_MARKS,
    Featurizer,
    featurizer_from_dict,
    parse_smiles,
)
from molddl.data.featurizers.fingerprints import MACCSKeys, MorganFingerprint
from molddl.data.featurizers.run import (
    InvalidSmiles,
    InvalidSmilesError,
    compute_features,
    default_feature_cache,
    featurize_dataset,
)
from molddl.data.featurizers.store import GraphStore

__all__ = [
    "FEATURIZERS",
    "STEREO_MARKS",
    "DeepChemGraphFeaturizer",
    "Featurizer",
    "GraphStore",
    "InvalidSmiles",
    "InvalidSmilesError",
    "MACCSKeys",
    "MorganFingerprint",
    "PyGGraphFeaturizer",
    "compute_features",
    "default_feature_cache",
    "featurize_dataset",
    "featurizer_from_dict",
    "parse_smiles",
]
