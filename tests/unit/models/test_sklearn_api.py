"""scikit-learn's estimator contract on DualLabelModel and the baselines: get_params /
set_params over the config, clone, predict_proba, and fit / predict / evaluate on a pandas
DataFrame or a DeepChem dataset as well as on a DualLabelDataset."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from molddl.config import ConfigError
from molddl.data.dataset import DualLabelDataset
from molddl.data.deepchem import from_deepchem, to_deepchem
from molddl.data.labels import LabelSpec
from molddl.data.synthetic import make_dual_label
from molddl.models.baselines import MultiTaskBaseline
from molddl.models.estimator import DualLabelModel

TINY = {
    "model": {"encoder": "mlp", "hidden": 8, "layers": 1, "tower_hidden": 8, "label_dim": 4},
    "train": {"max_epochs": 1, "batch_size": 32},
    "inference": {"kernel": "torch"},  # no numba compilation in a unit test
    "device": "cpu",
}
FEATURES = [f"x{j}" for j in range(10)]
TABULAR = {**TINY, "data": {"labels": ["y1", "y2"], "feature_columns": FEATURES}}
MOLECULAR = {
    **TINY,
    "model": {**TINY["model"], "encoder": "gin"},
    "data": {"labels": ["a", "b"]},
}


def _smiles() -> list[str]:
    """60 small valid molecules."""
    out = []
    for k in range(1, 13):
        chain = "C" * k
        out += [chain, chain + "O", chain + "N", "c1ccccc1" + chain, chain + "C(=O)O"]
    return out


def _molecules(seed: int = 0) -> pd.DataFrame:
    """A user's table: SMILES, two binary assays with empty cells, a note column."""
    rng = np.random.default_rng(seed)
    smiles = _smiles()
    y = rng.integers(0, 2, size=(len(smiles), 2)).astype(float)
    y[rng.random(y.shape) < 0.25] = np.nan
    return pd.DataFrame({"SMILES": smiles, "a": y[:, 0], "b": y[:, 1], "note": "x"})


@pytest.fixture(scope="module")
def data() -> DualLabelDataset:
    return make_dual_label(n=60, kind="binary", missing_rate=0.3, seed=1)


@pytest.fixture(scope="module")
def frame(data) -> pd.DataFrame:
    return data.to_frame()  # id, x0 .. x9, y1, y2


@pytest.fixture(scope="module")
def fitted(frame) -> DualLabelModel:
    return DualLabelModel(copy.deepcopy(TABULAR)).fit(frame)


# ------------------------------------------------------------------ get_params / clone
def test_get_params_lists_the_config_and_every_config_value():
    cfg = copy.deepcopy(TABULAR)
    model = DualLabelModel(cfg)
    assert model.get_params(deep=False) == {"config": cfg}
    deep = model.get_params()
    assert deep["config"] is cfg
    assert deep["config__train__lr"] == 1e-3 and deep["config__model__hidden"] == 8
    assert deep["config__data__feature_columns"] == FEATURES
    assert deep["config__seed"] == 0


def test_set_params_replaces_config_values_validated():
    cfg = copy.deepcopy(TABULAR)
    model = DualLabelModel(cfg)
    assert model.set_params(config__train__lr=0.01, config__model__hidden=4) is model
    assert model.config_.train.lr == 0.01 and model.config_.model.hidden == 4
    assert model.config_.train.max_epochs == 1  # the rest is kept
    assert cfg == TABULAR  # the caller's dict is not changed
    model.set_params(config={"seed": 3})
    assert model.config_.seed == 3 and model.config_.train.lr == 1e-3


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"config__train__lerning_rate": 0.1}, "train.lerning_rate"),
        ({"config__train__lr": -1.0}, "train.lr"),
        ({"config__trian__lr": 0.1}, "trian"),
        ({"config__model__encoder": "transformer"}, "model.encoder"),
    ],
)
def test_set_params_with_a_bad_config_key_or_value_names_it(params, named):
    model = DualLabelModel(copy.deepcopy(TABULAR))
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        model.set_params(**params)
    assert model.config_.train.lr == 1e-3  # nothing changed


def test_set_params_with_an_unknown_parameter_names_it():
    with pytest.raises(ValueError, match="'learning_rate'"):
        DualLabelModel().set_params(learning_rate=0.1)


def test_clone_of_an_unfitted_model():
    model = DualLabelModel(copy.deepcopy(TABULAR)).set_params(config__seed=7)
    twin = clone(model)
    assert type(twin) is DualLabelModel and twin is not model
    assert twin.config_ == model.config_ and twin.config_.seed == 7


