"""``molddl tune``: a tiny study, its best config, and a rerun that continues it."""

from __future__ import annotations

import optuna
import pandas as pd
import pytest
from conftest import TINY_HIGGS_FEATURES

from molddl.cli.main import main
from molddl.config import Config


@pytest.fixture
def tiny_higgs(tiny_higgs_csv):
    return tiny_higgs_csv


def test_help_exits_0_and_bad_options_exit_2_before_any_trial(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["tune", "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: molddl tune")

    with pytest.raises(SystemExit) as exit_info:
        main(["tune", "--trials", "1"])
    assert exit_info.value.code == 2
    assert "the following arguments are required: --output" in capsys.readouterr().err

    with pytest.raises(SystemExit) as exit_info:
        main(["tune", "--trials", "two", "--output", str(tmp_path / "a")])
    assert exit_info.value.code == 2
    assert "argument --trials: invalid int value: 'two'" in capsys.readouterr().err

    out = tmp_path / "tune"
    assert main(["tune", "--set", "tune.trails=2", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'tune.trails'" in err and "did you mean 'trials'?" in err, err
    assert not out.exists()  # no study was created


def test_tune_writes_best_config_and_a_rerun_continues_the_study(tiny_higgs, tmp_path, capsys):
    out = tmp_path / "tune"
    args = [
        "tune",
        "--set", f"data.dataset={tiny_higgs}",
        "--set", "data.labels=[m_jj, m_jjj]",
        "--set", f"data.feature_columns=[{', '.join(TINY_HIGGS_FEATURES)}]",
        "--set", "data.missing_rate=0.4",
        "--set", "model.encoder=mlp",
        "--set", "model.gaussian=true",
        "--set", "model.tower_hidden=16",
        "--set", "model.hidden=16",
        "--set", "train.max_epochs=2",
        "--set", "device=cpu",
        "--study", "tiny",
        "--output", str(out),
    ]  # fmt: skip
    assert main([*args, "--trials", "2"]) == 0
    assert "# Study `tiny`" in capsys.readouterr().out
    for name in ("study.db", "trials.csv", "summary.md", "history.png", "importances.png"):
        assert (out / name).exists(), name

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == 2
    best = Config.from_yaml(out / "best_config.yaml")
    for key, value in study.best_trial.params.items():
        section, name = key.split(".")
        assert getattr(getattr(best, section), name) == value, key
    assert best.train.monitor == "val_loss" and best.data.dataset == str(tiny_higgs)

    assert main([*args, "--trials", "1"]) == 0
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    assert sorted(t.number for t in study.trials) == [0, 1, 2]
    assert len(pd.read_csv(out / "trials.csv")) == 3
