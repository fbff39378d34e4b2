"""Lightning modules and the one training loop for the marginal and the dual model.

Validation every epoch, early stopping on a chosen validation metric, restore of the best
weights, seeded and deterministic on CPU, a CSV log of every loss term per epoch.
"""

from __future__ import annotations

import copy
import logging
import warnings

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from molddl.config import TrainConfig
from molddl.evaluation.metrics import compute, get_metric
from molddl.models.losses import dll_losses
from molddl.models.nets import ConditionalNet, DualTowerNet, MarginalNet
from molddl.models.preprocess import Prepared, Preprocessor
from molddl.nn.heads import nll, target_state, to_state

logger = logging.getLogger(__name__)


def loader(data: Prepared, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """Batches of ``(inputs, y)`` built straight from the flat tensors."""
    gen = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        range(len(data)),
        batch_size=batch_size,
        shuffle=shuffle,
        generator=gen,
        collate_fn=data.batch,
    )


class _Module(L.LightningModule):
    """Shared parts: optimiser, validation predictions for metric monitoring."""

    def __init__(self, cfg: TrainConfig, pre: Preprocessor) -> None:
        super().__init__()
        self.cfg, self.pre = cfg, pre
        self._val: list[tuple[torch.Tensor, list[torch.Tensor]]] = []

    def trainable(self):
        raise NotImplementedError

    def configure_optimizers(self):
        return torch.optim.Adam(
            self.trainable(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay
        )

    def _log_terms(self, stage: str, terms: dict[str, torch.Tensor], batch_size: int) -> None:
        for name, value in terms.items():
            key = f"{stage}_loss" if name == "loss" else f"{stage}_{name}"
            self.log(
                key,
                value,
                on_step=False,
                on_epoch=True,
                batch_size=batch_size,
                prog_bar=name == "loss",
                sync_dist=True,  # under DDP every rank sees the same epoch value
            )

    def on_validation_epoch_start(self) -> None:
        self._val = []

    def on_validation_epoch_end(self) -> None:
        """``val_<metric>``: the metric averaged over labels, on single-reveal predictions
        (dual model) or marginal predictions (marginal model), in the labels' own units."""
        if (
            not self._val
            or not self.cfg.monitor.startswith("val_")
            or self.cfg.monitor == "val_loss"
        ):
            return
        name = self.cfg.monitor[4:]
        y = torch.cat([b[0] for b in self._val]).numpy()
        values = []
        for k, spec in enumerate(self.pre.labels):
            if self._val[0][1][k] is None:
                continue
            pred = torch.cat([b[1][k] for b in self._val]).numpy()
            truth = y[:, k]
            if spec.kind == "binary":
                pred = pred[:, 0]
            elif spec.kind == "regression":
                truth, pred = (
                    self.pre.value_from_model(k, truth),
                    self.pre.value_from_model(k, pred[:, 0]),
                )
            if spec.kind in get_metric(name).kinds:
                values.append(compute(name, truth, pred, kind=spec.kind))
        score = (
            float(np.nanmean(values)) if values and not np.all(np.isnan(values)) else float("nan")
        )
        self.log(self.cfg.monitor, score, prog_bar=True, sync_dist=True)


class ConditionalModule(_Module):
    """Trains a :class:`ConditionalNet` (the marginal model, or a baseline stage) with a
    masked loss on every present output label; label inputs come third in the batch."""

    def __init__(self, net: ConditionalNet, cfg: TrainConfig, pre: Preprocessor) -> None:
        super().__init__(cfg, pre)
        self.net = net

    def trainable(self):
        return self.net.parameters()

    def _terms(self, batch):
        x, y = batch[0], batch[1]
        cond = ()
        if self.net.inputs:
            c = batch[2]
            cond = [target_state(self.net.labels[j], c[:, j]) for j in self.net.inputs]
        raw = self.net(x, cond)
        m = ~torch.isnan(y)
        yf = torch.nan_to_num(y)
        terms = {}
        for r, k in zip(raw, self.net.outputs, strict=True):
            per = nll(self.net.labels[k], r, yf[:, k])
            terms[f"loss_y{k + 1}"] = per[m[:, k]].mean() if m[:, k].any() else per.sum() * 0
        terms["loss"] = sum(terms.values())
        return terms, raw, y

    def training_step(self, batch, batch_idx):
        terms, _, y = self._terms(batch)
        self._log_terms("train", terms, len(y))
        return terms["loss"]

    def validation_step(self, batch, batch_idx):
        terms, raw, y = self._terms(batch)
        self._log_terms("val", terms, len(y))
        states = [None] * len(self.net.labels)
        for r, k in zip(raw, self.net.outputs, strict=True):
            states[k] = to_state(self.net.labels[k], r).cpu()
        self._val.append((y.cpu(), states))


#: the marginal model is a conditional model without label inputs
MarginalModule = ConditionalModule


class DLLModule(_Module):
    """Algorithm 1: per mini-batch impute, then ``loss_sup + loss_rec + loss_dual``."""

    def __init__(
        self, net: DualTowerNet, marginal: MarginalNet | None, cfg: TrainConfig, pre: Preprocessor
    ) -> None:
        super().__init__(cfg, pre)
        self.net = net
        self.marginal = marginal
        if marginal is not None:
            marginal.requires_grad_(False)

    def trainable(self):
        return self.net.parameters()

    def on_train_epoch_start(self) -> None:
        if self.marginal is not None:
            self.marginal.eval()  # the fixed marginal model never trains nor drops out

    def _terms(self, batch):
        x, y = batch[0], batch[1]
        mraw = None
        if self.marginal is not None:
            with torch.no_grad():
                mraw = self.marginal(x)
        h = self.net.encoder(x)
        return dll_losses(h, y, self.net.towers, self.cfg, mraw), h, y

    def training_step(self, batch, batch_idx):
        terms, _, y = self._terms(batch)
        if not terms["loss"].requires_grad:  # a batch of D0 members only: nothing to learn
            if self.trainer.world_size == 1:
                return None  # skip the step
            # under DDP every rank must run backward for the gradient all-reduce: a zero
            # loss tied to the weights keeps the ranks in step
            return sum(p.sum() for p in self.net.parameters()) * 0.0
        self._log_terms("train", terms, len(y))
        return terms["loss"]

    def validation_step(self, batch, batch_idx):
        terms, h, y = self._terms(batch)
        self._log_terms("val", terms, len(y))
        both = ~torch.isnan(y).any(dim=1)
        if both.any():
            yb, hb = y[both], h[both]

            towers = self.net.towers
            known = [target_state(towers[k].out_spec, yb[:, k]) for k in range(2)]
            states = [to_state(towers[k].out_spec, towers[k](hb, known[1 - k])) for k in range(2)]
            self._val.append((yb.cpu(), [s.cpu() for s in states]))


class _BestWeights(L.Callback):
    """Keep a copy of the weights at the best validation score; restore them at the end."""

    def __init__(self, monitor: str, mode: str) -> None:
        self.monitor, self.mode = monitor, mode
        self.best: float | None = None
        self.state: dict | None = None
        self.epoch = -1

    def on_validation_end(self, trainer, pl_module) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or trainer.sanity_checking:
            return
        v = float(value)
        if np.isnan(v):
            return
        better = self.best is None or (v < self.best if self.mode == "min" else v > self.best)
        if better:
            self.best, self.epoch = v, trainer.current_epoch
            self.state = copy.deepcopy(pl_module.state_dict())

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.state is not None:
            pl_module.load_state_dict(self.state)


def monitor_mode(monitor: str) -> str:
    if monitor.endswith("loss"):
        return "min"
    name = monitor[4:] if monitor.startswith("val_") else monitor
    return "max" if get_metric(name).higher_is_better else "min"


def fit_module(
    module: _Module,
    train: Prepared,
    val: Prepared,
    cfg: TrainConfig,
    *,
    seed: int,
    max_epochs: int,
    accelerator: str = "auto",
    log_name: str = "dll",
    callbacks: list[L.Callback] | None = None,
) -> dict:
    """Train ``module`` with early stopping on ``cfg.monitor`` and restore its best weights.

    ``callbacks`` are extra Lightning callbacks, run after the best-weights and early-stopping
    ones. Returns a summary: best epoch, best score and epochs run.
    """
    mode = monitor_mode(cfg.monitor)
    best = _BestWeights(cfg.monitor, mode)
    callbacks = [
        best,
        L.pytorch.callbacks.EarlyStopping(
            cfg.monitor, patience=cfg.patience, mode=mode, check_finite=False
        ),
        *(callbacks or []),
    ]
    csv_logger = (
        L.pytorch.loggers.CSVLogger(cfg.log_dir, name=log_name, version="")
        if cfg.log_dir
        else False
    )
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if cfg.strategy == "ddp_spawn":
        # spawned ranks receive the data tensors by pickling; the default file-descriptor
        # sharing fails here on some tensors ("unable to resize file"), files in /dev/shm work
        torch.multiprocessing.set_sharing_strategy("file_system")
    trainer = L.Trainer(
        max_epochs=max_epochs,
        accelerator=accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=cfg.strategy,
        deterministic=True,
        logger=csv_logger,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=cfg.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*deterministic.*")
        warnings.filterwarnings("ignore", message=".*`training_step` returned `None`.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        trainer.fit(
            module,
            loader(train, cfg.batch_size, shuffle=True, seed=seed),
            loader(val, 4 * cfg.batch_size, shuffle=False),
        )
    return {"best_epoch": best.epoch, "best_score": best.best, "epochs": trainer.current_epoch}
