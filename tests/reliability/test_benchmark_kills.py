"""``molddl benchmark`` killed part-way: no process survives it, and the same command
finishes the run with exactly the rows an uninterrupted run writes."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pandas as pd
import pytest

from molddl.data.synthetic import make_dual_label

from .conftest import children, start, wait_gone


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "synthetic.csv"
    make_dual_label(n=400, kind="regression", seed=0).to_frame().drop(columns=["id"]).to_csv(
        path, index=False
    )
    return path


def _args(table: Path, out: Path) -> list[str]:
    return [
        # seeds enough that the run cannot finish between its first cell and the signal (with
        # three, a fast machine finished the other two in that window: results.csv existed)
        "benchmark", "compare", "--quick", "--methods", "DLL", "MT", "--seeds", *map(str, range(8)),
        "--set", f"data.dataset={table}", "--set", "data.labels=[y1, y2]",
        "--set", "data.missing_rate=0.4", "--set", "data.feature_columns=all",
        "--set", "model.encoder=mlp", "--output", str(out),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "sig",
    [
        pytest.param(signal.SIGKILL, id="SIGKILL", marks=pytest.mark.case(
            risk="data-loss", tried="benchmark compare killed (SIGKILL) after its first seed")),
        pytest.param(signal.SIGTERM, id="SIGTERM", marks=pytest.mark.case(
            risk="data-loss", tried="benchmark compare stopped (SIGTERM) after its first seed")),
    ],
)  # fmt: skip
def test_killed_benchmark_resumes_to_the_same_rows(cli, table, tmp_path, sig):
    reference = tmp_path / "reference"
    assert cli(*_args(table, reference)).rc == 0
    out = tmp_path / "killed"
    proc = start(*_args(table, out))
    deadline = time.monotonic() + 240
    while not (out / "cells" / "seed0.csv").exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the first seed never finished"
        time.sleep(0.1)
    kids = children(proc.pid)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert wait_gone(kids) == []
    assert not (out / "results.csv").exists()
    again = cli(*_args(table, out))
    assert again.rc == 0, again.err[-2000:]
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "results.csv"), pd.read_csv(reference / "results.csv")
    )
