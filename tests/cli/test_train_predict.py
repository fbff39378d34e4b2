"""``molddl train`` → ``predict`` / ``evaluate`` on a user's own CSV, through the real entry
point (in-process and as a subprocess), with a tiny GNN."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from molddl.cli.main import main
from molddl.config import Config
from molddl.inference import screen as screen_mod
from molddl.models.estimator import DualLabelModel
from molddl.pipeline import load_splits

REPO = Path(__file__).resolve().parents[2]
LABELS = ["SR-ARE", "SR-MMP"]
TINY = [
    "--set", "model.hidden=16", "--set", "model.tower_hidden=16", "--set", "model.layers=1",
    "--set", "train.max_epochs=1",
]  # fmt: skip


@pytest.fixture(scope="module")
def trained(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny DLL model trained by ``molddl train`` (a subprocess) on 400 Tox21 rows."""
    root = tmp_path_factory.mktemp("trained")
    tox21 = pd.read_csv(data_dir / "tox21.csv.gz")
    tox21[["smiles", *LABELS]].iloc[:400].to_csv(root / "mine.csv", index=False)
    tox21[["smiles", *LABELS]].iloc[400:700].to_csv(root / "more.csv", index=False)
    env = dict(os.environ)
    env["MOLDDL_CACHE_DIR"] = str(root / "cache")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [
            sys.executable, "-m", "molddl.cli.main", "train",
            "--set", f"data.dataset={root / 'mine.csv'}", "--set", "data.labels=[SR-ARE, SR-MMP]",
            *TINY, "--output", str(root / "run"),
        ],
        capture_output=True, text=True, env=env, cwd=root, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return {
        "root": root,
        "run": root / "run",
        "model": root / "run" / "model.pt",
        "out": proc.stdout,
    }


def _screen(root: Path) -> pd.DataFrame:
    """120 compounds: both labels known, only one, or none, and one invalid SMILES."""
    df = pd.read_csv(root / "more.csv").dropna(subset=LABELS).reset_index(drop=True)
    df = df.iloc[:120].copy()
    kind = np.arange(len(df)) % 4
    df.loc[kind == 1, "SR-MMP"] = np.nan
    df.loc[kind == 2, "SR-ARE"] = np.nan
    df.loc[kind == 3, LABELS] = np.nan
    df.loc[7, "smiles"] = "C1CC(N"
    df.insert(0, "compound", [f"cpd{i:03d}" for i in range(len(df))])
    df["note"] = "keep me"
    return df


def _predict(trained, path: Path, out: Path, *extra: str) -> pd.DataFrame:
    rc = main(["predict", "--model", str(trained["model"]), "--input", str(path),
               "--output", str(out), "--workers", "1", *extra])  # fmt: skip
    assert rc == 0
    return pd.read_csv(out, keep_default_na=False, na_values=[""])


def test_train_writes_model_config_logs_and_metrics(trained):
    run = trained["run"]
    assert trained["model"].stat().st_size > 0
    cfg = (run / "config.yaml").read_text()
    assert "hidden: 16" in cfg and str(run / "logs") in cfg
    assert (run / "logs" / "dll" / "metrics.csv").exists()
    metrics = pd.read_csv(run / "test_metrics.csv")
    assert list(dict.fromkeys(metrics["task"])) == [
        "Single-y1", "Single-y2", "Double-y1", "Double-y2"
    ]  # fmt: skip
    assert all(t in trained["out"] for t in ("Single-y1", "Double-y2", "roc_auc"))