def test_clone_of_a_fitted_model_is_unfitted_with_an_equal_config(fitted, frame):
    twin = clone(fitted)
    assert twin.config_ == fitted.config_
    assert not hasattr(twin, "net_") and not hasattr(twin, "preprocessor_")
    with pytest.raises(RuntimeError, match="not fitted"):
        twin.predict(frame)
    assert hasattr(fitted, "net_")  # the original keeps its weights


def test_clone_of_a_baseline_keeps_its_budget():
    base = MultiTaskBaseline(copy.deepcopy(TABULAR), budget=3)
    twin = clone(base)
    assert twin.get_params(deep=False) == {"config": TABULAR, "budget": 3}
    assert twin.set_params(config__train__lr=0.5).config_.train.lr == 0.5


# ------------------------------------------------------------------ DataFrame input
def test_fit_predict_evaluate_take_a_dataframe(fitted, data, frame):
    """A frame gives the predictions its dataset gives; predict keeps one row per row."""
    from_frame = fitted.predict_proba(frame)
    from_data = fitted.predict_arrays(data)
    for k in range(2):
        np.testing.assert_allclose(from_frame[k][:, 1], from_data[k], rtol=1e-6)
    table = fitted.predict(frame)
    assert len(table) == len(frame)
    known = frame["y1"].notna().to_numpy()
    assert (table.loc[known, "y1_source"] == "given").all()
    test = make_dual_label(n=60, kind="binary", seed=2).to_frame()
    scores = fitted.evaluate(test)
    assert set(scores["task"]) == {"Single-y1", "Single-y2", "Double-y1", "Double-y2"}


def test_predict_takes_a_frame_without_label_columns(fitted, frame):
    table = fitted.predict(frame[FEATURES])
    assert (table["y1_source"] == "alternate").all() and (table["y2_source"] == "alternate").all()


def test_fit_on_a_frame_of_molecules_with_a_named_smiles_column():
    cfg = copy.deepcopy(MOLECULAR)
    cfg["data"]["smiles_column"] = "SMILES"
    df = _molecules()
    model = DualLabelModel(cfg).fit(df)
    proba = model.predict_proba(df.drop(columns=["b"]))
    assert [p.shape for p in proba] == [(60, 2), (60, 2)]
    np.testing.assert_allclose(proba[1].sum(axis=1), 1.0, rtol=1e-6)
    # without data.smiles_column, a column named smiles in any case is found
    assert len(DualLabelModel(copy.deepcopy(MOLECULAR)).fit(df).predict(df)) == 60


@pytest.mark.parametrize(
    ("drop", "config", "named"),
    [
        ("y2", TABULAR, "label column 'y2'"),
        ("x3", TABULAR, "feature column 'x3'"),
    ],
    ids=["label", "feature"],
)
def test_fit_on_a_frame_without_a_column_names_it(frame, drop, config, named):
    with pytest.raises(ValueError, match=named):
        DualLabelModel(copy.deepcopy(config)).fit(frame.drop(columns=[drop]))


def test_frame_without_its_smiles_column_names_it():
    df = _molecules().rename(columns={"SMILES": "structure"})
    with pytest.raises(ValueError, match="SMILES column 'smiles'.*structure"):
        DualLabelModel(copy.deepcopy(MOLECULAR)).fit(df)


def test_evaluate_on_a_frame_without_a_label_column_names_it(fitted, frame):
    with pytest.raises(ValueError, match="label column 'y1'"):
        fitted.evaluate(frame.drop(columns=["y1"]))


def test_unsupported_input_type_is_named(fitted):
    with pytest.raises(TypeError, match=r"predict\(\) takes .*numpy\.ndarray"):
        fitted.predict(np.zeros((3, 10)))


# ------------------------------------------------------------------ predict_proba
def test_predict_proba_uses_a_known_label_as_evidence(fitted, data):
    """One ``n x 2`` array per label; a given label is its class, and it changes the other's
    probabilities (direct inference)."""
    y = np.full_like(data.y, np.nan)
    y[:, 0] = 0.0
    given0 = fitted.predict_proba(data.with_labels(y))
    y[:, 0] = 1.0
    given1 = fitted.predict_proba(data.with_labels(y))
    assert [p.shape for p in given1] == [(60, 2), (60, 2)]
    np.testing.assert_array_equal(given1[0], np.tile([0.0, 1.0], (60, 1)))
    np.testing.assert_allclose(given1[1].sum(axis=1), 1.0, rtol=1e-6)
    assert not np.allclose(given0[1], given1[1])


