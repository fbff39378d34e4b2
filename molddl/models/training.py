"""Lightning modules and the one training loop for the marginal and the dual model.

Validation every epoch, early stopping on a chosen validation metric, restore of the best
weights, seeded and deterministic on CPU, a CSV log of every loss term per epoch (one row per
epoch, train and validation values side by side; TensorBoard as well with
``train.logger: tensorboard``), progress bars on stderr named by phase, and, inside a
``molddl train`` folder (:mod:`molddl.models.run_folder`), checkpoints from which a killed
run resumes.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import logging
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.plugins import TorchCheckpointIO
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from molddl.config import Config, ConfigError, TrainConfig
from molddl.data.preprocess import Prepared, Preprocessor
from molddl.evaluation.metrics import compute, get_metric
from molddl.io import atomic_path, atomic_write_text
from molddl.models import run_folder
from molddl.models.losses import LossWeights, dll_losses, dual_available
from molddl.models.nets import ConditionalNet, DualTowerNet, MarginalNet
from molddl.nn.towers import single_reveal

logger = logging.getLogger(__name__)


def loader(
    data: Prepared,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    sampler: DistributedSampler | None = None,
) -> DataLoader:
    """Batches of ``(inputs, y)`` built straight from the flat tensors."""
    gen = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        cast(Dataset, range(len(data))),  # sample indices; collate_fn builds the batch
        batch_size=batch_size,
        shuffle=shuffle,
        generator=gen,
        sampler=sampler,
        collate_fn=data.batch,
    )


class ValidationShards(DistributedSampler):
    """The validation rows split over the DDP ranks, each row on exactly one rank.

    Lightning's default sampler pads the shards to equal sizes with repeated rows, and a
    repeated row would count twice in ``val_<metric>``, which is computed on the rows
    gathered from every rank. The rank is read when the sampler is iterated: under
    ``ddp_spawn`` the loader is built before the ranks exist. Being a
    :class:`DistributedSampler`, Lightning keeps it instead of injecting its own."""

    def __init__(self, n: int) -> None:  # no super().__init__(): it needs the process group
        self.n = n

    def _rows(self) -> range:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return range(dist.get_rank(), self.n, dist.get_world_size())
        return range(self.n)

    def __iter__(self):
        return iter(self._rows())

    def __len__(self) -> int:
        return len(self._rows())

    def set_epoch(self, epoch: int) -> None:
        pass


class _Module(L.LightningModule):
    """Shared parts: optimiser, validation predictions for metric monitoring."""

    def __init__(self, cfg: TrainConfig, pre: Preprocessor) -> None:
        super().__init__()
        self.cfg, self.pre = cfg, pre
        # (y, states) per validation batch; a label's state is None where no head predicts it
        self._val: list[tuple[torch.Tensor, list[torch.Tensor | None]]] = []

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
        (dual model) or marginal predictions (marginal model), in the labels' own units.

        Under DDP every rank holds a shard of the validation part; the metric is computed on
        the predictions gathered from all ranks, not averaged over per-rank values (a mean of
        per-shard ROC-AUCs is not the ROC-AUC)."""
        if not self.cfg.monitor.startswith("val_") or self.cfg.monitor == "val_loss":
            return
        name = self.cfg.monitor[4:]
        K = len(self.pre.labels)
        has = [bool(self._val) and self._val[0][1][k] is not None for k in range(K)]
        if self._val:
            y = torch.cat([b[0] for b in self._val])
            # has[k]: every batch holds label k's states (the heads are fixed)
            preds = [
                torch.cat(cast("list[torch.Tensor]", [b[1][k] for b in self._val]))
                if has[k]
                else None
                for k in range(K)
            ]
        else:  # this rank saw no row with both labels
            y, preds = torch.empty(0, K), [None] * K
        if self.trainer.world_size > 1:
            y = _gather_rows(self, y)
            preds = [None if p is None else _gather_rows(self, p) for p in preds]
        values = []
        for k, spec in enumerate(self.pre.labels):
            p = preds[k]
            if p is None or len(p) == 0 or name not in spec.behaviour.metrics:
                continue
            truth = self.pre.truth_to_user(k, y[:, k].numpy())
            values.append(compute(name, truth, self.pre.to_user(k, p.numpy()), kind=spec.kind))
        score = (
            float(np.nanmean(values)) if values and not np.all(np.isnan(values)) else float("nan")
        )
        # every rank computed the same value from the same gathered rows
        self.log(self.cfg.monitor, score, prog_bar=True, sync_dist=False, rank_zero_only=False)


