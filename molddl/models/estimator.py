"""``DualLabelModel``: the scikit-learn-shaped entry point (fit / predict / evaluate / save)."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from molddl._version import __version__
from molddl.config import Config, InferenceConfig
from molddl.data.dataset import DualLabelDataset
from molddl.data.featurize import InvalidSmilesError
from molddl.data.splits import random_split
from molddl.evaluation.reveal import REVEAL_MODES, evaluate
from molddl.inference.alternate import alternate, direct
from molddl.io import atomic_path
from molddl.models.base import ConfiguredEstimator
from molddl.models.losses import dual_available
from molddl.models.nets import DualTowerNet, MarginalNet
from molddl.models.preprocess import Prepared, Preprocessor
from molddl.nn.heads import raw_dim, state_dim, target_state, to_state

if TYPE_CHECKING:
    import lightning as L

logger = logging.getLogger(__name__)

MODEL_FORMAT = "molddl-model"
MODEL_FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model file that is missing, corrupt, or from an incompatible molddl version."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA device is available")
    return torch.device(name)


@dataclass(slots=True)
class Prediction:
    """Label states for ``n`` samples and how each was obtained.

    Attributes
    ----------
    states
        ``[n x s1, n x s2]``: probabilities (class labels) or standardised values.
    source
        ``n x K`` strings: ``given``, ``direct``, ``alternate`` or ``marginal``.
    iterations, converged
        Alternate-inference iterations and convergence per sample (0 / True otherwise).
    """

    states: list[torch.Tensor]
    source: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray


def diverged_samples(labels, states, converged, max_abs_z: float) -> torch.Tensor:
    """Unconverged samples whose value label left the data's scale: a standardised value
    beyond ``max_abs_z`` (or not finite). Class states are probabilities and cannot
    diverge."""
    out = torch.zeros_like(converged)
    for spec, s in zip(labels, states, strict=True):
        if not spec.is_class:
            out |= ~torch.isfinite(s[:, 0]) | (s[:, 0].abs() > max_abs_z)
    return out & ~converged


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

    # ---------------------------------------------------------------- training

    def fit(
        self,
        train: DualLabelDataset,
        val: DualLabelDataset | None = None,
        *,
        marginal: MarginalNet | None = None,
        callbacks: list[L.Callback] | None = None,
    ) -> DualLabelModel:
        """Train the marginal model, then the dual model (Algorithm 1). Returns ``self``.

        ``callbacks`` are extra Lightning callbacks for the dual model's training (e.g.
        trial pruning in :mod:`molddl.tuning`)."""
        # imported here: Lightning takes 1.5 s to import, which predict and evaluate never use
        import lightning as L

        from molddl.models.training import DLLModule, MarginalModule, fit_module

        cfg = self.config_
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        if val is None:
            tr_idx, va_idx, _ = random_split(len(train), (0.9, 0.1, 0.0), seed=cfg.seed)
            train, val = train.subset(tr_idx), train.subset(va_idx)
        self.preprocessor_ = Preprocessor.fit(train, cfg.data.featurizer, cfg.data.strict_smiles)
        tr, va = self.preprocessor_.transform(train), self.preprocessor_.transform(val)
        if torch.isnan(va.y).all():
            raise ValueError("the validation part has no label at all")
        labels, info = self.preprocessor_.labels, self.preprocessor_.input_info
        device = resolve_device(cfg.device)
        accel = "gpu" if device.type == "cuda" else "cpu"

        self.history_ = {}
        if marginal is not None:  # a trained marginal model, shared between runs
            self.marginal_ = copy.deepcopy(marginal)
        else:
            self.marginal_ = MarginalNet(cfg.model, labels, info)
            self.history_["marginal"] = fit_module(
                MarginalModule(self.marginal_, cfg.train, self.preprocessor_),
                tr, va, cfg.train, seed=cfg.seed,
                max_epochs=cfg.train.marginal_epochs or cfg.train.max_epochs,
                accelerator=accel, log_name="marginal",
            )  # fmt: skip

        L.seed_everything(cfg.seed + 1, workers=True, verbose=False)
        self.net_ = DualTowerNet(cfg.model, labels, info)
        if cfg.train.warm_start:
            self.net_.encoder.load_state_dict(self.marginal_.encoder.state_dict())
        use_dual = "dual" in cfg.train.losses and cfg.train.gamma > 0
        if use_dual and not dual_available(self.net_.towers, self.marginal_.raw_sizes):
            logger.info(
                "loss_dual skipped: a regression label needs model.gaussian=true to have a "
                "probability"
            )
            use_dual = False
        module = DLLModule(
            self.net_, self.marginal_ if use_dual else None, cfg.train, self.preprocessor_
        )
        self.history_["dll"] = fit_module(
            module, tr, va, cfg.train, seed=cfg.seed + 1,
            max_epochs=cfg.train.max_epochs, accelerator=accel, log_name="dll",
            callbacks=callbacks,
        )  # fmt: skip
        self.marginal_.requires_grad_(True)
        self.marginal_.cpu().eval()
        self.net_.cpu().eval()
        return self

    # ---------------------------------------------------------------- inference
    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise RuntimeError("this DualLabelModel is not fitted yet: call fit() or load()")

    @torch.inference_mode()
    def _encode(
        self,
        data: Prepared,
        device: torch.device,
        batch_size: int,
        precision: str = "fp32",
        rows_h: np.ndarray | None = None,
        rows_m: np.ndarray | None = None,
    ):
        """``h`` from the dual encoder for the samples ``rows_h`` and the marginal raw outputs
        for ``rows_m`` (boolean masks; ``None``: every sample), in fp32, computed under
        autocast when ``precision`` is bf16 / fp16. Rows not asked for hold NaN."""
        if precision == "fp16" and device.type != "cuda":
            raise ValueError("inference.precision fp16 needs a CUDA device; use bf16 on CPU")
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        n = len(data)
        all_rows = np.ones(n, dtype=bool)
        rows_h = all_rows if rows_h is None else np.asarray(rows_h, dtype=bool)
        rows_m = all_rows if rows_m is None else np.asarray(rows_m, dtype=bool)
        net, marg = self.net_.to(device).eval(), self.marginal_.to(device).eval()
        widths = [raw_dim(s, self.config_.model.gaussian) for s in self.preprocessor_.labels]
        H = torch.full((n, net.encoder.out_dim), float("nan"), device=device)
        M = [torch.full((n, w), float("nan"), device=device) for w in widths]
        for rows, which in ((rows_h, "h"), (rows_m, "m")):
            idx = np.flatnonzero(rows)
            for start in range(0, len(idx), batch_size):
                part = idx[start : start + batch_size]
                x = data.batch(part)[0].to(device)
                at = torch.from_numpy(part).to(device)
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    if which == "h":
                        H[at] = net.encoder(x).float()
                    else:
                        for k, r in enumerate(marg(x)):
                            M[k][at] = r.float()
        return H, M

    def _prior(self, k: int, n: int, device) -> torch.Tensor:
        spec = self.preprocessor_.labels[k]
        p = torch.as_tensor(self.preprocessor_.prior[k], dtype=torch.float32, device=device)
        return p.expand(n, -1).clone() if spec.is_class else torch.zeros(n, 1, device=device)

    @torch.inference_mode()
    def predict_prepared(
        self, data: Prepared, mode: str = "dll", inference: InferenceConfig | None = None
    ) -> Prediction:
        """Label states for prepared samples; ``mode="marginal"`` uses the marginal model only.
        ``inference`` overrides the configured alternate-inference settings."""
        self._check_fitted()
        cfg = self.config_
        icfg = inference or cfg.inference
        device = resolve_device(cfg.device)
        n = len(data)
        known = ~np.isnan(data.y.cpu().numpy())
        some_missing, none_known = ~known.all(axis=1), ~known.any(axis=1)
        # the encoders run only where their output is used: the dual encoder for every sample
        # with a missing label, the marginal model where no label is known (its prediction
        # starts alternate inference and is the fallback of a diverged sample)
        H, mraw = self._encode(
            data,
            device,
            icfg.encoder_batch_size(device.type),
            icfg.precision,
            rows_h=np.zeros(n, dtype=bool) if mode == "marginal" else some_missing,
            rows_m=some_missing if mode == "marginal" else none_known,
        )
        labels = self.preprocessor_.labels
        y = data.y.to(device)
        m = ~torch.isnan(y)
        marg_states = [to_state(labels[k], mraw[k]) for k in range(2)]
        states = [
            torch.where(m[:, k : k + 1], target_state(labels[k], y[:, k]), marg_states[k])
            for k in range(2)
        ]
        source = np.where(m.cpu().numpy(), "given", "marginal").astype(object)
        iterations = np.zeros(n, dtype=np.int64)
        converged = np.ones(n, dtype=bool)
        if mode == "marginal":
            return Prediction([s.cpu() for s in states], source, iterations, converged)
        towers = self.net_.towers
        hh = [towers[k].encode_h(H) for k in range(2)]
        for k in range(2):
            rows = ~m[:, k] & m[:, 1 - k]
            if rows.any():
                states[k][rows] = direct(towers[k], hh[k][rows], states[1 - k][rows])
                source[rows.cpu().numpy(), k] = "direct"
        none = ~m.any(dim=1)
        if none.any() and icfg.max_iter > 0:
            if icfg.init == "marginal":
                init = [marg_states[k][none] for k in range(2)]
            else:
                init = [self._prior(k, int(none.sum()), device) for k in range(2)]
            res = alternate(towers, [hh[0][none], hh[1][none]], init, icfg)
            diverged = diverged_samples(labels, res.states, res.converged, icfg.max_abs_z)
            for k in range(2):  # a diverged pair falls back to the marginal prediction
                res.states[k][diverged] = marg_states[k][none][diverged]
                states[k][none] = res.states[k]
            rows = np.flatnonzero(none.cpu().numpy())
            source[rows] = "alternate"
            source[rows[diverged.cpu().numpy()]] = "marginal"
            iterations[rows] = res.iterations.cpu().numpy()
            converged[rows] = res.converged.cpu().numpy()
        return Prediction([s.cpu() for s in states], source, iterations, converged)

    def _empty_prediction(self) -> Prediction:
        """A prediction for no sample, with the label states' widths."""
        widths = [state_dim(s) for s in self.preprocessor_.labels]
        return Prediction(
            [torch.empty(0, w) for w in widths],
            np.empty((0, len(widths)), dtype=object),
            np.empty(0, dtype=np.int64),
            np.empty(0, dtype=bool),
        )

    def predict_arrays(
        self,
        data: DualLabelDataset,
        mode: str = "dll",
        inference: InferenceConfig | None = None,
    ) -> list[np.ndarray]:
        """One array per label for every sample: probability of class 1 (binary), class
        probabilities (multiclass) or the value in the label's units (regression).

        Samples with invalid SMILES get NaN."""
        prep = self.preprocessor_.transform(data)
        pred = self.predict_prepared(prep, mode, inference)
        return self.preprocessor_.arrays_from_states(pred.states, prep.positions, len(data))

    def predict(
        self,
        data: DualLabelDataset,
        mode: str = "dll",
        *,
        n_jobs: int = 1,
        use_cache: bool = True,
        features: dict[str, torch.Tensor] | None = None,
    ) -> pd.DataFrame:
        """Predict every missing label; known labels are returned as given.

        Returns one row per input sample (none dropped) with, per label: the value (class or
        number), ``<label>_prob`` (binary) / ``<label>_prob_<c>`` (multiclass),
        ``<label>_source``; then ``iterations``, ``converged`` and ``error`` (invalid SMILES).
        ``n_jobs``, ``use_cache`` and ``features`` go to :meth:`Preprocessor.transform`.
        """
        self._check_fitted()
        try:
            prep = self.preprocessor_.transform(
                data, n_jobs=n_jobs, use_cache=use_cache, features=features
            )
        except InvalidSmilesError as err:
            if self.preprocessor_.strict or len(err.invalid) != len(data):
                raise
            prep = None  # every SMILES is invalid: each row gets an error, none a prediction
        pred = self._empty_prediction() if prep is None else self.predict_prepared(prep, mode)
        pos = np.empty(0, dtype=np.int64) if prep is None else prep.positions
        n = len(data)
        cols: dict[str, object] = {"id": data.ids}
        if data.smiles is not None:
            cols["smiles"] = data.smiles
        for k, spec in enumerate(self.preprocessor_.labels):
            s = pred.states[k].numpy().astype(np.float64)
            value = np.full(n, np.nan)
            if spec.kind == "regression":
                value[pos] = self.preprocessor_.value_from_model(k, s[:, 0])
            elif spec.kind == "binary":
                value[pos] = (s[:, 0] >= 0.5).astype(float)
                prob = np.full(n, np.nan)
                prob[pos] = s[:, 0]
            else:
                value[pos] = s.argmax(1)
            given = ~np.isnan(data.y[:, k])
            value[given] = data.y[given, k]
            cols[spec.name] = value
            if spec.kind == "binary":
                cols[f"{spec.name}_prob"] = prob
            elif spec.kind == "multiclass":
                for c in range(spec.n_classes):
                    pc = np.full(n, np.nan)
                    pc[pos] = s[:, c]
                    cols[f"{spec.name}_prob_{c}"] = pc
            src = np.full(n, "", dtype=object)
            src[pos] = pred.source[:, k]
            src[given] = "given"
            cols[f"{spec.name}_source"] = src
        iters = np.zeros(n, dtype=np.int64)
        conv = np.zeros(n, dtype=bool)
        iters[pos], conv[pos] = pred.iterations, pred.converged
        cols["iterations"], cols["converged"] = iters, conv
        err = np.full(n, "", dtype=object)
        bad = np.setdiff1d(np.arange(n), pos)
        err[bad] = "invalid SMILES"
        cols["error"] = err
        return pd.DataFrame(cols)

    def evaluate(
        self,
        test: DualLabelDataset,
        modes: tuple[str, ...] = REVEAL_MODES,
        thresholds: list[float | None] | None = None,
        mode: str = "dll",
    ) -> pd.DataFrame:
        """The reveal-mode table (SPEC §6) on held-out samples with both labels."""
        return evaluate(
            lambda d: self.predict_arrays(d, mode), test, modes=modes, thresholds=thresholds
        )

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write weights, config, featurizer settings, normalisation statistics and molddl's
        version to one file, atomically."""
        self._check_fitted()
        payload = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "molddl_version": __version__,
            "config": self.config_.to_dict(),
            "preprocessor": self.preprocessor_.to_dict(),
            "net": self.net_.state_dict(),
            "marginal": self.marginal_.state_dict(),
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> DualLabelModel:
        """Load a model saved by :meth:`save`; the file is read with ``weights_only=True``, so
        loading never runs code from it."""
        path = Path(path)
        if not path.exists():
            raise ModelFileError(f"model file {path} does not exist")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ModelFileError(
                f"{path} is not a readable molddl model file ({type(err).__name__}: "
                f"{str(err).splitlines()[0][:200]})"
            ) from None
        if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
            raise ModelFileError(f"{path} is not a molddl model file")
        if payload.get("format_version") != MODEL_FORMAT_VERSION:
            raise ModelFileError(
                f"{path} was written by molddl {payload.get('molddl_version')} in model format "
                f"{payload.get('format_version')}; this molddl {__version__} reads format "
                f"{MODEL_FORMAT_VERSION}. Retrain the model or use the molddl that wrote it."
            )
        model = cls(Config.from_dict(payload["config"]))
        model.preprocessor_ = Preprocessor.from_dict(payload["preprocessor"])
        cfg, pre = model.config_, model.preprocessor_
        model.net_ = DualTowerNet(cfg.model, pre.labels, pre.input_info)
        model.marginal_ = MarginalNet(cfg.model, pre.labels, pre.input_info)
        try:
            model.net_.load_state_dict(payload["net"])
            model.marginal_.load_state_dict(payload["marginal"])
        except RuntimeError as err:
            raise ModelFileError(
                f"{path}: weights do not match the stored config ({err})"
            ) from None
        model.net_.eval()
        model.marginal_.eval()
        return model
