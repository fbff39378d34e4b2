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
MT     the masked multi-task model ``x → (y1, y2)`` on every present label
=====  =========================================================================

LS and DSML take a revealed label as input at prediction time, exactly as DLL does.

MT is the network DLL trains first as its marginal model (:class:`MarginalNet` is a
:class:`ConditionalNet` without label inputs, trained by the same module); as a benchmark
method it is trained here with the budget every method gets, not taken from DLL's run.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import lightning as L
import numpy as np
import torch

from molddl.data.dataset import DualLabelDataset
from molddl.data.preprocess import Prepared, Preprocessor
from molddl.evaluation.reveal import REVEAL_MODES, evaluate
from molddl.models.base import ConfiguredEstimator
from molddl.models.nets import ConditionalNet
from molddl.models.training import ConditionalModule, fit_module, loader


def _both_labels(p: Prepared) -> Prepared:
    return p.subset(~torch.isnan(p.y).any(dim=1).numpy())


class Baseline(ConfiguredEstimator):
    """Common machinery: preprocessing, stage training, stage prediction, evaluation.

    Parameters
    ----------
    config
        As :class:`~molddl.models.base.ConfiguredEstimator`.
    budget
        Epochs summed over every network the baseline trains, split evenly over its
        :attr:`stages` (the last takes the remainder); ``None`` gives each network
        ``train.max_epochs``. :func:`molddl.experiments.compare.method_budget` sets it to
        what DLL trains (marginal model + dual model), so that every method gets the same.
    """

    name: ClassVar[str]
    #: networks trained one after the other
    stages: ClassVar[int] = 1

    def __init__(self, config=None, budget: int | None = None) -> None:
        super().__init__(config)
        self.budget = budget

    def stage_budgets(self) -> list[int]:
        """The epoch budget of each stage."""
        if self.budget is None:
            return [self.config_.train.max_epochs] * self.stages
        if self.budget < self.stages:
            raise ValueError(
                f"{self.name} trains {self.stages} networks: a budget of {self.budget} "
                "epochs leaves one without any"
            )
        share, rest = divmod(self.budget, self.stages)
        return [share] * (self.stages - 1) + [share + rest]

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
        summary = fit_module(
            ConditionalModule(net, train_cfg, self.preprocessor_),
            tr,
            va,
            train_cfg,
            seed=cfg.seed + 10 * stage,
            max_epochs=self.stage_budgets()[stage],
            log_name=f"{self.name}-stage{stage}",
        )
        self.epochs_[stage] = summary["epochs"]
        return net.cpu().eval()

    @property
    def epochs_trained_(self) -> int:
        """Epochs run, summed over the networks (early stopping may end one sooner)."""
        return sum(self.epochs_)

    def _monitor_fits(self, monitor: str, outputs: tuple[int, ...]) -> bool:
        """Whether a stage predicting ``outputs`` can compute the monitored metric."""
        if monitor == "val_loss":
            return True
        name = monitor[4:]
        return any(name in self.preprocessor_.kinds[k].metrics for k in outputs)

    @torch.inference_mode()
    def _predict(self, net: ConditionalNet, prep: Prepared) -> dict[int, torch.Tensor]:
        """States of ``net``'s output labels; label inputs come from ``prep.cond``."""
        out: dict[int, list[torch.Tensor]] = {k: [] for k in net.outputs}
        for batch in loader(prep, self.config_.inference.encoder_batch_size("cpu"), shuffle=False):
            cond = [net.kinds[j].target_state(batch[2][:, j]) for j in net.inputs]
            for r, k in zip(net(batch[0], cond), net.outputs, strict=True):
                out[k].append(net.kinds[k].to_state(r))
        return {k: torch.cat(v) for k, v in out.items()}

    def _with_cond(self, prep: Prepared, values: dict[int, torch.Tensor]) -> Prepared:
        cond = torch.full_like(prep.y, float("nan"))
        for j, v in values.items():
            cond[:, j] = v
        return Prepared(prep.inputs, prep.y, prep.positions, prep.invalid, cond)

    def _filled(self, prep: Prepared, k: int, state: torch.Tensor, hard: bool) -> torch.Tensor:
        """Label ``k`` where present, else the prediction ``state``, in model space."""
        guess = self.preprocessor_.kinds[k].to_model_value(state, hard)
        return torch.where(torch.isnan(prep.y[:, k]), guess, prep.y[:, k])

    # -- public API
    def fit(self, train: DualLabelDataset, val: DualLabelDataset) -> Baseline:
        cfg = self.config_
        self.preprocessor_ = Preprocessor.fit(train, cfg.data.featurizer, cfg.data.strict_smiles)
        self.epochs_ = [0] * self.stages
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
    stages = 2

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
    multi-output model on all of them. Pseudo labels are for training only: the retrained
    model is early-stopped on the true validation labels (a masked loss over those present)."""

    name = "SSL"
    stages = 2

    def _fit(self, tr, va):
        super()._fit(tr, va)
        teacher = self.net_

        def pseudo(p: Prepared) -> Prepared:
            s = self._predict(teacher, p)
            y = torch.stack([self._filled(p, k, s[k], hard=True) for k in range(2)], dim=1)
            some = (~torch.isnan(p.y)).any(dim=1).numpy()
            return Prepared(p.inputs, y, p.positions, p.invalid).subset(some)

        self.net_ = self._train(pseudo(tr), va, (), (0, 1), stage=1)


class LabelStackingBaseline(Baseline):
    """LS: ``x → y1`` on every y1-present sample; impute the missing ``y1``; ``(x, y1) → y2``."""

    name = "LS"
    stages = 2

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
    each stage supervised on every sample with its label. A stage that takes a label is
    trained on the input it is given at prediction: the true label where it is known, the
    previous stage's prediction elsewhere (as LS)."""

    name = "DSML"
    stages = 3

    def _exchange(self, p: Prepared, net: ConditionalNet, k: int) -> Prepared:
        """``p`` with label ``k`` as the next stage's input: true where known, else ``net``'s
        prediction (``net`` reads its own inputs from ``p.cond``)."""
        return self._with_cond(p, {k: self._filled(p, k, self._predict(net, p)[k], hard=False)})

    def _fit(self, tr, va):
        self.first_ = self._train(tr, va, (), (0,), stage=0)
        tr1, va1 = (self._exchange(p, self.first_, 0) for p in (tr, va))
        self.second_ = self._train(tr1, va1, (0,), (1,), stage=1)
        tr2, va2 = (self._exchange(p, self.second_, 1) for p in (tr1, va1))
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
