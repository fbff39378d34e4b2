"""One trial: sample the ``tune.space``, fit a model on the train part, return its best
validation value, reporting each epoch's value to the pruner."""

from __future__ import annotations

import math

import lightning as L
import optuna

from molddl.config import Config, ParamSpace
from molddl.data.dataset import DualLabelDataset
from molddl.models.estimator import DualLabelModel
from molddl.pipeline import load_splits


class PruningCallback(L.Callback):
    """Report the monitored validation value to an Optuna trial after every validation epoch
    and stop the training with :class:`optuna.TrialPruned` when the pruner says so.

    Parameters
    ----------
    trial
        The running trial.
    monitor
        The logged value to report, e.g. ``val_loss`` or ``val_roc_auc``.
    """

    def __init__(self, trial: optuna.Trial, monitor: str) -> None:
        self.trial, self.monitor = trial, monitor

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None or math.isnan(float(value)):
            return
        epoch = trainer.current_epoch
        self.trial.report(float(value), step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}: {self.monitor}={float(value):g}")


def suggest(trial: optuna.Trial, key: str, spec: ParamSpace) -> object:
    """Sample one ``section.key`` from its range."""
    # the config check (config.space) gives a categorical range choices, the others low/high
    if spec.type == "categorical":
        assert spec.choices is not None
        return trial.suggest_categorical(key, spec.choices)
    assert spec.low is not None and spec.high is not None
    if spec.type == "int":
        return trial.suggest_int(key, int(spec.low), int(spec.high), log=spec.log)
    return trial.suggest_float(key, spec.low, spec.high, log=spec.log)


def apply_params(cfg: Config, params: dict[str, object]) -> Config:
    """A copy of ``cfg`` with ``section.key -> value`` set and ``train.monitor`` set to
    ``tune.metric``, validated like any config."""
    d = cfg.to_dict()
    for key, value in params.items():
        section, name = key.split(".", 1)
        d[section][name] = value
    d["train"]["monitor"] = cfg.tune.metric
    return Config.from_dict(d)


class Objective:
    """Fit one trial's model on the train part and return its best validation value.

    The splits are loaded on the first trial and reused by every later one in the process.
    """

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._splits: tuple[DualLabelDataset, DualLabelDataset] | None = None

    def splits(self) -> tuple[DualLabelDataset, DualLabelDataset]:
        if self._splits is None:
            train, val, _ = load_splits(self.cfg.data, self.cfg.seed)
            self._splits = (train, val)
        return self._splits

    def __call__(self, trial: optuna.Trial) -> float:
        params = {k: suggest(trial, k, spec) for k, spec in self.cfg.tune.space.items()}
        cfg = apply_params(self.cfg, params)
        train, val = self.splits()
        pruning = PruningCallback(trial, cfg.tune.metric)
        model = DualLabelModel(cfg).fit(train, val, callbacks=[pruning])
        best = model.history_["dll"]["best_score"]
        return float("nan") if best is None else best
