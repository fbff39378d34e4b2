"""The config schema: every bad key or value is a :class:`ConfigError` naming the key."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from molddl.config import Config, ConfigError, InferenceConfig, TrainConfig
from molddl.methods import METHODS, NAMES


def error_of(d: dict) -> str:
    with pytest.raises(ConfigError) as err:
        Config.from_dict(d)
    return str(err.value)


# ---------------------------------------------------------------- keys and types


@pytest.mark.parametrize(
    ("d", "named"),
    [
        ({"lerning_rate": 1}, "'lerning_rate'"),
        ({"train": {"lerning_rate": 1e-3}}, "'train.lerning_rate'"),
        ({"model": {"hiden": 64}}, "'model.hiden' (did you mean 'hidden'?)"),
        ({"trian": {}}, "'trian' (did you mean 'train'?)"),
    ],
)
def test_an_unknown_key_is_named_with_a_suggestion(d, named):
    message = error_of(d)
    assert "unknown config key" in message and named in message


@pytest.mark.parametrize(
    ("d", "named"),
    [
        ({"model": {"hidden": "wide"}}, "'model.hidden' must be an integer"),
        ({"model": {"hidden": 64.5}}, "'model.hidden' must be an integer"),
        ({"model": {"hidden": True}}, "'model.hidden' must be an integer"),
        ({"train": {"lr": "fast"}}, "'train.lr' must be a number"),
        ({"model": {"gaussian": "yes"}}, "'model.gaussian' must be true or false"),
        ({"data": {"labels": "y1"}}, "'data.labels' must be a list"),
        ({"data": {"labels": ["y1", 2]}}, "'data.labels[1]' must be a string"),
        ({"data": {"split_fractions": [0.8, "x", 0.1]}}, "'data.split_fractions[1]'"),
        ({"seed": None}, "'seed' must be an integer"),
    ],
)
def test_a_value_of_the_wrong_type_names_the_key(d, named):
    assert named in error_of(d)


def test_an_int_is_taken_where_a_number_is_expected():
    cfg = Config.from_dict({"train": {"lr": 1, "gamma": 0}})
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)


@pytest.mark.parametrize(
    ("d", "named"),
    [
        (
            {"model": {"encoder": "gni"}},
            "'model.encoder': 'gni' is not allowed (did you mean 'gin'?)",
        ),
        ({"data": {"split": "scafold"}}, "'data.split'"),
        ({"train": {"losses": ["sup", "dule"]}}, "'train.losses[1]': 'dule'"),
        ({"device": "gpu"}, "'device'"),
        ({"inference": {"method": "newton"}}, "'inference.method'"),
    ],
)
def test_a_value_outside_its_choices_names_the_key_and_the_choices(d, named):
    message = error_of(d)
    assert named in message and "choose one of" in message


@pytest.mark.parametrize("section", ["data", "model", "train", "inference", "tune"])
def test_a_section_that_is_not_a_mapping_names_the_section(section):
    assert f"config section {section} must be a mapping" in error_of({section: 3})


def test_missing_keys_take_their_defaults_in_every_section():
    cfg = Config.from_dict({"train": {"lr": 0.01}, "model": {}})
    assert cfg.train.lr == 0.01
    assert cfg == Config(train=TrainConfig(lr=0.01))
    assert Config.from_dict(None) == Config() == Config.from_dict({})


@pytest.mark.parametrize(
    ("d", "named"),
    [
        ({"inference": {"batch_size": 0}}, "'inference.batch_size' must be at least 1"),
        ({"tune": {"trials": 0}}, "'tune.trials' must be at least 1"),
        ({"tune": {"heartbeat": -1}}, "'tune.heartbeat'"),
        ({"tune": {"study": ""}}, "'tune.study' may not be empty"),
    ],
)
def test_a_value_out_of_range_names_the_key(d, named):
    assert named in error_of(d)


def test_encoder_batch_size_defaults_per_device():
    assert InferenceConfig().encoder_batch_size("cpu") == 256
    assert InferenceConfig().encoder_batch_size("cuda") == 4096
    assert InferenceConfig(batch_size=7).encoder_batch_size("cuda") == 7


# ---------------------------------------------------------------- overrides


def test_override_sets_nested_keys_with_yaml_values():
    base = Config()
    cfg = base.override(
        ["train.lr=0.01", "data.labels=[a, b]", "model.gaussian=true", "seed=3", "tune.trials=5"]
    )
    assert (cfg.train.lr, cfg.data.labels, cfg.model.gaussian) == (0.01, ["a", "b"], True)
    assert (cfg.seed, cfg.tune.trials) == (3, 5)
    assert base == Config()  # the base config is untouched


def test_override_sets_a_search_range():
    cfg = Config().override(["tune.space={train.lr: {low: 0.001, high: 0.1, log: true}}"])
    assert list(cfg.tune.space) == ["train.lr"] and cfg.tune.space["train.lr"].log


@pytest.mark.parametrize(
    ("assignment", "named"),
    [
        ("train.lr", "must look like section.key=value"),
        ("trian.lr=0.1", "unknown config section 'trian'"),
        ("train.lerning_rate=0.1", "'train.lerning_rate'"),
        ("train.lr=fast", "'train.lr' must be a number"),
        ("model.encoder=gni", "'model.encoder'"),
    ],
)
def test_a_bad_override_names_the_key(assignment, named):
    with pytest.raises(ConfigError) as err:
        Config().override([assignment])
    assert named in str(err.value)


# ---------------------------------------------------------------- YAML files


def test_a_config_round_trips_through_yaml(tmp_path):
    cfg = Config.from_dict(
        {
            "data": {"dataset": "higgs", "labels": ["m_jj", "m_jjj"], "missing_rate": 0.4},
            "model": {"encoder": "mlp", "hidden": 32, "gaussian": True},
            "train": {"losses": ["sup", "rec"], "lr": 0.002},
            "inference": {"method": "gauss_seidel", "batch_size": 64},
            "tune": {
                "metric": "val_mae",
                "space": {"model.layers": {"type": "int", "low": 1, "high": 3}},
            },
            "seed": 7,
            "methods": ["DLL", "LS"],
        }
    )
    path = tmp_path / "c.yaml"
    path.write_text(cfg.to_yaml())
    assert Config.from_yaml(path) == cfg


def test_tune_section_round_trips_through_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "tune:\n  trials: 5\n  metric: val_roc_auc\n  storage: postgresql://u@db/optuna\n"
        "  space:\n    model.encoder: {type: categorical, choices: [mlp, gin]}\n"
    )
    cfg = Config.from_yaml(path)
    assert cfg.tune.trials == 5 and cfg.tune.space["model.encoder"].choices == ["mlp", "gin"]
    (tmp_path / "again.yaml").write_text(cfg.to_yaml())
    assert Config.from_yaml(tmp_path / "again.yaml") == cfg


def test_an_empty_file_is_the_default_config(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert Config.from_yaml(path) == Config()


@pytest.mark.parametrize("text", ["- train\n- model\n", "just a string\n", "3\n"])
def test_a_file_that_is_not_a_mapping_is_refused(tmp_path, text):
    path = tmp_path / "list.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="must hold a mapping of sections"):
        Config.from_yaml(path)


def test_a_missing_or_broken_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml does not exist"):
        Config.from_yaml(tmp_path / "nope.yaml")
    path = tmp_path / "broken.yaml"
    path.write_text("train: {lr: [\n")
    with pytest.raises(ConfigError, match="broken.yaml is not valid YAML"):
        Config.from_yaml(path)


# ---------------------------------------------------------------- tune section


def test_default_tune_section():
    tune_cfg = Config().tune
    assert (tune_cfg.trials, tune_cfg.metric, tune_cfg.study) == (20, "val_loss", "molddl")
    assert tune_cfg.storage is None and tune_cfg.pruner == "median"
    assert set(tune_cfg.space) == {
        "train.alpha1", "train.alpha2", "train.beta1", "train.beta2", "train.gamma",
        "train.lr", "model.hidden", "model.layers", "model.dropout",
    }  # fmt: skip
    assert tune_cfg.space["train.gamma"].log
    assert tune_cfg.space["model.hidden"].choices == [64, 128, 256]


@pytest.mark.parametrize(
    ("tune_section", "named"),
    [
        ({"trails": 3}, "'tune.trails' (did you mean 'trials'?)"),
        ({"pruner": "hyperband"}, "'tune.pruner'"),
        ({"storage": "study.db"}, "'tune.storage'"),
        ({"space": {"train.alpah1": {"low": 0.1, "high": 2}}}, "'train.alpah1'"),
        ({"space": {"data.split": {"type": "categorical", "choices": ["random"]}}}, "data.split"),
        ({"space": {"lr": {"low": 0.1, "high": 1}}}, "'tune.space.lr'"),
        ({"space": {"train.lr": {"type": "beta", "low": 0.1, "high": 1}}}, "tune.space.train.lr"),
        ({"space": {"train.lr": {"lo": 0.1}}}, "'tune.space.train.lr.lo'"),
        ({"space": {"train.lr": {"low": 0.1}}}, "needs 'low' and 'high'"),
        ({"space": {"train.lr": {"low": 1, "high": 0.1}}}, "must be below 'high'"),
        ({"space": {"train.lr": {"low": 0.0, "high": 1, "log": True}}}, "log range"),
        ({"space": {"train.lr": {"low": 0.1, "high": 1, "choices": [1]}}}, "only for type"),
        ({"space": {"model.layers": {"low": 1.5, "high": 3}}}, "model.layers"),
        ({"space": {"model.layers": {"type": "int", "low": 1.5, "high": 3}}}, "whole-number"),
        ({"space": {"model.hidden": {"type": "categorical"}}}, "non-empty 'choices'"),
        ({"space": {"model.encoder": {"type": "categorical", "choices": ["mlp", "x"]}}}, "'x'"),
        ({"space": {"model.gaussian": {"type": "categorical", "choices": [True, 2]}}}, "gaussian"),
    ],
)
def test_bad_tune_section_names_the_key(tune_section, named):
    assert named in error_of({"tune": tune_section})


def test_tune_metric_is_not_checked_by_the_config():
    """The metric registry is checked when a tune run starts (molddl.tuning), not here."""
    assert Config.from_dict({"tune": {"metric": "val_mae"}}).tune.metric == "val_mae"


# ---------------------------------------------------------------- methods


def test_methods_default_to_the_registry_in_the_papers_order():
    assert NAMES == ("DLL", "MT", "ID", "COL", "SSL", "LS", "DSML")
    assert Config().methods == list(NAMES)
    assert all(m.description for m in METHODS.values())


def test_a_method_outside_the_registry_names_its_index():
    message = error_of({"methods": ["DLL", "DSLM"]})
    assert "'methods[1]': 'DSLM' is not allowed (did you mean 'DSML'?)" in message
    assert "DLL, MT, ID, COL, SSL, LS, DSML" in message
    assert "'methods[0]' must be a string" in error_of({"methods": [1]})
    assert Config.from_dict({"methods": ["LS", "DLL"]}).methods == ["LS", "DLL"]


# ---------------------------------------------------------------- the edge


def test_reading_a_config_imports_neither_torch_nor_the_models():
    code = (
        "import sys; from molddl.config import Config; Config.from_dict({'tune': "
        "{'metric': 'val_mae'}}).override(['train.lr=0.1']);"
        "print(sorted(m for m in ('torch', 'molddl.models', 'molddl.evaluation') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- lists on the command line


@pytest.mark.parametrize(
    ("assignment", "key", "expected"),
    [
        ("data.labels=a,b", "labels", ["a", "b"]),
        ("data.labels=SR-ARE, SR-MMP", "labels", ["SR-ARE", "SR-MMP"]),
        ("data.labels=[a, b]", "labels", ["a", "b"]),
        ("data.labels=1,yes", "labels", ["1", "yes"]),  # text items stay text
        ("data.split_fractions=0.7,0.2,0.1", "split_fractions", [0.7, 0.2, 0.1]),
        ("data.feature_columns=f0,f1", "feature_columns", ["f0", "f1"]),
        ("data.feature_columns=all", "feature_columns", "all"),
    ],
)
def test_a_list_key_takes_a_comma_separated_list(assignment, key, expected):
    assert getattr(Config().override([assignment]).data, key) == expected


def test_comma_lists_of_other_sections():
    cfg = Config().override(["train.losses=sup,rec", "methods=DLL,MT"])
    assert (cfg.train.losses, cfg.methods) == (["sup", "rec"], ["DLL", "MT"])


@pytest.mark.parametrize(
    ("assignment", "named"),
    [
        ("data.labels=a,", "'data.labels': 'a,' has an empty item"),
        ("data.labels=[a, b", "'data.labels': '[a, b' is not a valid value"),
        ("train.losses=sup,dule", "'train.losses[1]': 'dule' is not allowed"),
        ("data.split_fractions=0.7,x,0.1", "'data.split_fractions[1]' must be a number"),
        ("data.split_fractions=0.7,0.2", "'data.split_fractions' must be three fractions"),
    ],
)
def test_a_bad_list_override_names_the_key(assignment, named):
    with pytest.raises(ConfigError) as err:
        Config().override([assignment])
    assert named in str(err.value)


def test_a_pair_sets_a_value_as_it_is():
    """The CLI's flags that stand for a key pass their value unparsed: no YAML, no commas."""
    cfg = Config().override([("data.dataset", "runs: 1,2.csv"), ("data.labels", ["y,1", "2"])])
    assert (cfg.data.dataset, cfg.data.labels) == ("runs: 1,2.csv", ["y,1", "2"])


