"""Training loop behaviour the losses alone do not show: early stopping restores the best
weights, the CSV log, seeding, and mini-batches with nothing to learn."""

from __future__ import annotations

import copy
import warnings

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

from molddl.data.synthetic import make_dual_label
from molddl.models.estimator import DualLabelModel
from molddl.models.training import DLLModule, MarginalModule, loader

CFG = {
    "model": {"encoder": "mlp", "hidden": 8, "layers": 2, "tower_hidden": 8},
    "device": "cpu",
}
#: a high learning rate makes the validation loss turn up after a couple of epochs, so early
#: stopping ends the run and the best epoch is not the last one
EARLY = {
    "model": {"encoder": "mlp", "hidden": 16, "layers": 2, "tower_hidden": 16},
    "train": {"max_epochs": 12, "patience": 2, "batch_size": 16, "lr": 0.05},
    "device": "cpu",
    "seed": 0,
}
TERMS = {"marginal": ["loss", "loss_y1", "loss_y2"], "dll": ["loss", "loss_sup", "loss_rec", "loss_dual"]}  # fmt: skip


def _config(log_dir=None, seed=0) -> dict:
    cfg = copy.deepcopy(EARLY)
    cfg["train"]["log_dir"] = None if log_dir is None else str(log_dir)
    cfg["seed"] = seed
    return cfg


@pytest.fixture(scope="module")
def parts():
    data = make_dual_label(160, n_features=4, missing_rate=0.3, seed=0)
    return data.subset(range(120)), data.subset(range(120, 160))


@pytest.fixture(scope="module")
def run(parts, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("logs")
    model = DualLabelModel(_config(log_dir)).fit(*parts)
    return model, log_dir


def _log(log_dir, stage: str, split: str) -> pd.DataFrame:
    """The rows of the CSV log that hold ``split``'s (train / val) epoch values."""
    log = pd.read_csv(log_dir / stage / "metrics.csv")
    return log[log[f"{split}_loss"].notna()].reset_index(drop=True)


def _validation_loss(model: DualLabelModel, val, stage: str) -> float:
    """``val_loss`` of the model's current weights, computed the way training logs it."""
    pre, cfg = model.preprocessor_, model.config_
    module = (
        MarginalModule(copy.deepcopy(model.marginal_), cfg.train, pre)
        if stage == "marginal"
        else DLLModule(copy.deepcopy(model.net_), copy.deepcopy(model.marginal_), cfg.train, pre)
    )
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = trainer.validate(
            module, loader(pre.transform(val), 4 * cfg.train.batch_size, False), verbose=False
        )
    return float(out[0]["val_loss"])


@pytest.mark.parametrize("stage", ["marginal", "dll"])
def test_early_stopping_restores_the_weights_of_the_best_epoch(run, parts, stage):
    model, log_dir = run
    history = model.history_[stage]
    val_loss = _log(log_dir, stage, "val")["val_loss"].to_numpy()
    assert len(val_loss) == history["epochs"] < EARLY["train"]["max_epochs"]  # stopped early
    assert history["best_epoch"] == int(np.argmin(val_loss))
    assert history["best_score"] == pytest.approx(val_loss.min(), rel=1e-6)
    # patience 2: the run went on two epochs past the best one, both worse
    assert history["best_epoch"] == history["epochs"] - 3
    assert val_loss[-1] > val_loss.min() * (1 + 1e-4)

    restored = _validation_loss(model, parts[1], stage)
    assert restored == pytest.approx(val_loss.min(), rel=1e-5)  # not the last epoch's value


@pytest.mark.parametrize("stage", ["marginal", "dll"])
def test_csv_log_has_one_row_per_epoch_with_every_loss_term(run, stage):
    model, log_dir = run
    epochs = model.history_[stage]["epochs"]
    for split in ("train", "val"):
        rows = _log(log_dir, stage, split)
        assert rows["epoch"].tolist() == list(range(epochs)), split
        cols = [f"{split}_{t}" if t != "loss" else f"{split}_loss" for t in TERMS[stage]]
        values = rows[cols].to_numpy(dtype=float)
        assert np.isfinite(values).all(), (split, rows[cols])
        # the total is the sum of the terms, epoch by epoch
        np.testing.assert_allclose(values[:, 0], values[:, 1:].sum(axis=1), rtol=1e-5)


def _weights(model: DualLabelModel) -> dict[str, bytes]:
    return {
        f"{part}.{name}": t.detach().cpu().numpy().tobytes()
        for part, net in (("net", model.net_), ("marginal", model.marginal_))
        for name, t in net.state_dict().items()
    }


def test_the_same_seed_gives_identical_weights_and_another_seed_different_ones(run, parts):
    first = _weights(run[0])
    again = _weights(DualLabelModel(_config()).fit(*parts))
    assert again.keys() == first.keys()
    assert [k for k in first if first[k] != again[k]] == []  # byte for byte

    other = _weights(DualLabelModel(_config(seed=1)).fit(*parts))
    differ = [k for k in first if first[k] != other[k]]
    weights = [k for k in first if k.endswith("weight")]
    assert set(weights) <= set(differ)  # every weight matrix, not a stray buffer


class _BatchOutputs(L.Callback):
    def __init__(self) -> None:
        self.outputs: list = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.outputs.append((bool(torch.isnan(batch[1]).all()), outputs))


def test_batch_of_unlabelled_samples_does_not_stop_training():
    """A mini-batch made only of D0 members has no loss; training skips it, not crashes."""
    data = make_dual_label(40, n_features=3, missing_rate=0.3, seed=0)
    y = data.y.copy()
    y[:5] = np.nan  # several D0 rows; with batch_size 1 each is its own batch
    train, val = data.with_labels(y).subset(range(30)), data.subset(range(30, 40))
    n_d0 = int(np.isnan(train.y).all(axis=1).sum())
    assert n_d0 >= 5
    seen = _BatchOutputs()
    model = DualLabelModel({**CFG, "train": {"max_epochs": 1, "batch_size": 1}})
    model.fit(train, val, callbacks=[seen])

    assert model.history_["dll"]["epochs"] == 1
    assert len(seen.outputs) == 30  # every batch ran, the epoch went on past the D0 ones
    skipped = [out for d0, out in seen.outputs if d0]
    trained = [out for d0, out in seen.outputs if not d0]
    assert len(skipped) == n_d0 and all(out in (None, {}) for out in skipped)
    assert all(torch.isfinite(out["loss"]) for out in trained)
    assert all(torch.isfinite(p).all() for p in model.net_.parameters())