def test_predict_keeps_known_labels_and_predicts_the_others(trained, tmp_path):
    screen = _screen(trained["root"])
    path = tmp_path / "screen.csv"
    screen.to_csv(path, index=False)
    out = _predict(trained, path, tmp_path / "preds.csv")

    assert list(out["compound"]) == list(screen["compound"])
    assert list(out.columns[: len(screen.columns)]) == list(screen.columns)
    assert (out["note"] == "keep me").all()
    valid = out["error"].isna()
    assert out.loc[~valid, "error"].tolist() == ["invalid SMILES"]
    assert out.loc[~valid, ["SR-ARE_prob", "SR-MMP_prob"]].isna().all(axis=None)
    kind = np.arange(len(screen)) % 4
    for k, name in enumerate(LABELS):
        known = screen[name].notna().to_numpy()
        src = out[f"{name}_source"]
        assert (out.loc[known, name] == screen.loc[known, name]).all()
        assert (src[known] == "given").all()
        other = LABELS[1 - k]
        direct = valid & ~known & screen[other].notna().to_numpy()
        assert (src[direct] == "direct").all() and direct.sum() > 20
        assert (src[valid & (kind == 3)] == "alternate").all()
        # predicted rows: the probability, in the label's column (as chemprop writes it) and
        # in <label>_prob; given rows: the given value, and no probability to pollute a ROC
        predicted = valid & ~known
        prob = out.loc[predicted, f"{name}_prob"]
        assert prob.between(0, 1).all() and not prob.isin([0, 1]).all()
        assert np.array_equal(out.loc[predicted, name], prob)
        assert out.loc[known, f"{name}_prob"].isna().all()
        # the hard call: at the validation-chosen threshold of the row's source
        cuts = DualLabelModel.load(trained["model"]).thresholds_[name]
        cls = out[f"{name}_class"]
        assert (cls[known] == screen.loc[known, name]).all()
        for source in ("direct", "alternate"):
            rows = predicted & (src == source)
            assert (cls[rows] == (out.loc[rows, f"{name}_prob"] >= cuts[source])).all()
        assert cls[~valid].isna().all()
    assert (out.loc[valid & (kind == 3), "iterations"] > 0).all()

    chunked = _predict(trained, path, tmp_path / "chunked.csv", "--chunk-size", "50")
    pd.testing.assert_frame_equal(chunked, out, rtol=1e-5)


def test_threshold_option_sets_the_hard_calls(trained, tmp_path, capsys):
    screen = _screen(trained["root"])
    path = tmp_path / "screen.csv"
    screen.to_csv(path, index=False)
    out = _predict(trained, path, tmp_path / "p.csv", "--threshold", "0.2",
                   "--threshold", "SR-MMP=0.7")  # fmt: skip
    assert (
        "SR-ARE_class: predicted 1 at a probability >= threshold (direct 0.2, alternate 0.2)"
        in (capsys.readouterr().out)
    )
    for name, cut in (("SR-ARE", 0.2), ("SR-MMP", 0.7)):
        rows = out[f"{name}_source"].isin(["direct", "alternate"])
        assert (out.loc[rows, f"{name}_class"] == (out.loc[rows, f"{name}_prob"] >= cut)).all()
    for bad, needle in (("1.5", "'1.5': 1.5 is not in (0, 1)"),
                        ("tox=0.3", "label 'tox' is unknown; binary labels: SR-ARE, SR-MMP"),
                        ("SR-ARE=x", "'SR-ARE=x': expected a number")):  # fmt: skip
        rc = main(["predict", "--model", str(trained["model"]), "--input", str(path),
                   "--output", str(tmp_path / "bad.csv"), "--threshold", bad])  # fmt: skip
        assert rc == 2 and needle in capsys.readouterr().err  # a usage error
        assert not (tmp_path / "bad.csv").exists()


def _write_sdf(frame: pd.DataFrame, path: Path) -> None:
    """The rows of ``frame`` as SDF records: title = compound, known labels as data items;
    an invalid SMILES becomes a record RDKit cannot read."""
    import io

    from rdkit import Chem

    blocks = []
    for _, row in frame.iterrows():
        mol = Chem.MolFromSmiles(row["smiles"])
        if mol is None:
            blocks.append(f"{row['compound']}\n  broken\n\nnot a counts line\nM  END\n$$$$\n")
            continue
        mol.SetProp("_Name", row["compound"])
        for name in LABELS:
            if pd.notna(row[name]):
                mol.SetProp(name, str(int(row[name])))
        text = io.StringIO()
        with Chem.SDWriter(text) as writer:
            writer.write(mol)
        blocks.append(text.getvalue())
    path.write_text("".join(blocks))
    assert "<SR-MMP>" in path.read_text()


