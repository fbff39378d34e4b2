"""The paper's baselines (SPEC §5) as stages of one :class:`ConditionalNet`.

Every baseline uses the same encoder family, preprocessing, trainer (:func:`fit_module`),
evaluator and metric registry as DLL; only which labels each stage reads and predicts, and
on which samples it trains, differ:

=====  =========================================================================
ID     ``x → y1`` and ``x → y2``, each on every sample with that label
COL    ``x → (y1, y2)`` on ``D12`` only
SSL    COL, then impute ``D1 ∪ D2`` with it and retrain ``x → (y1, y2)`` on all labelled
LS     ``x → y1``; impute missing ``y1``; ``(x, y1) → y2``
DSML   ``x → y1``; ``(x, ŷ1) → y2``; ``(x, ŷ2) → y1`` (two rounds of label exchange)
MT     the masked multi-task (marginal) model
=====  =========================================================================

LS and DSML take a revealed label as input at prediction time, exactly as DLL does.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import lightning as L
import numpy as np
import torch

from molddl.data.dataset import DualLabelDataset
from molddl.evaluation.metrics import get_metric
from molddl.evaluation.reveal import REVEAL_MODES, evaluate
from molddl.models.base import ConfiguredEstimator
from molddl.models.nets import ConditionalNet
from molddl.models.preprocess import Prepared, Preprocessor
from molddl.models.training import ConditionalModule, fit_module, loader
from molddl.nn.heads import target_state, to_state


def state_to_value(spec, state: torch.Tensor, hard: bool) -> torch.Tensor:
    """A label state as a model-space label value: probability (or hard class) for binary,
    most probable class for multiclass, standardised value for regression."""
    if spec.kind == "binary":
        return (state[:, 0] >= 0.5).float() if hard else state[:, 0]
    if spec.kind == "multiclass":
        return state.argmax(-1).float()
    return state[:, 0]


def _both_labels(p: Prepared) -> Prepared:
    return p.subset(~torch.isnan(p.y).any(dim=1).numpy())


class Baseline(ConfiguredEstimator):
    """Common machinery: preprocessing, stage training, stage prediction, evaluation."""

    name: ClassVar[str]

    # -- stages
    def _train(
        self,
        tr: Prepared,
        va: Prepared,
        inputs: tuple[int, ...],
        outputs: tuple[int, ...],
        stage: int,
    ) -> ConditionalNet:
        cfg = self.config_
        L.seed_everything(cfg.seed + 10 * stage, workers=True, verbose=False)
        labels, info = self.preprocessor_.labels, self.preprocessor_.input_info
        net = ConditionalNet(cfg.model, labels, info, inputs, outputs)
        train_cfg = cfg.train
        if not self._monitor_fits(train_cfg.monitor, outputs):
            train_cfg = replace(train_cfg, monitor="val_loss")
        fit_module(
            ConditionalModule(net, train_cfg, self.preprocessor_),
            tr,
            va,
            train_cfg,
            seed=cfg.seed + 10 * stage,
            max_epochs=cfg.train.max_epochs,
            log_name=f"{self.name}-stage{stage}",
        )
        return net.cpu().eval()

    def _monitor_fits(self, monitor: str, outputs: tuple[int, ...]) -> bool:
        """Whether a stage predicting ``outputs`` can compute the monitored metric."""
        if monitor == "val_loss":
            return True
        kinds = get_metric(monitor[4:]).kinds
        return any(self.preprocessor_.labels[k].kind in kinds for k in outputs)

    @torch.inference_mode()
    def _predict(self, net: ConditionalNet, prep: Prepared) -> dict[int, torch.Tensor]:
        """States of ``net``'s output labels; label inputs come from ``prep.cond``."""
        out: dict[int, list[torch.Tensor]] = {k: [] for k in net.outputs}
        for batch in loader(prep, self.config_.inference.encoder_batch_size("cpu"), shuffle=False):
            cond = [target_state(net.labels[j], batch[2][:, j]) for j in net.inputs]
            for r, k in zip(net(batch[0], cond), net.outputs, strict=True):
                out[k].append(to_state(net.labels[k], r))
        return {k: torch.cat(v) for k, v in out.items()}

    def _with_cond(self, prep: Prepared, values: dict[int, torch.Tensor]) -> Prepared:
        cond = torch.full_like(prep.y, float("nan"))
        for j, v in values.items():
            cond[:, j] = v
        return Prepared(prep.inputs, prep.y, prep.positions, prep.invalid, cond)

    def _filled(self, prep: Prepared, k: int, state: torch.Tensor, hard: bool) -> torch.Tensor:
        """Label ``k`` where present, else the prediction ``state``, in model space."""
        guess = state_to_value(self.preprocessor_.labels[k], state, hard)
        return torch.where(torch.isnan(prep.y[:, k]), guess, prep.y[:, k])

    # -- public API
    def fit(self, train: DualLabelDataset, val: DualLabelDataset) -> Baseline:
        cfg = self.config_
        self.preprocessor_ = Preprocessor.fit(train, cfg.data.featurizer, cfg.data.strict_smiles)
        self._fit(self.preprocessor_.transform(train), self.preprocessor_.transform(val))
        return self

    def _fit(self, tr: Prepared, va: Prepared) -> None:
        raise NotImplementedError

    def _predict_states(self, prep: Prepared) -> list[torch.Tensor]:
        """Label states of every sample; ``prep.y`` holds the revealed labels."""
        raise NotImplementedError

    def predict_arrays(self, data: DualLabelDataset) -> list[np.ndarray]:
        """One array per label (as :meth:`DualLabelModel.predict_arrays`)."""
        prep = self.preprocessor_.transform(data)
        states = self._predict_states(prep)
        return self.preprocessor_.arrays_from_states(states, prep.positions, len(data))

    def evaluate(self, test, modes=REVEAL_MODES, thresholds=None):
        return evaluate(self.predict_arrays, test, modes=modes, thresholds=thresholds)