def _gather_rows(module: L.LightningModule, t: torch.Tensor) -> torch.Tensor:
    """The rows of ``t`` from every rank, concatenated in rank order (ranks may hold
    different numbers of rows)."""
    n = torch.tensor([t.shape[0]], device=module.device)
    sizes = cast(torch.Tensor, module.all_gather(n)).reshape(-1).tolist()
    pad = torch.zeros((max(sizes), *t.shape[1:]), dtype=t.dtype, device=module.device)
    pad[: t.shape[0]] = t.to(module.device)
    everything = cast(torch.Tensor, module.all_gather(pad))  # world x max x ...
    return torch.cat([everything[r, : sizes[r]] for r in range(len(sizes))]).cpu()


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
        cond: Sequence[torch.Tensor] = ()
        if self.net.inputs:
            c = batch[2]
            cond = [self.net.kinds[j].target_state(c[:, j]) for j in self.net.inputs]
        raw = self.net(x, cond)
        m = ~torch.isnan(y)
        yf = torch.nan_to_num(y)
        terms: dict[str, torch.Tensor] = {}
        for r, k in zip(raw, self.net.outputs, strict=True):
            per = self.net.kinds[k].loss(r, yf[:, k])
            terms[f"loss_y{k + 1}"] = per[m[:, k]].mean() if m[:, k].any() else per.sum() * 0
        terms["loss"] = cast(torch.Tensor, sum(terms.values()))  # a term per output label
        return terms, raw, y

    def training_step(self, batch, batch_idx):
        terms, _, y = self._terms(batch)
        self._log_terms("train", terms, len(y))
        return terms["loss"]

    def validation_step(self, batch, batch_idx):
        terms, raw, y = self._terms(batch)
        self._log_terms("val", terms, len(y))
        states: list[torch.Tensor | None] = [None] * len(self.net.labels)
        for r, k in zip(raw, self.net.outputs, strict=True):
            states[k] = self.net.kinds[k].to_state(r).cpu()
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
        self.weights = loss_weights(cfg)
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
        return dll_losses(h, y, self.net.towers, self.weights, mraw), h, y

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

            states = single_reveal(self.net.towers, hb, yb)
            self._val.append((yb.cpu(), [s.cpu() for s in states]))


def loss_weights(cfg: TrainConfig) -> LossWeights:
    """The loss terms and weights a training config asks for."""
    return LossWeights(
        alpha=(cfg.alpha1, cfg.alpha2),
        beta=(cfg.beta1, cfg.beta2),
        gamma=cfg.gamma,
        terms=tuple(cfg.losses),
        freeze_scope=cfg.freeze_scope,
        dual_imputed=cfg.dual_imputed,
    )


class _BestWeights(L.Callback):
    """Keep a copy of the weights at the best validation score; restore them at the end.

    The copy travels in checkpoints (:meth:`state_dict`), so a resumed run restores the best
    weights of its epochs before and after the interruption."""

    def __init__(self, monitor: str, mode: str) -> None:
        self.monitor, self.mode = monitor, mode
        self.best: float | None = None
        self.state: dict | None = None
        self.epoch = -1

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "epoch": self.epoch, "state": self.state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best, self.epoch = state_dict["best"], state_dict["epoch"]
        self.state = state_dict["state"]

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


class EpochLog(L.Callback):
    """The CSV log of a training: one row per epoch with every logged value, train and
    validation side by side (``epoch, train_loss, train_loss_y1, ..., val_loss, ...``),
    rewritten atomically at the end of every epoch.

    The rows travel in checkpoints (:meth:`state_dict`): a resumed run writes the rows of the
    epochs before the interruption back, so the log counts epochs across both runs."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.rows: list[dict[str, float]] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer)  # a fresh run replaces an earlier log; a resumed one restores it

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # called after the epoch's validation, with the train values of the whole epoch
        row: dict[str, float] = {"epoch": float(trainer.current_epoch)}
        row.update({k: float(v) for k, v in sorted(trainer.callback_metrics.items())})
        self.rows.append(row)
        self._write(trainer)

    def _write(self, trainer: L.Trainer) -> None:
        if self.path is None or not trainer.is_global_zero:
            return
        if not self.rows:
            self.path.unlink(missing_ok=True)
            return
        table = pd.DataFrame(self.rows)
        table["epoch"] = table["epoch"].astype(int)
        atomic_write_text(self.path, table.to_csv(index=False))

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(r) for r in self.rows]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state_dict["rows"]]


class _RandomState(L.Callback):
    """Puts the random state into checkpoints and back: the generator that shuffles the
    training batches and the global one that dropout draws from. A run resumed from the
    checkpoint of epoch ``k`` then draws, from epoch ``k + 1`` on, what an uninterrupted run
    draws (on one process; under DDP each rank resumes with rank 0's global state)."""

    def __init__(self, generator: torch.Generator | None) -> None:
        self.generator = generator

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"torch": torch.get_rng_state()}
        if self.generator is not None:
            state["loader"] = self.generator.get_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        if self.generator is not None and "loader" in state_dict:
            self.generator.set_state(state_dict["loader"])
        cuda = state_dict.get("cuda")
        if (
            cuda is not None
            and torch.cuda.is_available()
            and len(cuda) == torch.cuda.device_count()
        ):
            torch.cuda.set_rng_state_all(cuda)