def test_predict_reads_sdf_and_writes_parquet(trained, tmp_path):
    screen = _screen(trained["root"])
    csv_in, sdf_in = tmp_path / "screen.csv", tmp_path / "screen.sdf"
    screen.to_csv(csv_in, index=False)
    _write_sdf(screen, sdf_in)
    reference = _predict(trained, csv_in, tmp_path / "ref.csv")
    rc = main(["predict", "--model", str(trained["model"]), "--input", str(sdf_in),
               "--output", str(tmp_path / "out.parquet"), "--workers", "1",
               "--chunk-size", "50"])  # fmt: skip
    assert rc == 0
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert len(out) == len(screen)
    assert list(out.columns[:5]) == ["smiles", "sdf_record", "sdf_title", *LABELS]
    unreadable = screen["smiles"] == "C1CC(N"
    assert list(out["sdf_title"].fillna("?")) == list(screen["compound"].where(~unreadable, "?"))
    assert list(out["sdf_record"]) == [str(i) for i in range(1, len(screen) + 1)]
    assert out.loc[unreadable, "error"].tolist() == ["no molecule (empty SMILES)"]
    assert (out.loc[~unreadable, "error"] == "").all()  # an empty text, as in the CSV
    # typed columns, and the same predictions as from the CSV (the SMILES RDKit writes for
    # a record is another string for the same graph)
    for name in LABELS:
        assert out[f"{name}_prob"].dtype == np.float64
        assert str(out[f"{name}_class"].dtype) == "int64" or out[f"{name}_class"].isna().any()
        a, b = out.loc[~unreadable, f"{name}_prob"], reference.loc[~unreadable, f"{name}_prob"]
        same = np.isclose(a, b, rtol=1e-4, atol=1e-6, equal_nan=True)
        # a molblock is RDKit's own reading of a structure (stereo, charges, hydrogens), so a
        # few molecules get a slightly different graph than from the SMILES: 3 of 119 here
        assert same.mean() > 0.95 and np.nanmax(np.abs(a - b)) < 0.02
        assert list(out[f"{name}_source"]) == list(reference[f"{name}_source"].fillna(""))


def test_workers_lookahead_and_batch_size_give_the_same_predictions(trained, data_dir, tmp_path):
    # two chunks of 1,050 rows: with 2 workers each is featurized by the process pool, the
    # second while the model predicts the first; the output equals the one-process run (to
    # float rounding: with 2 workers the model runs on the one core they leave)
    tox21 = pd.read_csv(data_dir / "tox21.csv.gz")
    screen = tox21[["smiles", *LABELS]].iloc[1000:3100].reset_index(drop=True)
    screen.loc[::3, "SR-ARE"] = np.nan
    screen.loc[::2, "SR-MMP"] = np.nan
    path = tmp_path / "screen.csv"
    screen.to_csv(path, index=False)
    serial = _predict(trained, path, tmp_path / "serial.csv")
    rc = main(["predict", "--model", str(trained["model"]), "--input", str(path),
               "--output", str(tmp_path / "pool.csv"), "--workers", "2",
               "--chunk-size", "1050"])  # fmt: skip
    assert rc == 0
    pooled = pd.read_csv(tmp_path / "pool.csv", keep_default_na=False, na_values=[""])
    pd.testing.assert_frame_equal(pooled, serial)
    assert (pooled["error"] == "invalid SMILES").sum() == 3  # Tox21 rows 1323, 2291, 2298
    # the encoder's batch size (256 by default on the CPU) is a speed setting only
    for size in (4096, 37):
        out = tmp_path / f"batch{size}.csv"
        again = _predict(trained, path, out, "--set", f"inference.batch_size={size}")
        pd.testing.assert_frame_equal(again, serial, check_exact=True)


def test_predict_without_label_columns_uses_alternate_inference(trained, tmp_path):
    path = tmp_path / "smiles_only.csv"
    smiles = _screen(trained["root"])["smiles"].iloc[:10]
    pd.DataFrame({"SMILES": smiles}).to_csv(path, index=False)
    out = _predict(trained, path, tmp_path / "preds.csv", "--chunk-size", "1")  # row 8 alone
    assert out["error"].tolist()[7] == "invalid SMILES" and out["error"].isna().sum() == 9
    assert out.columns[0] == "SMILES" and {"SR-ARE", "SR-MMP"} <= set(out.columns)
    valid = out["error"].isna()
    assert (out.loc[valid, "SR-ARE_source"] == "alternate").all()
    assert (out.loc[valid, "SR-MMP_source"] == "alternate").all()