class IndependentBaseline(Baseline):
    """ID: two separate models, ``x → y1`` and ``x → y2``."""

    name = "ID"

    def _fit(self, tr, va):
        self.nets_ = [self._train(tr, va, (), (k,), stage=k) for k in range(2)]

    def _predict_states(self, prep):
        return [self._predict(self.nets_[k], prep)[k] for k in range(2)]


class CollectiveBaseline(Baseline):
    """COL: one multi-output model ``x → (y1, y2)`` trained on ``D12`` only."""

    name = "COL"

    def _fit(self, tr, va):
        self.net_ = self._train(_both_labels(tr), _both_labels(va), (), (0, 1), stage=0)

    def _predict_states(self, prep):
        s = self._predict(self.net_, prep)
        return [s[0], s[1]]


class SelfTrainingBaseline(CollectiveBaseline):
    """SSL: COL on ``D12``, pseudo-label the missing labels of ``D1 ∪ D2`` with it, retrain a
    multi-output model on all of them."""

    name = "SSL"

    def _fit(self, tr, va):
        super()._fit(tr, va)
        teacher = self.net_

        def pseudo(p: Prepared) -> Prepared:
            s = self._predict(teacher, p)
            y = torch.stack([self._filled(p, k, s[k], hard=True) for k in range(2)], dim=1)
            some = (~torch.isnan(p.y)).any(dim=1).numpy()
            return Prepared(p.inputs, y, p.positions, p.invalid).subset(some)

        self.net_ = self._train(pseudo(tr), pseudo(va), (), (0, 1), stage=1)


class LabelStackingBaseline(Baseline):
    """LS: ``x → y1`` on every y1-present sample; impute the missing ``y1``; ``(x, y1) → y2``."""

    name = "LS"

    def _fit(self, tr, va):
        self.first_ = self._train(tr, va, (), (0,), stage=0)

        def impute(p: Prepared) -> Prepared:
            y1 = self._filled(p, 0, self._predict(self.first_, p)[0], hard=False)
            return self._with_cond(p, {0: y1})

        self.second_ = self._train(impute(tr), impute(va), (0,), (1,), stage=1)

    def _predict_states(self, prep):
        s1 = self._predict(self.first_, prep)[0]
        y1 = self._filled(prep, 0, s1, hard=False)  # a revealed y1 is used as given
        s2 = self._predict(self.second_, self._with_cond(prep, {0: y1}))[1]
        return [s1, s2]


class DSMLBaseline(Baseline):
    """DSML: ``x → y1``; ``(x, ŷ1) → y2``; ``(x, ŷ2) → y1`` — two rounds of label exchange,
    each stage supervised on every sample with its label, fed the previous stage's
    predictions."""

    name = "DSML"

    def _fit(self, tr, va):
        self.first_ = self._train(tr, va, (), (0,), stage=0)

        def feed(p: Prepared, net: ConditionalNet, k: int) -> Prepared:
            state = self._predict(net, p)[k]
            return self._with_cond(
                p, {k: state_to_value(self.preprocessor_.labels[k], state, False)}
            )

        self.second_ = self._train(
            feed(tr, self.first_, 0), feed(va, self.first_, 0), (0,), (1,), stage=1
        )
        tr2 = feed(feed(tr, self.first_, 0), self.second_, 1)
        va2 = feed(feed(va, self.first_, 0), self.second_, 1)
        self.third_ = self._train(tr2, va2, (1,), (0,), stage=2)

    def _predict_states(self, prep):
        s1 = self._predict(self.first_, prep)[0]
        y1 = self._filled(prep, 0, s1, hard=False)
        s2 = self._predict(self.second_, self._with_cond(prep, {0: y1}))[1]
        y2 = self._filled(prep, 1, s2, hard=False)
        s1 = self._predict(self.third_, self._with_cond(prep, {1: y2}))[0]
        return [s1, s2]


class MultiTaskBaseline(Baseline):
    """MT: the masked multi-task model, ``x → (y1, y2)`` on every present label."""

    name = "MT"

    def _fit(self, tr, va):
        self.net_ = self._train(tr, va, (), (0, 1), stage=0)

    def _predict_states(self, prep):
        s = self._predict(self.net_, prep)
        return [s[0], s[1]]


BASELINES: dict[str, type[Baseline]] = {
    cls.name: cls
    for cls in (
        IndependentBaseline,
        CollectiveBaseline,
        SelfTrainingBaseline,
        LabelStackingBaseline,
        DSMLBaseline,
        MultiTaskBaseline,
    )
}
