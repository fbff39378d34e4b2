"""Data-parallel training through Lightning's DDP: two CPU processes (gloo) train together
and end with identical weights."""

from __future__ import annotations

import hashlib

import lightning as L
import numpy as np
import pytest
import torch

from molddl.config import Config
from molddl.data.synthetic import make_dual_label
from molddl.models.nets import MarginalNet
from molddl.models.preprocess import Preprocessor
from molddl.models.training import MarginalModule, fit_module

pytestmark = pytest.mark.slow


class WeightDigest(L.Callback):
    """Each rank writes a digest of its weights and its first/last training loss."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.losses: list[float] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.losses.append(float(trainer.callback_metrics["train_loss"]))

    def on_fit_end(self, trainer, pl_module) -> None:
        h = hashlib.sha256()
        for name, tensor in sorted(pl_module.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().numpy().tobytes())
        rank = trainer.global_rank
        with open(f"{self.folder}/rank{rank}.txt", "w") as fh:
            fh.write(f"{h.hexdigest()} {self.losses[0]} {self.losses[-1]} {trainer.world_size}")


def test_two_cpu_processes_train_and_hold_identical_weights(tmp_path):
    data = make_dual_label(n=800, kind="binary", missing_rate=0.3, seed=0)
    cfg = Config.from_dict(
        {
            "model": {"encoder": "mlp", "hidden": 16, "layers": 2, "tower_hidden": 16},
            "train": {"max_epochs": 4, "patience": 4, "devices": 2, "strategy": "ddp_spawn"},
        }
    )
    train, val = data.subset(np.arange(600)), data.subset(np.arange(600, 800))
    pre = Preprocessor.fit(train)
    net = MarginalNet(cfg.model, pre.labels, pre.input_info)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fit_module(
        MarginalModule(net, cfg.train, pre),
        pre.transform(train),
        pre.transform(val),
        cfg.train,
        seed=0,
        max_epochs=cfg.train.max_epochs,
        accelerator="cpu",
        callbacks=[WeightDigest(str(tmp_path))],
    )
    reports = [(tmp_path / f"rank{r}.txt").read_text().split() for r in (0, 1)]
    assert all(r[3] == "2" for r in reports), "both ranks ran in a world of size 2"
    assert reports[0][0] == reports[1][0], "the ranks' weights differ"
    assert all(float(r[2]) < float(r[1]) for r in reports), "training loss did not go down"
    after = net.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "weights came back"