def test_predict_takes_inference_overrides_and_writes_its_config(trained, tmp_path, capsys):
    path = tmp_path / "smiles_only.csv"
    pd.DataFrame({"smiles": ["CCO", "c1ccccc1O", "CC(=O)N"]}).to_csv(path, index=False)
    out = _predict(trained, path, tmp_path / "p.csv", "--set", "inference.max_iter=0")
    # no iteration allowed: the unknown labels stay at the marginal model's prediction
    assert (out["SR-ARE_source"] == "marginal").all() and (out["iterations"] == 0).all()
    beside = Config.from_yaml(tmp_path / "p.csv.config.yaml")
    assert beside.inference.max_iter == 0
    rc = main(["predict", "--model", str(trained["model"]), "--input", str(path),
               "--output", str(tmp_path / "q.csv"), "--set", "model.hidden=8"])  # fmt: skip
    assert rc == 2
    assert "'model.hidden'" in _one_line_error(capsys)


def test_predict_resumes_after_an_interruption(trained, tmp_path, monkeypatch, caplog):
    path = tmp_path / "screen.csv"
    _screen(trained["root"]).to_csv(path, index=False)
    reference = _predict(trained, path, tmp_path / "reference.csv", "--chunk-size", "50")
    out, parts = tmp_path / "preds.csv", tmp_path / "preds.csv.parts"

    def interrupted(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(screen_mod, "_concatenate", interrupted)
    argv = ["predict", "--model", str(trained["model"]), "--input", str(path),
            "--output", str(out), "--workers", "1", "--chunk-size", "50"]  # fmt: skip
    assert main(argv) == 130  # Ctrl-C: "molddl: interrupted", no traceback
    names = sorted(p.name for p in parts.glob("part-*.csv"))
    assert names == ["part-000000.csv", "part-000001.csv", "part-000002.csv"]
    assert not out.exists()
    (parts / "part-000001.csv").unlink()
    mtimes = {n: (parts / n).stat().st_mtime_ns for n in names if n != "part-000001.csv"}
    assert main(argv) == 130
    assert (parts / "part-000001.csv").exists()
    assert {n: (parts / n).stat().st_mtime_ns for n in mtimes} == mtimes

    monkeypatch.undo()
    assert main(argv) == 0
    assert not parts.exists()
    pd.testing.assert_frame_equal(
        pd.read_csv(out, keep_default_na=False, na_values=[""]), reference, rtol=1e-5
    )

    monkeypatch.setattr(screen_mod, "_concatenate", interrupted)
    assert main(argv) == 130  # parts of another chunk size are not reused
    monkeypatch.undo()
    assert main([*argv[:-1], "40"]) == 0
    assert "parts of another run" in caplog.text
    assert len(pd.read_csv(out)) == len(reference)


def test_evaluate_prints_the_four_tasks(trained, tmp_path, capsys):
    tidy = tmp_path / "scores.csv"
    rc = main(["evaluate", "--model", str(trained["model"]),
               "--input", str(trained["root"] / "more.csv"), "--output", str(tidy)])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    for task in ("Single-y1", "Single-y2", "Double-y1", "Double-y2"):
        assert task in out
    assert set(pd.read_csv(tidy)["metric"]) >= {"f1", "roc_auc", "pr_auc"}


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("molddl: error:")
    return err


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("mol,SR-ARE\nCCO,1\n", ["'smiles'", "mol, SR-ARE"]),
        ("smiles,SR-ARE\nCCO,1\nCC,0\nCCC,2\n", ["'SR-ARE'", "row 3"]),
        ("smiles,SR-MMP\nCCO,yes\n", ["'SR-MMP'", "row 1", "'yes'"]),
    ],
)
def test_predict_bad_table_exits_2(trained, tmp_path, capsys, table, expected):
    path = tmp_path / "bad.csv"
    path.write_text(table)
    rc = main(["predict", "--model", str(trained["model"]), "--input", str(path),
               "--output", str(tmp_path / "out.csv")])  # fmt: skip
    assert rc == 2
    err = _one_line_error(capsys)
    assert all(e in err for e in expected), err
    assert not (tmp_path / "out.csv").exists()


def test_bad_files_and_config_exit_2(trained, tmp_path, capsys):
    screen = tmp_path / "screen.csv"
    screen.write_text("smiles\nCCO\n")
    base = ["predict", "--output", str(tmp_path / "out.csv")]
    assert main([*base, "--model", str(tmp_path / "none.pt"), "--input", str(screen)]) == 2
    assert "none.pt" in _one_line_error(capsys)
    assert main([*base, "--model", str(trained["model"]), "--input", "nope.csv"]) == 2
    assert "nope.csv" in _one_line_error(capsys)

    payload = torch.load(trained["model"], weights_only=True)
    payload["format_version"] = 99
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    assert main([*base, "--model", str(old), "--input", str(screen)]) == 2
    assert "Retrain" in _one_line_error(capsys)

    rc = main(["train", "--set", "train.lerning_rate=1", "--output", str(tmp_path / "run")])
    assert rc == 2
    assert "train.lerning_rate" in _one_line_error(capsys)
    rc = main([*base, "--model", str(trained["model"]), "--input", str(screen),
               "--set", "inference.batch_size=0"])  # fmt: skip
    assert rc == 2
    assert "'inference.batch_size' must be at least 1" in _one_line_error(capsys)


