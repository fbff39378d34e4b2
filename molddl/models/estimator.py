"""``DualLabelModel``: the scikit-learn-shaped entry point (fit / predict / evaluate / save).

It orchestrates only: the data stage is :mod:`molddl.data.preprocess`, training
:mod:`molddl.models.training`, Algorithm 2 and the result table :mod:`molddl.inference`,
the model file :mod:`molddl.models.checkpoint`.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from molddl.config import Config, InferenceConfig
from molddl.data.dataset import DualLabelDataset
from molddl.data.featurizers import InvalidSmilesError
from molddl.data.labels import check_two_labels
from molddl.data.preprocess import Prepared, Preprocessor
from molddl.data.splits import random_split
from molddl.inference import thresholds as cuts
from molddl.inference.predict import Prediction, predict_states, resolve_device
from molddl.inference.table import prediction_table
from molddl.models import checkpoint
from molddl.models.base import ConfiguredEstimator
from molddl.models.checkpoint import ModelFileError
from molddl.models.inputs import ModelInput, as_dataset, class_probabilities, fit_inputs
from molddl.models.nets import DualTowerNet, MarginalNet

if TYPE_CHECKING:
    import lightning as L

    from molddl.evaluation.reveal import Thresholds

__all__ = ["DualLabelModel", "ModelFileError"]


class DualLabelModel(ConfiguredEstimator):
    """Dual-Label Learning on two labels that are irregularly missing.

    Parameters
    ----------
    config
        A :class:`~molddl.config.Config`, a dict in its schema, or ``None`` for defaults.

    Examples
    --------
    >>> model = DualLabelModel({"train": {"max_epochs": 20}}).fit(train, val)
    >>> table = model.predict(screen)      # known labels kept, the others predicted
    >>> scores = model.evaluate(test)      # the four reveal tasks of SPEC §6
    """

    def fit(
        self,
        train: ModelInput,
        val: ModelInput | None = None,
        *,
        marginal: MarginalNet | None = None,
        callbacks: list[L.Callback] | None = None,
    ) -> DualLabelModel:
        """Train the marginal model, then the dual model (Algorithm 1). Returns ``self``.
        Data: a dataset, a DataFrame or a DeepChem dataset (:mod:`molddl.models.inputs`).

        ``marginal`` is a trained marginal model to reuse; ``callbacks`` are extra Lightning
        callbacks for the dual model's training (e.g. trial pruning in :mod:`molddl.tuning`)."""
        # imported here: Lightning takes 1.5 s to import, which predict and evaluate never use
        import lightning as L

        from molddl.models.training import train_dll

        cfg = self.config_
        train, val = fit_inputs(cfg, train, val)
        check_two_labels(train.label_names)
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        if val is None:
            tr_idx, va_idx, _ = random_split(len(train), (0.9, 0.1, 0.0), seed=cfg.seed)
            train, val = train.subset(tr_idx), train.subset(va_idx)
        self.preprocessor_ = Preprocessor.fit(train, cfg.data.featurizer, cfg.data.strict_smiles)
        tr, va = self.preprocessor_.transform(train), self.preprocessor_.transform(val)
        if torch.isnan(va.y).all():
            raise ValueError("the validation part has no label at all")
        self.marginal_, self.net_, self.history_ = train_dll(
            cfg, self.preprocessor_, tr, va, marginal=marginal, callbacks=callbacks
        )
        self.marginal_.requires_grad_(True)
        self.marginal_.cpu().eval()
        self.net_.cpu().eval()
        self.thresholds_ = cuts.choose(self.predict_arrays, val)  # binary labels' hard calls
        return self

    # ---------------------------------------------------------------- inference
    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise RuntimeError("this DualLabelModel is not fitted yet: call fit() or load()")

    def predict_prepared(
        self, data: Prepared, mode: str = "dll", inference: InferenceConfig | None = None
    ) -> Prediction:
        """Label states for prepared samples; ``mode="marginal"`` uses the marginal model only.
        ``inference`` overrides the configured alternate-inference settings."""
        self._check_fitted()
        cfg = self.config_
        return predict_states(
            self.net_,
            self.marginal_,
            self.preprocessor_,
            data,
            inference or cfg.inference,
            resolve_device(cfg.device),
            mode,
        )

    def predict_arrays(
        self, data: DualLabelDataset, mode: str = "dll", inference: InferenceConfig | None = None
    ) -> list[np.ndarray]:
        """One array per label for every sample: probability of class 1 (binary), class
        probabilities (multiclass) or the value in the label's units (regression).

        Samples with invalid SMILES get NaN."""
        self._check_fitted()
        prep = self.preprocessor_.transform(data)
        pred = self.predict_prepared(prep, mode, inference)
        return self.preprocessor_.arrays_from_states(pred.states, prep.positions, len(data))

    def predict(
        self,
        data: ModelInput,
        mode: str = "dll",
        *,
        n_jobs: int = 1,
        use_cache: bool = True,
        features: dict[str, torch.Tensor] | None = None,
        thresholds: dict[str, float] | None = None,
    ) -> pd.DataFrame:
        """Predict every missing label; known labels are returned as given.

        Returns one row per input sample (none dropped), as
        :func:`~molddl.inference.table.prediction_table` lays it out. ``n_jobs``,
        ``use_cache`` and ``features`` go to :meth:`Preprocessor.transform`. Binary labels
        get hard calls at :attr:`thresholds_`, with ``thresholds`` (label → cut) on top.
        """
        self._check_fitted()
        pre = self.preprocessor_
        data = as_dataset(data, self.config_, pre, "optional")
        try:
            prep = pre.transform(data, n_jobs=n_jobs, use_cache=use_cache, features=features)
        except InvalidSmilesError as err:
            if pre.strict or len(err.invalid) != len(data):
                raise
            prep = None  # every SMILES is invalid: each row gets an error, none a prediction
        if prep is None:
            pred, positions = Prediction.empty(pre), np.empty(0, dtype=np.int64)
        else:
            pred, positions = self.predict_prepared(prep, mode), prep.positions
        chosen = cuts.merged(self.thresholds_, thresholds)
        return prediction_table(pre, data, pred, positions, chosen)

    def predict_proba(self, data: ModelInput, mode: str = "dll") -> list[np.ndarray]:
        """Class probabilities as scikit-learn gives them for several outputs: one array
        ``n x C`` per label, in label order (binary: ``[P(0), P(1)]``); a known label is
        evidence for the other (direct / alternate inference, as :meth:`predict`) and is
        returned as its given class. A regression label is an error; invalid SMILES: NaN."""
        self._check_fitted()
        data = as_dataset(data, self.config_, self.preprocessor_, "optional", role="predict_proba")
        return class_probabilities(self.preprocessor_, partial(self.predict_arrays, data, mode))

    def evaluate(
        self,
        test: ModelInput,
        modes: tuple[str, ...] | None = None,
        thresholds: Thresholds | None = None,
        mode: str = "dll",
    ) -> pd.DataFrame:
        """The reveal-mode table (SPEC §6) on held-out samples with both labels; binary tasks
        are also scored as ``f1_tuned`` at ``thresholds`` (as :func:`evaluate` takes them),
        by default the validation-chosen :attr:`thresholds_` of each task's source."""
        from molddl.evaluation.reveal import REVEAL_MODES, evaluate

        self._check_fitted()
        test = as_dataset(test, self.config_, self.preprocessor_, "required", role="evaluate")
        predict = partial(self.predict_arrays, mode=mode)
        if thresholds is None:
            thresholds = cuts.per_task(self.thresholds_, self.preprocessor_.labels)
        return evaluate(predict, test, modes=modes or REVEAL_MODES, thresholds=thresholds)

    # ---------------------------------------------------------------- persistence
    #: ids of the samples held out for testing when the model was trained (``molddl train``
    #: stores them, ``molddl evaluate`` scores them); ``None`` when unknown
    test_ids_: np.ndarray | None = None
    #: decision thresholds of the binary labels chosen on the validation part by :meth:`fit`
    #: (:mod:`molddl.inference.thresholds`); empty in model files written before them
    thresholds_: cuts.Thresholds = {}  # noqa: RUF012 (replaced, never mutated)

    def save(self, path: str | Path, *, test_ids: np.ndarray | None = None) -> Path:
        """Write weights, config, featurizer settings, normalisation statistics and molddl's
        version to one file, atomically; ``test_ids`` (else :attr:`test_ids_`), the ids of
        the held-out test samples, go with them."""
        self._check_fitted()
        if test_ids is not None:
            self.test_ids_ = np.asarray(test_ids, dtype=str)
        parts = {
            "config": self.config_.to_dict(),
            "preprocessor": self.preprocessor_.to_dict(),
            "net": self.net_.state_dict(),
            "marginal": self.marginal_.state_dict(),
            "thresholds": cuts.to_payload(self.thresholds_),
        }
        if self.test_ids_ is not None:  # optional: files without it stay readable
            parts["test_ids"] = [str(i) for i in self.test_ids_]
        return checkpoint.write(path, parts)

    @classmethod
    def load(cls, path: str | Path) -> DualLabelModel:
        """Load a model saved by :meth:`save`; the file is read with ``weights_only=True``, so
        loading never runs code from it."""
        payload = checkpoint.read(path)
        with checkpoint.entries_of(path):  # a damaged payload: an error naming the file
            model = cls(Config.from_dict(checkpoint.upgrade_config(payload["config"])))
            model.preprocessor_ = Preprocessor.from_dict(payload["preprocessor"])
            cfg, pre = model.config_, model.preprocessor_
            model.net_ = DualTowerNet(cfg.model, pre.labels, pre.input_info)
            model.marginal_ = MarginalNet(cfg.model, pre.labels, pre.input_info)
            model.thresholds_ = cuts.from_payload(payload.get("thresholds"), pre.labels)
        checkpoint.load_weights(path, model.net_, payload["net"])
        checkpoint.load_weights(path, model.marginal_, payload["marginal"])
        if payload.get("test_ids") is not None:
            model.test_ids_ = np.asarray(payload["test_ids"], dtype=str)
        model.net_.eval()
        model.marginal_.eval()
        return model