#: how a training's phases (``log_name``) are named on its progress bars
PHASE_NAMES = {"marginal": "marginal", "dll": "DLL"}


class PhaseProgressBar(TQDMProgressBar):
    """Lightning's bar, on stderr (Lightning's goes to stdout, where results are printed)
    and named by the phase: ``marginal epoch 3``, ``DLL epoch 0``, ``DLL validation``."""

    def __init__(self, phase: str) -> None:
        super().__init__()
        self.phase = phase

    @property
    def train_description(self) -> str:
        return self.phase

    @property
    def validation_description(self) -> str:
        return f"{self.phase} validation"

    def _on_stderr(self, make: Callable[[], Any]) -> Any:
        # Lightning builds each bar with file=sys.stdout, read when the bar is made
        with contextlib.redirect_stdout(sys.stderr):
            return make()

    def init_sanity_tqdm(self):
        return self._on_stderr(super().init_sanity_tqdm)

    def init_train_tqdm(self):
        return self._on_stderr(super().init_train_tqdm)

    def init_validation_tqdm(self):
        return self._on_stderr(super().init_validation_tqdm)

    def init_predict_tqdm(self):
        return self._on_stderr(super().init_predict_tqdm)

    def init_test_tqdm(self):
        return self._on_stderr(super().init_test_tqdm)

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(f"{self.phase} epoch {trainer.current_epoch}")