@pytest.mark.parametrize(
    ("command", "given", "missing"),
    [
        ("train", [], "--output/--save-dir"),
        ("predict", ["--input", "x.csv", "--output", "y.csv"], "--model"),
        ("predict", ["--model", "m.pt", "--output", "y.csv"], "--input"),
        ("evaluate", ["--input", "x.csv"], "--model"),
    ],
)
def test_help_exits_0_and_a_missing_required_option_exits_2_naming_it(
    command, given, missing, capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: molddl {command}")
    with pytest.raises(SystemExit) as exit_info:
        main([command, *given])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"the following arguments are required: {missing}" in err, err
    assert err.rstrip().endswith(missing), err  # only the one left out is named
    assert list(tmp_path.iterdir()) == []  # nothing ran


def _small_feature_table(path: Path, n: int = 120) -> Path:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, 4))
    df = pd.DataFrame(X, columns=[f"f{j}" for j in range(4)])
    df["logS"] = X[:, 0] - 0.5 * X[:, 1] + 0.1 * rng.normal(size=n)
    df["active"] = (X[:, 0] + X[:, 2] > 0).astype(float)
    df.to_csv(path, index=False)
    return path


def test_set_overrides_the_config_file_in_the_run_and_in_its_written_config(tmp_path, capsys):
    table = _small_feature_table(tmp_path / "table.csv")
    base = tmp_path / "base.yaml"
    base.write_text(
        f"data: {{dataset: {table}, labels: [logS, active], feature_columns: all}}\n"
        "model: {hidden: 8, tower_hidden: 8, layers: 1}\n"
        "train: {max_epochs: 1, patience: 10}\n"
    )
    run = tmp_path / "run"
    rc = main(["train", "--config", str(base), "--set", "train.max_epochs=3",
               "--set", "model.label_dim=4", "--output", str(run)])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    written = Config.from_yaml(run / "config.yaml")
    assert written.train.max_epochs == 3 and written.model.label_dim == 4  # --set wins
    assert written.model.hidden == 8 and written.train.patience == 10  # the file's keys kept
    assert written.data.labels == ["logS", "active"]
    # the override changed the run itself: three epochs logged (patience 10 never stops it)
    for stage in ("marginal", "dll"):
        log = pd.read_csv(run / "logs" / stage / "metrics.csv")
        assert sorted(log["epoch"].dropna().unique()) == [0, 1, 2], stage
    assert DualLabelModel.load(run / "model.pt").config_.model.label_dim == 4


@pytest.mark.parametrize(
    ("override", "named", "hint"),
    [
        ("train.max_epoch=2", "'train.max_epoch'", "did you mean 'max_epochs'?"),
        ("model.hiden=8", "'model.hiden'", "did you mean 'hidden'?"),
        ("inference.dampng=0.5", "'inference.dampng'", "did you mean 'damping'?"),
    ],
)
def test_an_unknown_set_key_exits_2_naming_it_with_a_suggestion(
    override, named, hint, tmp_path, capsys
):
    run = tmp_path / "run"
    assert main(["train", "--set", override, "--output", str(run)]) == 2
    err = _one_line_error(capsys)
    assert named in err and hint in err, err
    assert not run.exists()  # rejected before any work