# ---------------------------------------------------------------- every problem at once


def test_every_problem_of_a_config_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        Config.from_dict(
            {
                "data": {"split": "scafold", "labels": ["a", 2, 3]},
                "model": {"hidden": "wide", "hiden": 3, "dropout": 1.5},
                "train": {"lr": -1, "losses": ["sup", "dule"]},
                "tune": {"trials": 0, "heartbeat": -1},
                "methods": ["DLL", "DSLM", "XX"],
                "sed": 1,
            }
        )
    named = [
        "'sed'", "'data.split'", "'data.labels[1]'", "'data.labels[2]'", "'model.hiden'",
        "'model.hidden'", "'model.dropout'", "'train.lr'", "'train.losses[1]'",
        "'tune.trials'", "'tune.heartbeat'", "'methods[1]'", "'methods[2]'",
    ]  # fmt: skip
    problems = err.value.problems
    assert len(problems) == len(named), problems
    for key in named:
        assert sum(key in p for p in problems) == 1, (key, problems)
    assert str(err.value) == "\n".join(problems)  # one line per problem


def test_every_bad_override_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        Config().override(["trian.lr=0.1", "model.hidden=x", "train.lr=fast", "seed"])
    problems = err.value.problems
    assert len(problems) == 4, problems
    assert "unknown config section 'trian' (did you mean 'train'?)" in problems[0]
    assert "'seed' must look like section.key=value" in problems[1]
    assert any("'model.hidden' must be an integer" in p for p in problems)
    assert any("'train.lr' must be a number" in p for p in problems)


