"""``molddl data describe``: the real entry point, in-process and as a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from molddl.cli.main import main

REPO = Path(__file__).resolve().parents[2]
TOX21_INVALID_ROWS = [1323, 2291, 2298, 3559, 4566, 4650, 5539, 6724]


def _part_table(text: str) -> dict[str, tuple[int, float]]:
    """``part -> (count, share %)`` from the first partition table in ``text``."""
    out: dict[str, tuple[int, float]] = {}
    for line in text.splitlines():
        m = re.match(r"\s*(D12|D1|D2|D0)\s.*?\s(\d+)\s+([\d.]+) %\s*$", line)
        if m and m.group(1) not in out:
            out[m.group(1)] = (int(m.group(2)), float(m.group(3)))
    return out


def _check_tox21_output(out: str) -> None:
    assert "dataset tox21: 7831 samples" in out
    counts = {k: v[0] for k, v in _part_table(out).items()}
    assert counts == {"D12": 4460, "D1": 1372, "D2": 1350, "D0": 649}
    assert "invalid SMILES: 8" in out
    for row in TOX21_INVALID_ROWS:
        assert re.search(rf"row {row}: \S*\[AlH3\]", out), row
    assert "SR-ARE" in out and "SR-MMP" in out


def test_describe_tox21(data_dir, capsys):
    rc = main(["data", "describe", "tox21", "--data-dir", str(data_dir)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    _check_tox21_output(captured.out)


def test_describe_tox21_as_a_subprocess(data_dir, tmp_path):
    env = dict(os.environ)
    env["MOLDDL_DATA_DIR"] = str(data_dir)
    env["MOLDDL_CACHE_DIR"] = str(tmp_path / "cache")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "molddl.cli.main", "data", "describe", "tox21"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    _check_tox21_output(proc.stdout)


def test_describe_higgs_with_missing_rate(data_dir, capsys):
    rc = main(["data", "describe", "higgs", "--data-dir", str(data_dir), "--missing-rate", "0.4"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "dataset higgs: 10984 samples, 21 features" in out
    before, after = out.split("after hiding labels at rate 0.4")
    assert _part_table(before)["D12"] == (10984, 100.0)
    shares = {k: v[1] for k, v in _part_table(after).items()}
    for part, expected in {"D12": 36, "D1": 24, "D2": 24, "D0": 16}.items():
        assert abs(shares[part] - expected) <= 1.5, shares
    assert sum(v[0] for v in _part_table(after).values()) == 10984


def test_describe_mof_reports_dropped_constant_columns(data_dir, capsys):
    assert main(["data", "describe", "mof", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "671 samples, 287 features" in out
    assert "constant feature columns dropped: 54" in out


def test_describe_tox21_other_pair(data_dir, capsys):
    rc = main(
        ["data", "describe", "tox21", "--data-dir", str(data_dir), "--labels", "NR-AR", "SR-p53"]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "NR-AR" in out and "SR-p53" in out
    assert _part_table(out)["D12"][0] != 4460


def test_describe_user_csv(tmp_path, capsys):
    path = tmp_path / "mine.csv"
    path.write_text("smiles,a,b\nCCO,1,0.5\nCC,,1.5\nXX,0,\n")
    assert main(["data", "describe", str(path), "--labels", "a", "b"]) == 0
    out = capsys.readouterr().out
    assert "3 samples" in out
    counts = {k: v[0] for k, v in _part_table(out).items()}
    assert counts == {"D12": 1, "D1": 1, "D2": 1, "D0": 0}
    assert "invalid SMILES: 1" in out and "row 3: XX" in out


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    assert err.startswith("molddl: error:")
    assert "Traceback" not in err
    return err


def test_unknown_column_exits_2_with_one_line(tmp_path, capsys):
    path = tmp_path / "mine.csv"
    path.write_text("smiles,a,b\nCCO,1,0\n")
    rc = main(["data", "describe", str(path), "--labels", "a", "nope"])
    assert rc == 2
    err = _one_line_error(capsys)
    assert "'nope'" in err and "smiles, a, b" in err


def test_bad_label_cell_exits_2_naming_row(tmp_path, capsys):
    path = tmp_path / "mine.csv"
    path.write_text("smiles,a,b\nCCO,1,0\nCC,high,1\n")
    assert main(["data", "describe", str(path), "--labels", "a", "b"]) == 2
    err = _one_line_error(capsys)
    assert "row 2" in err and "'a'" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "describe", "no/such/file.csv", "--labels", "a", "b"],
        ["data", "describe", "tox21", "--labels", "SR-ARE", "SR-NOPE"],
        ["data", "describe", "higgs", "--missing-rate", "1.5"],
        ["data", "describe", "what-is-this"],
    ],
)
def test_user_errors_exit_2(data_dir, capsys, argv):
    argv = [*argv, "--data-dir", str(data_dir)]
    assert main(argv) == 2
    _one_line_error(capsys)


def test_describe_takes_a_config(capsys):
    """The config names dataset, labels and missing rate (HIGGS at 40 %: ~36/24/24/16 %)."""
    config = Path(__file__).resolve().parents[2] / "configs" / "higgs.yaml"
    assert main(["data", "describe", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "m_jj" in out and "after hiding labels at rate 0.4" in out


# ---------------------------------------------------------------- --set, as train takes it


def test_describe_takes_set_overrides(data_dir, capsys):
    rc = main(
        ["data", "describe", "--set", "data.dataset=higgs", "--set", "data.missing_rate=0.4",
         "--data-dir", str(data_dir)]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    assert "dataset higgs: 10984 samples" in out and "after hiding labels at rate 0.4" in out


def test_describe_takes_a_comma_separated_label_list(data_dir, capsys):
    rc = main(
        ["data", "describe", "tox21", "--set", "data.labels=NR-AR,SR-p53",
         "--data-dir", str(data_dir)]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    assert "label y1 = NR-AR" in out and "label y2 = SR-p53" in out


def test_describe_set_on_a_config_and_a_user_csv(tmp_path, capsys):
    path = tmp_path / "mine.csv"
    path.write_text("Molecule,a,b\nCCO,1,0.5\nCC,,1.5\nCCC,0,\n")
    config = REPO / "configs" / "higgs.yaml"
    rc = main(
        ["data", "describe", "--config", str(config), "--set", f"data.dataset={path}",
         "--set", "data.labels=a,b", "--set", "data.smiles_column=Molecule",
         "--set", "data.feature_columns=null", "--set", "data.missing_rate=null"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, capsys.readouterr().err
    assert "3 samples, molecules" in out
    assert {k: v[0] for k, v in _part_table(out).items()} == {"D12": 1, "D1": 1, "D2": 1, "D0": 0}


def test_describe_bad_set_exits_2_naming_every_key(capsys):
    rc = main(
        ["data", "describe", "tox21", "--set", "data.lables=a,b", "--set",
         "data.missing_rate=2", "--set", "data.split=scafold"]
    )  # fmt: skip
    assert rc == 2
    err = _one_line_error(capsys)
    assert err.startswith("molddl: error: 3 problems: (1) ")
    for named in ("'data.lables' (did you mean 'labels'?)", "'data.missing_rate'", "'data.split'"):
        assert named in err, err
    assert "; (2) " in err and "; (3) " in err