class CheckpointFiles(TorchCheckpointIO):
    """Lightning's checkpoint files, written as molddl writes files: whole or not at all
    (:func:`molddl.io.atomic_path`). A checkpoint that cannot be written (a full disk) is a
    warning naming it, not the end of the training: only resuming from that epoch is lost."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        try:
            with atomic_path(path) as tmp:
                tmp.write_bytes(buffer.getbuffer())
        except OSError as err:
            logger.warning(
                "cannot write the checkpoint %s (%s); training goes on, but a resumed run "
                "cannot start from this epoch",
                path,
                err.strerror or err,
            )


def check_logger(cfg: TrainConfig) -> None:
    """A :class:`ConfigError` naming ``train.logger`` when its logger cannot run here."""
    if cfg.logger == "tensorboard" and not any(
        importlib.util.find_spec(m) is not None for m in ("tensorboard", "tensorboardX")
    ):
        raise ConfigError(
            "config key 'train.logger' is tensorboard, but neither the tensorboard nor the "
            "tensorboardX package is installed here: install one (.venv/bin/pip install "
            "tensorboard) or set train.logger=csv"
        )


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
    checkpoints: Path | None = None,
    resume_from: Path | None = None,
) -> dict:
    """Train ``module`` with early stopping on ``cfg.monitor`` and restore its best weights.

    ``callbacks`` are extra Lightning callbacks, run after the best-weights and early-stopping
    ones. ``checkpoints``: a folder for Lightning checkpoints, ``best.ckpt`` (the best
    ``cfg.monitor``) and ``last.ckpt`` (every epoch's end), which hold all the training state;
    ``resume_from``: such a ``last.ckpt`` to continue from, read with ``weights_only=True``
    (check it first with :func:`molddl.models.run_folder.read_checkpoint`). Returns a summary:
    best epoch, best score and epochs run (counted across a resumed run's both parts).
    """
    if cfg.log_dir:
        check_logger(cfg)
    mode = monitor_mode(cfg.monitor)
    best = _BestWeights(cfg.monitor, mode)
    train_loader = loader(train, cfg.batch_size, shuffle=True, seed=seed)
    own: list[L.Callback] = [
        best,
        L.pytorch.callbacks.EarlyStopping(
            cfg.monitor, patience=cfg.patience, mode=mode, check_finite=False
        ),
    ]
    if cfg.log_dir:
        own.append(EpochLog(Path(cfg.log_dir) / log_name / "metrics.csv"))
    if checkpoints is not None:
        own.append(_RandomState(train_loader.generator))
        own.append(
            L.pytorch.callbacks.ModelCheckpoint(
                dirpath=checkpoints,
                filename="best",
                monitor=cfg.monitor,
                mode=mode,
                save_top_k=1,
                save_last=True,
                # after the epoch's validation and its EpochLog row: the checkpoint holds both
                save_on_train_epoch_end=True,
                enable_version_counter=False,
            )
        )
    if cfg.progress_bar:
        own.append(PhaseProgressBar(PHASE_NAMES.get(log_name, log_name)))
    logger: Any = False  # the CSV log is EpochLog's
    if cfg.log_dir and cfg.logger == "tensorboard":
        logger = L.pytorch.loggers.TensorBoardLogger(
            cfg.log_dir, name=log_name, version="", default_hp_metric=False
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
        logger=logger,
        callbacks=[*own, *(callbacks or [])],
        enable_checkpointing=checkpoints is not None,
        plugins=[CheckpointFiles()] if checkpoints is not None else None,
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
        warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists.*")
        shards = ValidationShards(len(val)) if cfg.devices * cfg.num_nodes > 1 else None
        trainer.fit(
            module,
            train_loader,
            loader(val, 4 * cfg.batch_size, shuffle=False, sampler=shards),
            ckpt_path=resume_from,
            weights_only=True,  # a checkpoint is data, never code (molddl.models.run_folder)
        )
    return {"best_epoch": best.epoch, "best_score": best.best, "epochs": trainer.current_epoch}


def _fit_phase(
    module: _Module,
    tr: Prepared,
    va: Prepared,
    cfg: TrainConfig,
    log_name: str,
    **kwargs: Any,
) -> dict:
    """:func:`fit_module`, with checkpoints in the active run folder
    (:func:`molddl.models.run_folder.active`) if there is one: a phase that a resumed run
    finished before is not trained again, one it began continues from its last checkpoint."""
    folder = run_folder.active()
    if folder is None:
        return fit_module(module, tr, va, cfg, log_name=log_name, **kwargs)
    finished = folder.finished(log_name)
    if finished is not None:
        module.load_state_dict(finished["weights"])
        return finished["summary"]
    summary = fit_module(
        module, tr, va, cfg, log_name=log_name, checkpoints=folder.phase_dir(log_name),
        resume_from=folder.last(log_name), **kwargs,
    )  # fmt: skip
    folder.finish(log_name, module.state_dict(), summary)
    return summary


def train_dll(
    cfg: Config,
    pre: Preprocessor,
    tr: Prepared,
    va: Prepared,
    *,
    marginal: MarginalNet | None = None,
    callbacks: list[L.Callback] | None = None,
) -> tuple[MarginalNet, DualTowerNet, dict]:
    """Algorithm 1 end to end: the marginal model (unless a trained one is given), then the
    dual model, its encoder warm-started from the marginal one's (``train.warm_start``).

    Returns the marginal model, the dual model and each stage's training summary."""
    from molddl.inference.predict import resolve_device

    device = "gpu" if resolve_device(cfg.device).type == "cuda" else "cpu"
    history: dict = {}
    if marginal is not None:  # a trained marginal model, shared between runs
        marginal = copy.deepcopy(marginal)
    else:
        marginal = MarginalNet(cfg.model, pre.labels, pre.input_info)
        history["marginal"] = _fit_phase(
            MarginalModule(marginal, cfg.train, pre), tr, va, cfg.train, "marginal",
            seed=cfg.seed, max_epochs=cfg.train.marginal_epochs or cfg.train.max_epochs,
            accelerator=device,
        )  # fmt: skip
    L.seed_everything(cfg.seed + 1, workers=True, verbose=False)
    net = DualTowerNet(cfg.model, pre.labels, pre.input_info)
    if cfg.train.warm_start:
        net.encoder.load_state_dict(marginal.encoder.state_dict())
    use_dual = "dual" in cfg.train.losses and cfg.train.gamma > 0
    if use_dual and not dual_available(net.towers):
        logger.info(
            "loss_dual skipped: a regression label needs model.gaussian=true to have a probability"
        )
        use_dual = False
    module = DLLModule(net, marginal if use_dual else None, cfg.train, pre)
    history["dll"] = _fit_phase(
        module, tr, va, cfg.train, "dll", seed=cfg.seed + 1, max_epochs=cfg.train.max_epochs,
        accelerator=device, callbacks=callbacks,
    )  # fmt: skip
    return marginal, net, history