def test_one_problem_reads_as_before():
    with pytest.raises(ConfigError) as err:
        Config.from_dict({"train": {"lr": 0}})
    assert err.value.problems == [str(err.value)] == ["config key 'train.lr' must be > 0, got 0.0"]


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"labels": ["a", "b", "a"]}, "'data.labels' names 'a' twice"),
        ({"labels": ["a", "b"], "label_kinds": ["binary"]},
         "'data.label_kinds' lists 1 kind(s) for the 2 labels"),
    ],
)  # fmt: skip
def test_label_lists_that_cannot_be_meant_are_refused(data, named):
    with pytest.raises(ConfigError, match=re.escape(named)):
        Config.from_dict({"data": data})


def test_training_on_other_than_two_labels_stops_before_any_work(tmp_path):
    import numpy as np
    import pandas as pd

    from molddl.models.estimator import DualLabelModel
    from molddl.pipeline import load_data, load_splits

    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(40, 3)), columns=["f0", "f1", "f2"])
    for name in "abc":
        table[name] = rng.integers(0, 2, size=40).astype(float)
    table.to_csv(tmp_path / "t.csv", index=False)
    cfg = Config.from_dict(
        {"data": {"dataset": str(tmp_path / "t.csv"), "labels": ["a", "b", "c"],
                  "feature_columns": ["f0", "f1", "f2"]}}
    )  # fmt: skip
    assert load_data(cfg.data).label_names == ["a", "b", "c"]  # describing three is fine
    needle = "dual-label learning trains on two labels, got 3 (a, b, c)"
    with pytest.raises(ValueError, match=re.escape(needle)):
        load_splits(cfg.data, seed=0)
    with pytest.raises(ValueError, match=re.escape(needle)):
        DualLabelModel(cfg).fit(load_data(cfg.data))
