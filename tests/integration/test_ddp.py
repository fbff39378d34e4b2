"""Data-parallel training through Lightning's DDP: two CPU processes (gloo) train together
and end with identical weights."""

from __future__ import annotations

import hashlib

import lightning as L
import numpy as np
import pytest
import torch

from molddl.config import Config
from molddl.data.preprocess import Preprocessor
from molddl.data.synthetic import make_dual_label
from molddl.evaluation.metrics import compute
from molddl.models.nets import DualTowerNet, MarginalNet
from molddl.models.training import DLLModule, MarginalModule, fit_module
from molddl.nn.towers import single_reveal

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


def _roc_auc(pre: Preprocessor, y: torch.Tensor, states: list[torch.Tensor]) -> float:
    """``val_roc_auc`` as training computes it: the mean over labels, in the user's units."""
    values = [
        compute(
            "roc_auc",
            pre.truth_to_user(k, y[:, k].numpy()),
            pre.to_user(k, states[k].numpy()),
            kind="binary",
        )
        for k in range(2)
    ]
    return float(np.mean(values))


class ValMetricProbe(L.Callback):
    """Each rank writes the ``val_roc_auc`` it logged, the same metric on its own shard of
    the validation part, and the shard's size."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def on_validation_end(self, trainer, pl_module) -> None:
        y = torch.cat([b[0] for b in pl_module._val])
        states = [torch.cat([b[1][k] for b in pl_module._val]) for k in range(2)]
        logged = float(trainer.callback_metrics["val_roc_auc"])
        shard = _roc_auc(pl_module.pre, y, states)
        with open(f"{self.folder}/val{trainer.global_rank}.txt", "w") as fh:
            fh.write(f"{logged!r} {shard!r} {len(y)}")


def test_ddp_validation_metric_is_computed_on_the_whole_validation_part(tmp_path):
    """Under DDP each rank validates a shard; the monitored ROC-AUC is the one of all
    validation rows (what one process computes), not a mean of per-shard ROC-AUCs. The
    validation part has an odd number of rows, so an even split would need a padded one."""
    data = make_dual_label(n=801, kind="binary", missing_rate=0.3, seed=1)
    both = np.flatnonzero(~np.isnan(data.y).any(axis=1))
    # an odd number of rows, the first with both labels (the one padding would repeat)
    # an odd number of rows, the first with both labels: the row that padding would repeat
    first = both[both >= 600][0]
    val_rows = np.concatenate([[first], np.setdiff1d(np.arange(600, 801), [first])])
    assert len(val_rows) % 2 == 1
    train, val = data.subset(np.arange(600)), data.subset(val_rows)
    cfg = Config.from_dict(
        {
            "model": {"encoder": "mlp", "hidden": 16, "layers": 2, "tower_hidden": 16},
            "train": {
                "max_epochs": 1,
                "patience": 1,
                "devices": 2,
                "strategy": "ddp_spawn",
                "monitor": "val_roc_auc",
                "losses": ["sup", "rec"],
            },
        }
    )
    pre = Preprocessor.fit(train)
    torch.manual_seed(0)
    net = DualTowerNet(cfg.model, pre.labels, pre.input_info)
    fit_module(
        DLLModule(net, None, cfg.train, pre),
        pre.transform(train),
        pre.transform(val),
        cfg.train,
        seed=0,
        max_epochs=1,
        accelerator="cpu",
        callbacks=[ValMetricProbe(str(tmp_path))],
    )
    ranks = [(tmp_path / f"val{r}.txt").read_text().split() for r in (0, 1)]
    logged = [float(r[0]) for r in ranks]
    shards = [float(r[1]) for r in ranks]

    # one process, the whole validation part, the weights the ranks validated (1 epoch)
    va = pre.transform(val)
    rows = ~torch.isnan(va.y).any(dim=1)
    net.eval()
    with torch.no_grad():
        states = single_reveal(net.towers, net.encoder(va.inputs[rows]), va.y[rows])
    whole = _roc_auc(pre, va.y[rows], states)

    assert sum(int(r[2]) for r in ranks) == int(rows.sum())  # every row once, none twice
    assert logged[0] == logged[1]
    assert logged[0] == pytest.approx(whole, abs=1e-7)  # float32 in the log
    assert shards[0] != pytest.approx(shards[1], abs=1e-3)
    assert np.mean(shards) != pytest.approx(whole, abs=1e-6)  # the shards' mean is not it
