"""End to end: DLL on the synthetic dual-label data, persistence, determinism, Tox21 smoke."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from molddl.config import InferenceConfig
from molddl.data.synthetic import make_dual_label
from molddl.inference import kernel
from molddl.models.checkpoint import MODEL_FORMAT_VERSION, ModelFileError
from molddl.models.estimator import DualLabelModel

pytestmark = pytest.mark.slow

MLP = {"encoder": "mlp", "hidden": 32, "layers": 2, "tower_hidden": 32}


def _cfg(log_dir=None, **train) -> dict:
    return {
        "model": dict(MLP),
        "train": {"max_epochs": 15, "log_dir": log_dir, **train},
        "device": "cpu",
        "seed": 0,
    }


def _roc(table: pd.DataFrame, task: str) -> float:
    row = table[(table.task == task) & (table.metric == "roc_auc")]
    assert len(row) == 1, table
    return float(row.value.iloc[0])


@pytest.fixture(scope="module")
def binary_data():
    train = make_dual_label(2000, missing_rate=0.4, seed=0)
    val = make_dual_label(500, missing_rate=0.4, seed=1)
    test = make_dual_label(1000, seed=2)  # the truth, every label present
    return train, val, test


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="module")
def fitted(binary_data, log_dir):
    train, val, _ = binary_data
    return DualLabelModel(_cfg(log_dir=str(log_dir))).fit(train, val)


def _unlabelled(data):
    return data.with_labels(np.full_like(data.y, np.nan))


def test_synthetic_generator_is_seeded_and_has_the_dual_structure():
    a, b = make_dual_label(500, seed=3), make_dual_label(500, seed=3)
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
    assert a.X.dtype == np.float32 and a.X.shape == (500, 10)
    assert not np.array_equal(a.y, make_dual_label(500, seed=4).y)
    masked = make_dual_label(2000, missing_rate=0.4, seed=0)
    share = masked.partition_counts()["D0"] / 2000
    assert 0.11 < share < 0.21  # 0.4 ** 2 = 16 % expected
    # y1 carries information on y2 that x does not: agreement well above chance
    full = make_dual_label(4000, seed=0)
    assert np.mean(full.y[:, 0] == full.y[:, 1]) > 0.8
    mixed = make_dual_label(200, kind="mixed", seed=0)
    assert [s.kind for s in mixed.labels] == ["binary", "regression"]
    with pytest.raises(ValueError, match="kind"):
        make_dual_label(10, kind="nope")  # type: ignore[arg-type]


def test_dll_beats_the_marginal_model_on_single_y2(fitted, binary_data):
    test = binary_data[2]
    dll = fitted.evaluate(test)
    marg = fitted.evaluate(test, mode="marginal")
    assert set(dll.task) == {"Single-y1", "Single-y2", "Double-y1", "Double-y2"}
    auc_dll, auc_marg = _roc(dll, "Single-y2"), _roc(marg, "Single-y2")
    print(f"Single-y2 ROC-AUC: DLL {auc_dll:.3f}, marginal {auc_marg:.3f}")
    assert auc_dll >= auc_marg + 0.1
    assert _roc(dll, "Single-y1") >= _roc(marg, "Single-y1") + 0.1


def test_alternate_inference_converges_on_unlabelled_samples(fitted, binary_data):
    out = fitted.predict(_unlabelled(binary_data[2]))
    assert (out["y1_source"] == "alternate").all() and (out["y2_source"] == "alternate").all()
    rate = out["converged"].mean()
    print(f"alternate inference converged on {100 * rate:.1f} % of samples")
    assert rate > 0.7
    assert (out.loc[out.converged, "iterations"] < fitted.config_.inference.max_iter).all()
    assert out[["y1_prob", "y2_prob"]].apply(lambda c: c.between(0, 1)).all().all()


def test_the_numba_kernel_and_the_pytorch_loop_predict_alike(fitted, binary_data):
    """The default on the CPU (``inference.kernel: auto``) is the numba loop; it agrees with
    the PyTorch loop to float rounding (a bounded, tested difference)."""
    assert kernel.unavailable() is None
    prep = fitted.preprocessor_.transform(_unlabelled(binary_data[2]))
    ref = fitted.predict_prepared(prep, inference=InferenceConfig(kernel="torch"))
    got = fitted.predict_prepared(prep)
    again = fitted.predict_prepared(prep, inference=InferenceConfig(kernel="numba"))
    assert (got.source == "alternate").all()
    for k in range(2):
        assert torch.equal(got.states[k], again.states[k])
        torch.testing.assert_close(got.states[k], ref.states[k], atol=1e-4, rtol=0)
    assert (got.converged == ref.converged).all()
    assert np.abs(got.iterations - ref.iterations).max() <= 1


def test_predict_keeps_given_labels_and_uses_direct_inference(fitted, binary_data):
    test = binary_data[2].subset(range(40))
    y = test.y.copy()
    y[10:20, 1] = np.nan  # D1: y2 predicted directly
    y[20:30, 0] = np.nan  # D2: y1 predicted directly
    y[30:40] = np.nan  # D0: alternate
    out = fitted.predict(test.with_labels(y))
    assert len(out) == 40
    np.testing.assert_array_equal(out["y1"].to_numpy()[:30][~np.isnan(y[:30, 0])],
                                  y[:30, 0][~np.isnan(y[:30, 0])])  # fmt: skip
    assert (out["y1_source"][:10] == "given").all() and (out["y2_source"][:10] == "given").all()
    assert (out["y2_source"][10:20] == "direct").all() and (
        out["y1_source"][10:20] == "given"
    ).all()
    assert (out["y1_source"][20:30] == "direct").all() and (
        out["y2_source"][20:30] == "given"
    ).all()
    assert (out["y1_source"][30:] == "alternate").all()
    np.testing.assert_array_equal(out["y2"][:10], test.y[:10, 1])
    assert out[["y1", "y2"]].notna().all().all()
    assert out["converged"][:30].all() and (out["iterations"][:30] == 0).all()
    # a known y1 changes the direct prediction of y2
    flipped = y.copy()
    flipped[10:20, 0] = 1 - flipped[10:20, 0]
    out2 = fitted.predict(test.with_labels(flipped))
    assert not np.allclose(out["y2_prob"][10:20], out2["y2_prob"][10:20])


def test_csv_log_has_every_loss_term_per_epoch(fitted, log_dir):
    metrics = pd.read_csv(log_dir / "dll" / "metrics.csv")
    for col in ("train_loss_sup", "train_loss_rec", "train_loss_dual", "train_loss", "val_loss"):
        assert col in metrics.columns, list(metrics.columns)
        per_epoch = metrics.dropna(subset=[col])
        assert per_epoch["epoch"].nunique() == fitted.history_["dll"]["epochs"]
    assert (log_dir / "marginal" / "metrics.csv").exists()


def test_save_load_round_trip(fitted, binary_data, tmp_path):
    test = binary_data[2].subset(range(200))
    y = test.y.copy()
    y[:50, 0] = np.nan
    y[50:100, 1] = np.nan
    y[100:150] = np.nan
    data = test.with_labels(y)
    path = fitted.save(tmp_path / "model.pt")
    payload = torch.load(path, weights_only=True)
    assert payload["format_version"] == MODEL_FORMAT_VERSION
    loaded = DualLabelModel.load(path)
    pd.testing.assert_frame_equal(fitted.predict(data), loaded.predict(data))
    pd.testing.assert_frame_equal(fitted.evaluate(test), loaded.evaluate(test))


def test_loading_bad_files_raises_model_file_error(fitted, tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        DualLabelModel.load(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"this is not a model" * 10)
    with pytest.raises(ModelFileError, match="not a readable molddl model file"):
        DualLabelModel.load(corrupt)
    good = fitted.save(tmp_path / "good.pt")
    payload = torch.load(good, weights_only=True)
    payload["format_version"] = 999
    future = tmp_path / "future.pt"
    torch.save(payload, future)
    with pytest.raises(ModelFileError, match="format 999") as err:
        DualLabelModel.load(future)
    assert "Retrain" in str(err.value)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ModelFileError, match="not a molddl model file"):
        DualLabelModel.load(other)


def test_same_config_and_seed_give_identical_predictions():
    data = make_dual_label(400, n_features=5, missing_rate=0.4, seed=5)
    train, val, test = (
        data.subset(range(300)),
        data.subset(range(300, 350)),
        data.subset(range(350, 400)),
    )
    cfg = _cfg(max_epochs=3)
    a = DualLabelModel(cfg).fit(train, val).predict(_unlabelled(test))
    b = DualLabelModel(cfg).fit(train, val).predict(_unlabelled(test))
    pd.testing.assert_frame_equal(a, b)
    c = DualLabelModel({**cfg, "seed": 1}).fit(train, val).predict(_unlabelled(test))
    assert not np.allclose(a["y1_prob"], c["y1_prob"])


def test_mixed_labels_train_and_predict():
    data = make_dual_label(1200, kind="mixed", missing_rate=0.4, seed=0)
    test = make_dual_label(300, kind="mixed", seed=9)
    cfg = _cfg(max_epochs=5)
    cfg["model"]["gaussian"] = True
    model = DualLabelModel(cfg).fit(data)
    assert model.net_.tower2.raw_size == 2  # Gaussian head on the regression label
    table = model.evaluate(test)
    assert set(table.task) == {"Single-y1", "Single-y2", "Double-y1", "Double-y2"}
    assert table.value.notna().all()
    out = model.predict(_unlabelled(test))
    assert out["y1"].between(0, 1).all() and out["y1"].equals(out["y1_prob"])  # all predicted
    assert set(np.unique(out["y1_class"])) <= {0.0, 1.0}  # at the validation-chosen cuts
    assert np.isfinite(out["y2"]).all()
    direct_y2 = model.predict(test.with_labels(np.c_[test.y[:, 0], np.full(300, np.nan)]))
    mae = np.abs(direct_y2["y2"] - test.y[:, 1]).mean()
    assert mae < np.abs(test.y[:, 1] - test.y[:, 1].mean()).mean()
    # y2 comes back on the data's scale, not standardised
    assert 0.3 < direct_y2["y2"].std() / test.y[:, 1].std() < 3


def test_tox21_smoke_with_a_tiny_gnn(data_dir, tmp_path):
    from molddl.data.loaders import load_tox21

    data = load_tox21(data_dir=data_dir).subset(np.arange(600))
    train, val, test = (
        data.subset(range(400)),
        data.subset(range(400, 500)),
        data.subset(range(500, 600)),
    )
    cfg = {
        "model": {"encoder": "gine", "hidden": 16, "layers": 2, "tower_hidden": 16,
                  "label_dim": 8},
        "train": {"max_epochs": 1, "batch_size": 64},
        "inference": {"max_iter": 50},
        "device": "cpu",
    }  # fmt: skip
    model = DualLabelModel(cfg).fit(train, val)
    out = model.predict(test)
    assert len(out) == 100 and out[["SR-ARE", "SR-MMP"]].notna().all().all()
    table = model.evaluate(test)
    assert {"Single-y1", "Single-y2", "Double-y1", "Double-y2"} <= set(table.task)
    loaded = DualLabelModel.load(model.save(tmp_path / "tox.pt"))
    pd.testing.assert_frame_equal(out, loaded.predict(test))


def _linear_output_dtypes(model, run) -> set[torch.dtype]:
    """The dtypes of every linear layer's output in the encoders while ``run()`` predicts."""
    seen: set[torch.dtype] = set()
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
        for net in (model.net_.encoder, model.marginal_)
        for m in net.modules()
        if isinstance(m, torch.nn.Linear)
    ]
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return seen


