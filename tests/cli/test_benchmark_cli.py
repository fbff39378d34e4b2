"""`molddl benchmark ...` end to end on a small table: outputs, tidy rows, resume."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from molddl.cli.main import main
from molddl.data.synthetic import make_dual_label

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    data = make_dual_label(n=500, kind="regression", seed=0)
    path = tmp_path_factory.mktemp("bench") / "synthetic.csv"
    frame = data.to_frame().drop(columns=["id"])
    frame.to_csv(path, index=False)
    return path


def _run(table, experiment, out, *extra):
    args = [
        "benchmark", experiment, "--quick", "--seeds", "0", "1", "--output", str(out),
        "--set", f"data.dataset={table}", "--set", "data.labels=[y1, y2]", "--set", "data.feature_columns=all",
        "--set", "data.missing_rate=0.4", "--set", "model.encoder=mlp", *extra,
    ]  # fmt: skip
    assert main(args) == 0
    return pd.read_csv(out / "results.csv")


def test_compare_writes_tidy_rows_for_every_method_task_metric_seed(table, tmp_path, capsys):
    tidy = _run(table, "compare", tmp_path / "c", "--methods", "DLL", "MT", "LS")
    for f in ("results.csv", "results.md", "figure.png", "config.yaml"):
        assert (tmp_path / "c" / f).stat().st_size > 0
    assert len(tidy) == 3 * 4 * 3 * 2  # methods × tasks × (mae, mape, rmse) × seeds
    assert not tidy.duplicated(["method", "task", "metric", "seed"]).any()
    assert "Single-y2" in capsys.readouterr().out


def test_compare_resumes_without_redoing_finished_seeds(table, tmp_path):
    out = tmp_path / "r"
    first = _run(table, "compare", out, "--methods", "DLL")
    kept = out / "cells" / "seed0.csv"
    stamp = kept.stat().st_mtime_ns
    (out / "cells" / "seed1.csv").unlink()
    (out / "results.csv").unlink()
    again = _run(table, "compare", out, "--methods", "DLL")
    assert kept.stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(first, again)


def test_missing_rate_sweeps_the_rates(table, tmp_path):
    tidy = _run(table, "missing-rate", tmp_path / "m", "--methods", "DLL", "--rates", "0.2", "0.5")
    assert sorted(tidy["missing_rate"].unique()) == [0.2, 0.5]


def test_ablation_has_the_four_modes(table, tmp_path):
    tidy = _run(table, "ablation", tmp_path / "a")
    assert set(tidy["mode"]) == {"MT", "a", "a+b", "a+b+c"}


def test_convergence_reports_fraction_converged_per_budget(table, tmp_path):
    tidy = _run(table, "convergence", tmp_path / "v", "--iterations", "1", "50")
    conv = tidy[tidy["metric"] == "fraction_converged"]
    assert sorted(conv["iterations"].unique()) == [1, 50]
    assert np.all((conv["value"] >= 0) & (conv["value"] <= 1))
    assert (conv[conv["iterations"] == 1]["value"] == 0).all()  # one step cannot show a fixed point


def test_a_rerun_with_other_settings_is_refused_not_mixed(table, tmp_path, capsys):
    out = tmp_path / "m"
    _run(table, "compare", out, "--methods", "DLL")
    args = [
        "benchmark", "compare", "--quick", "--seeds", "0", "--output", str(out),
        "--set", f"data.dataset={table}", "--set", "data.labels=[y1, y2]", "--set", "data.feature_columns=all",
        "--set", "data.missing_rate=0.4", "--set", "model.encoder=mlp", "--methods", "DLL", "MT",
    ]  # fmt: skip
    assert main(args) == 2
    assert "methods" in capsys.readouterr().err


def test_a_folder_from_before_a_config_key_existed_still_resumes(table, tmp_path, capsys):
    import json

    out = tmp_path / "old"
    first = _run(table, "compare", out, "--methods", "DLL")
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["config"]["inference"]["cycles"]  # as written before that key was added
    manifest["config"]["inference"]["batch_size"] = 4096  # its old default: numbers unchanged
    (out / "manifest.json").write_text(json.dumps(manifest))
    stamp = (out / "cells" / "seed0.csv").stat().st_mtime_ns
    again = _run(table, "compare", out, "--methods", "DLL")  # the key at its default: reused
    assert (out / "cells" / "seed0.csv").stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(first, again)
    args = ["benchmark", "compare", "--quick", "--seeds", "0", "--output", str(out),
            "--set", f"data.dataset={table}", "--set", "data.labels=[y1, y2]", "--set", "data.feature_columns=all",
            "--set", "data.missing_rate=0.4", "--set", "model.encoder=mlp", "--methods", "DLL",
            "--set", "inference.cycles=fixed_point"]  # fmt: skip
    assert main(args) == 2  # another value than the default: refused
    assert "config differ" in capsys.readouterr().err


def test_methods_are_selectable_by_name_in_the_config(table, tmp_path):
    tidy = _run(table, "compare", tmp_path / "k", "--set", "methods=[MT, LS]")
    assert sorted(tidy["method"].unique()) == ["LS", "MT"]
