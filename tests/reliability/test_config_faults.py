"""Bad configs: every one is refused before any data is read, with one line naming the key
and what it allows; no output folder is created."""

from __future__ import annotations

import pytest

from .conftest import TINY


def _train(cli, tox_tables, tmp_path, *extra: str):
    return cli(
        "train", "--set", f"data.dataset={tox_tables['train']}",
        "--set", "data.labels=[SR-ARE, SR-MMP]", *extra, "--output", tmp_path / "run",
    )  # fmt: skip


OUT_OF_RANGE = [
    ("model.hidden=-5", "'model.hidden'", ">= 1"),
    ("model.hidden=0", "'model.hidden'", ">= 1"),
    ("model.layers=0", "'model.layers'", ">= 1"),
    ("model.dropout=1.5", "'model.dropout'", "< 1"),
    ("train.lr=-1", "'train.lr'", "> 0"),
    ("train.batch_size=0", "'train.batch_size'", ">= 1"),
    ("train.max_epochs=0", "'train.max_epochs'", ">= 1"),
    ("train.gamma=-0.5", "'train.gamma'", ">= 0"),
    ("data.missing_rate=1.7", "'data.missing_rate'", "< 1"),
    ("data.split_fractions=[0.5, 0.2]", "'data.split_fractions'", "sum to 1"),
    ("data.split_fractions=[0.8, 0.3, -0.1]", "'data.split_fractions'", ">= 0"),
    ("inference.tol=0", "'inference.tol'", "> 0"),
    ("inference.damping=1", "'inference.damping'", "< 1"),
]


@pytest.mark.parametrize(
    ("override", "key", "allowed"),
    [
        pytest.param(o, k, a, id=o, marks=pytest.mark.case(
            risk="traceback", tried=f"train with --set {o}"))
        for o, k, a in OUT_OF_RANGE
    ],
)  # fmt: skip
def test_a_value_out_of_range_names_the_key(cli, tox_tables, tmp_path, override, key, allowed):
    result = _train(cli, tox_tables, tmp_path, "--set", override)
    result.assert_error(key, allowed)
    assert not (tmp_path / "run").exists()


WRONG = [
    ("model.hidden=abc", "'model.hidden'", "integer"),
    ("model.hiden=8", "'model.hiden'", "did you mean 'hidden'?"),
    ("modle.hidden=8", "'modle'", "unknown config section"),
    ("model.encoder=transformer", "'model.encoder'", "choose one of"),
    ("train.losses=[sup, typo]", "'train.losses[1]'", "choose one of"),
    ("seed=1.5", "'seed'", "integer"),
]


@pytest.mark.parametrize(
    ("override", "key", "what"),
    [
        pytest.param(o, k, w, id=o, marks=pytest.mark.case(
            risk="silent-wrong", tried=f"train with --set {o}"))
        for o, k, w in WRONG
    ],
)  # fmt: skip
def test_a_wrong_key_or_type_names_the_key(cli, tox_tables, tmp_path, override, key, what):
    result = _train(cli, tox_tables, tmp_path, "--set", override)
    result.assert_error(key, what)
    assert not (tmp_path / "run").exists()


@pytest.mark.case(risk="traceback", tried="--set without '='")
def test_set_without_equals(cli, tox_tables, tmp_path):
    _train(cli, tox_tables, tmp_path, "--set", "model.hidden").assert_error(
        "'model.hidden'", "section.key=value"
    )


@pytest.mark.case(risk="traceback", tried="a config file that is not valid YAML")
def test_invalid_yaml(cli, tox_tables, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: {hidden: 8\ntrain: [\n")
    _train(cli, tox_tables, tmp_path, "--config", str(path)).assert_error(str(path), "YAML")


@pytest.mark.case(risk="traceback", tried="a config file holding a list, not sections")
def test_yaml_list(cli, tox_tables, tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- model\n- train\n")
    _train(cli, tox_tables, tmp_path, "--config", str(path)).assert_error(str(path), "mapping")


@pytest.mark.case(risk="traceback", tried="a config file that does not exist")
def test_missing_config(cli, tox_tables, tmp_path):
    path = tmp_path / "nope.yaml"
    _train(cli, tox_tables, tmp_path, "--config", str(path)).assert_error(
        str(path), "does not exist"
    )


@pytest.mark.case(risk="foreign-code", tried="a YAML config with a python/object tag")
def test_yaml_never_builds_python_objects(cli, tox_tables, tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.yaml"
    path.write_text(f"model: !!python/object/apply:os.system ['touch {marker}']\n")
    _train(cli, tox_tables, tmp_path, "--config", str(path)).assert_error(str(path))
    assert not marker.exists()


@pytest.mark.case(risk="silent-wrong", tried="lr: 1e-4 (YAML reads it as text) from a file")
def test_float_in_exponent_spelling(cli, tox_tables, tmp_path):
    path = tmp_path / "lr.yaml"
    path.write_text("train: {lr: 1e-4, weight_decay: 5E-6}\n")
    result = _train(cli, tox_tables, tmp_path, "--config", str(path), *TINY)
    assert result.rc == 0, result.err[-2000:]
    written = (tmp_path / "run" / "config.yaml").read_text()
    assert "lr: 0.0001" in written and "weight_decay: 5.0e-06" in written