def test_predict_proba_of_a_regression_label_is_an_error():
    mixed = make_dual_label(n=60, kind="mixed", missing_rate=0.2, seed=0)
    model = DualLabelModel(copy.deepcopy(TINY)).fit(mixed)
    with pytest.raises(ValueError, match="'y2' is a regression label"):
        model.predict_proba(mixed)


# ------------------------------------------------------------------ DeepChem input
@pytest.fixture(scope="module")
def dc():
    return pytest.importorskip("deepchem")


def _labels(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    y = df[["a", "b"]].to_numpy()
    return np.nan_to_num(y), (~np.isnan(y)).astype(float)


def test_fit_and_predict_take_a_deepchem_dataset(dc, fitted, data):
    """Tabular: X as features, w = 0 as missing; the same predictions as the dataset."""
    ds = to_deepchem(data)
    np.testing.assert_allclose(
        fitted.predict_proba(ds)[1][:, 1], fitted.predict_arrays(data)[1], rtol=1e-6
    )
    model = DualLabelModel(copy.deepcopy(TABULAR)).fit(ds)
    assert model.preprocessor_.feature_names == tuple(FEATURES)


def test_molnet_style_disk_dataset_smiles_in_ids(dc, tmp_path):
    """MoleculeNet keeps SMILES in ids and a featurization in X: molddl takes the ids."""
    df = _molecules()
    y, w = _labels(df)
    ds = dc.data.DiskDataset.from_numpy(
        X=np.zeros((len(df), 16)), y=y, w=w, ids=np.array(df["SMILES"]), tasks=["a", "b"],
        data_dir=str(tmp_path / "disk"),
    )  # fmt: skip
    model = DualLabelModel(copy.deepcopy(MOLECULAR)).fit(ds)
    assert model.preprocessor_.featurizer is not None  # molecules, not 16 features
    table = model.predict(ds)
    assert list(table["smiles"]) == list(df["SMILES"])
    # a dataset built without y (every w = 0) is data to predict: every label unknown
    blank = dc.data.NumpyDataset(X=np.array(df["SMILES"]), ids=np.array(df["SMILES"]))
    proba = model.predict_proba(blank)
    assert not np.isnan(proba[0]).any()


def test_deepchem_dataset_with_the_wrong_number_of_tasks_names_them(dc, fitted, data):
    rng = np.random.default_rng(0)
    three = dc.data.NumpyDataset(X=data.X, y=rng.integers(0, 2, (60, 3)).astype(float))
    with pytest.raises(ValueError, match="3 tasks"):
        DualLabelModel(copy.deepcopy(TABULAR)).fit(three)
    with pytest.raises(ValueError, match="3 tasks"):
        fitted.predict(three)
    unnamed = copy.deepcopy(TABULAR)
    del unnamed["data"]["labels"]
    with pytest.raises(ValueError, match="3 tasks.*data.labels"):
        DualLabelModel(unnamed).fit(three)


def test_deepchem_tasks_named_in_the_config_are_taken_from_more(dc, data, tmp_path):
    y = np.column_stack([data.y[:, 0], np.zeros(60), data.y[:, 1]])
    ds = dc.data.DiskDataset.from_numpy(
        X=data.X, y=np.nan_to_num(y), w=(~np.isnan(y)).astype(float), ids=data.ids,
        tasks=["y1", "other", "y2"], data_dir=str(tmp_path / "disk"),
    )  # fmt: skip
    back = from_deepchem(ds, ["y1", "y2"])
    np.testing.assert_array_equal(np.isnan(back.y), np.isnan(data.y))


# ------------------------------------------------------------------ from_deepchem
def test_from_deepchem_infers_smiles_in_ids_without_arguments(dc):
    df = _molecules()
    y, w = _labels(df)
    ds = dc.data.NumpyDataset(X=np.ones((60, 4)), y=y, w=w, ids=np.array(df["SMILES"]))
    back = from_deepchem(ds, ["a", "b"])
    assert back.is_molecular and back.X is None
    assert list(back.smiles) == list(df["SMILES"])
    assert back.labels == (LabelSpec("a", "binary"), LabelSpec("b", "binary"))


def test_from_deepchem_without_smiles_or_features_names_x_and_ids(dc):
    ds = dc.data.NumpyDataset(
        X=np.array(["not", "numbers"], dtype=object), y=np.ones((2, 2)), ids=["id-1", "id-2"]
    )
    with pytest.raises(ValueError, match=r"X is not a numeric.*ids are not SMILES.*'id-1'"):
        from_deepchem(ds, ["a", "b"])
    with pytest.raises(ValueError, match="no DeepChem id parses as a SMILES"):
        from_deepchem(ds, ["a", "b"], ids_are_smiles=True)