def test_train_and_predict_on_a_feature_table_with_a_value_label(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 5))
    df = pd.DataFrame(X, columns=[f"f{j}" for j in range(5)])
    df["logS"] = X[:, 0] - 0.5 * X[:, 1] + 0.1 * rng.normal(size=240)
    df["active"] = (X[:, 0] + X[:, 2] > 0).astype(float)
    df.loc[rng.random(240) < 0.3, "logS"] = np.nan
    df.loc[rng.random(240) < 0.3, "active"] = np.nan
    df["split"] = np.where(
        np.arange(240) < 180, "train", np.where(np.arange(240) < 210, "val", "test")
    )
    df.loc[df["split"] == "test", ["logS", "active"]] = df.loc[
        df["split"] == "test", ["logS", "active"]
    ].fillna(0)
    path = tmp_path / "table.csv"
    df.to_csv(path, index=False)
    rc = main(["train", "--set", f"data.dataset={path}", "--set", "data.labels=[logS, active]",
               "--set", "data.feature_columns=all", *TINY, "--output", str(tmp_path / "run")])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    assert "Single-y1" in out and "logS" in out and "active" in out

    new = df.drop(columns=["split"]).iloc[:6].copy()
    new.loc[:, ["logS", "active"]] = np.nan
    new.loc[0, "logS"] = 1.25
    new_path = tmp_path / "new.csv"
    new.to_csv(new_path, index=False)
    rc = main(["predict", "--model", str(tmp_path / "run" / "model.pt"), "--input",
               str(new_path), "--output", str(tmp_path / "preds.csv")])  # fmt: skip
    assert rc == 0
    preds = pd.read_csv(tmp_path / "preds.csv")
    assert preds.loc[0, "logS"] == 1.25 and preds.loc[0, "logS_source"] == "given"
    assert preds.loc[0, "active_source"] == "direct"
    assert (preds.loc[1:, "logS_source"] == "alternate").all()
    assert preds["logS"].notna().all() and preds["active"].between(0, 1).all()
    assert preds["active"].equals(preds["active_prob"])  # nothing given: all predicted
    assert preds["active_class"].isin([0, 1]).all()  # at the validation-chosen thresholds


def test_evaluate_scores_the_test_samples_stored_at_training(tmp_path, capsys):
    """The model file remembers its test samples: evaluating it under another seed (whose
    split would put training samples in the test part) still scores exactly those."""
    table = _small_feature_table(tmp_path / "table.csv", n=200)
    run = tmp_path / "run"
    rc = main(["train", "--set", f"data.dataset={table}", "--set", "data.labels=[logS, active]",
               "--set", "data.feature_columns=all", *TINY, "--output", str(run)])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    model = DualLabelModel.load(run / "model.pt")
    test_ids = load_splits(model.config_.data, model.config_.seed)[2].ids
    np.testing.assert_array_equal(model.test_ids_, test_ids)
    assert set(load_splits(model.config_.data, 1)[2].ids) != set(test_ids)

    scores = tmp_path / "seed1.csv"
    rc = main(["evaluate", "--model", str(run / "model.pt"), "--set", "seed=1",
               "--output", str(scores)])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    at_training = pd.read_csv(run / "test_metrics.csv")
    assert (at_training["n"] == len(test_ids)).all()  # the table's rows all have both labels
    pd.testing.assert_frame_equal(pd.read_csv(scores), at_training, rtol=1e-6)

    # data that no longer hold the stored samples: an error, not other samples scored
    pd.read_csv(table).to_csv(tmp_path / "renamed.csv", index=False)  # ids "renamed-<row>"
    rc = main(["evaluate", "--model", str(run / "model.pt"),
               "--set", f"data.dataset={tmp_path / 'renamed.csv'}"])  # fmt: skip
    assert rc == 2
    err = _one_line_error(capsys)
    assert f"{len(test_ids)} of the {len(test_ids)} test samples" in err, err


def test_evaluate_of_a_model_file_without_test_ids_says_so(tmp_path, capsys):
    table = _small_feature_table(tmp_path / "table.csv")
    run = tmp_path / "run"
    rc = main(["train", "--set", f"data.dataset={table}", "--set", "data.labels=[logS, active]",
               "--set", "data.feature_columns=all", *TINY, "--output", str(run)])  # fmt: skip
    assert rc == 0
    payload = torch.load(run / "model.pt", weights_only=True)
    del payload["test_ids"]  # as written before model files stored them
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    capsys.readouterr()
    # another split cannot be told from the training one: refused
    assert main(["evaluate", "--model", str(old), "--set", "seed=1"]) == 2
    err = _one_line_error(capsys)
    assert "stores no test sample ids" in err and "seed" in err, err
    # the training config's own split is rebuilt, with a note saying so
    scores = tmp_path / "scores.csv"
    assert main(["evaluate", "--model", str(old), "--output", str(scores)]) == 0
    assert "stores no test sample ids" in capsys.readouterr().err
    pd.testing.assert_frame_equal(
        pd.read_csv(scores), pd.read_csv(run / "test_metrics.csv"), rtol=1e-6
    )