def test_bf16_prediction_is_close_to_fp32(fitted, binary_data):
    """Mixed precision (CPU bf16 autocast of the encoders) really computes in bf16, and
    changes probabilities by at most 0.02 where no iteration amplifies it."""
    from molddl.inference.predict import encode

    model, test = fitted, binary_data[2]
    bf16_cfg = InferenceConfig(precision="bf16")
    blank = _unlabelled(test)

    # bf16 ran: every linear layer of both encoders returned bf16 under bf16, fp32 otherwise
    fp32_run = _linear_output_dtypes(model, lambda: model.predict_arrays(blank))
    bf16_run = _linear_output_dtypes(model, lambda: model.predict_arrays(blank, inference=bf16_cfg))
    assert fp32_run == {torch.float32} and bf16_run == {torch.bfloat16}

    # the embedding h: on the bf16 grid (the encoder's last layer rounded it), within bf16
    # rounding of fp32 (8 significant bits, a few layers deep), and not equal to it
    prep = model.preprocessor_.transform(blank)
    cpu = torch.device("cpu")
    h32, _ = encode(model.net_, model.marginal_, prep, cpu, 256, "fp32")
    h16, _ = encode(model.net_, model.marginal_, prep, cpu, 256, "bf16")
    assert h16.dtype == torch.float32 and torch.isfinite(h16).all()
    assert torch.equal(h16, h16.bfloat16().float())
    assert not torch.equal(h32, h32.bfloat16().float())
    gap = (h16 - h32).abs()
    scale = h32.abs().max()
    assert gap.max() <= 2**-4 * scale  # bf16 rounding compounded over the layers
    assert gap.max() >= 2**-12 * scale  # far above what fp32 rounding differences give

    # direct inference (one label given): one pass of a tower, nothing to amplify the rounding
    y = test.y.copy()
    y[::2, 0] = np.nan
    y[1::2, 1] = np.nan
    half = test.with_labels(y)
    for a, b in zip(
        model.predict_arrays(half),
        model.predict_arrays(half, inference=bf16_cfg),
        strict=True,
    ):
        assert np.abs(a - b).max() < 0.02
    # alternate inference (no label given): a few samples of this bistable system may settle
    # on the other fixed point, the rest stay within 0.02
    for a, b in zip(
        model.predict_arrays(blank),
        model.predict_arrays(blank, inference=bf16_cfg),
        strict=True,
    ):
        gap = np.abs(a - b)
        assert np.quantile(gap, 0.95) < 0.02 and np.mean(gap > 0.1) < 0.02


def test_a_model_file_from_the_c_kernel_era_loads_with_the_numba_kernel(fitted, tmp_path):
    """Model files written before the numba kernel say ``inference.kernel: compiled``."""
    path = fitted.save(tmp_path / "old.pt")
    payload = torch.load(path, weights_only=True)
    payload["config"]["inference"]["kernel"] = "compiled"
    torch.save(payload, path)
    assert DualLabelModel.load(path).config_.inference.kernel == "numba"
