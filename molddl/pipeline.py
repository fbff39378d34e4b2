"""From a data config to the three parts: load, split, then mask (SPEC §6)."""

from __future__ import annotations

from pathlib import Path

from molddl.config import DataConfig
from molddl.data.dataset import DualLabelDataset
from molddl.data.featurizers import featurize_dataset, featurizer_from_dict
from molddl.data.labels import check_learnable, check_two_labels
from molddl.data.loaders import LOADERS, load_dataset
from molddl.data.masking import apply_missingness
from molddl.data.splits import split_dataset


def load_data(cfg: DataConfig, featurize: bool = True) -> DualLabelDataset:
    """The dataset a config names, with its label columns; molecules come featurized unless
    ``featurize`` is false."""
    kwargs: dict = {}
    if cfg.dataset not in LOADERS:
        kwargs = {
            "smiles_column": cfg.smiles_column,
            "feature_columns": cfg.feature_columns,
            "id_column": cfg.id_column,
            "label_kinds": cfg.label_kinds,
        }
        if not Path(cfg.dataset).exists():
            raise FileNotFoundError(f"data.dataset: file {cfg.dataset} does not exist")
    data = load_dataset(cfg.dataset, labels=cfg.labels, data_dir=cfg.data_dir, **kwargs)
    for k, spec in enumerate(data.labels):  # data to learn from: a single class teaches nothing
        check_learnable(spec, data.y[:, k])
    if data.is_molecular and featurize:
        # featurize once, here: invalid SMILES are reported once (or stop the run under
        # strict_smiles) and no part of the split holds a molecule that cannot be scored
        data, _ = featurize_dataset(
            data, featurizer_from_dict({"name": cfg.featurizer}), strict=cfg.strict_smiles
        )
    return data


def load_splits(
    cfg: DataConfig, seed: int
) -> tuple[DualLabelDataset, DualLabelDataset, DualLabelDataset]:
    """Split first (seeded), then hide labels of train / val at ``cfg.missing_rate``; the
    test part keeps its truth for scoring."""
    data = load_data(cfg)
    check_two_labels(data.label_names)
    train, val, test = split_dataset(data, cfg.split, cfg.split_fractions, seed)
    if cfg.missing_rate:
        train, val, test = apply_missingness(train, val, test, cfg.missing_rate, seed)
    return train, val, test
