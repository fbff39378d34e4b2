"""``molddl predict --dask`` (issue 17) on a local Dask cluster of two worker processes: the
output equals the one-process run's byte for byte (shards and Parquet too), a worker killed
mid-run loses and duplicates no row, an invalid SMILES keeps its row and reason, a model file
a worker cannot read is one clear error (not a hang), and a killed driver leaves no worker
behind and its rerun resumes."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from molddl.cli.main import main

from .conftest import children, start, wait_gone

distributed = pytest.importorskip("distributed")

CHUNK = "50"  # 48 partitions of the 2,400 rows: enough to kill a worker while some are left
COPIES = 40  # x 60 rows of screen.csv


def _predict_args(model: Path, input_path: Path | str, output: Path, *extra: str) -> list[str]:
    return ["predict", "--model", str(model), "--input", str(input_path), "--output",
            str(output), "--chunk-size", CHUNK, *extra]  # fmt: skip


def _one_process(argv: list[str]) -> int:
    """``molddl predict`` in this process with one model thread, as a Dask task predicts."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return main([*argv, "--workers", "1"])
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def big(tox_tables: dict[str, Path], tiny_model: Path, tmp_path_factory) -> dict:
    """``screen.csv`` repeated to 2,400 rows, with an invalid SMILES in row 5, and its
    predictions by one process."""
    root = tmp_path_factory.mktemp("dask")
    table = pd.read_csv(tox_tables["screen"], dtype=str, keep_default_na=False)
    table = pd.concat([table] * COPIES, ignore_index=True)
    table.loc[4, "smiles"] = "C1CC(N"
    table.to_csv(root / "big.csv", index=False)
    ref = root / "reference.csv"
    assert _one_process(_predict_args(tiny_model, root / "big.csv", ref)) == 0
    return {"root": root, "input": root / "big.csv", "table": table, "reference": ref}


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict]:
    """A local cluster of two single-threaded worker processes, as a scheduler address."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # any free port: two runs never collide
            silence_logs=logging.ERROR,
        ) as lc,
        distributed.Client(lc) as client,
    ):
        yield {"address": lc.scheduler_address, "client": client}


def _in_thread(argv: list[str]) -> tuple[threading.Thread, dict]:
    """``molddl predict`` in a thread of this process; its exit status lands in the dict."""
    result: dict = {}

    def run() -> None:
        result["rc"] = main(argv)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def _wait_for(what: Callable[[], object], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _parts(output: Path) -> list[Path]:
    return sorted(output.with_name(output.name + ".parts").glob("part-*.csv"))


@pytest.mark.case(
    risk="silent-wrong",
    tried="predict --dask (a local cluster of --workers 2 processes) against one process",
)
def test_a_local_cluster_writes_the_one_process_output_byte_for_byte(
    cli, big, tiny_model, tmp_path
):
    out = tmp_path / "preds.csv"
    assert cli(*_predict_args(tiny_model, big["input"], out, "--dask", "--workers", "2")).rc == 0
    assert out.read_bytes() == big["reference"].read_bytes()
    got = pd.read_csv(out, keep_default_na=False, na_values=[""])
    assert len(got) == len(big["table"])
    assert got.loc[4, "error"].startswith("invalid SMILES")  # the row is kept, with its reason
    assert got["error"].isna().sum() == len(got) - 1
    assert not out.with_name("preds.csv.parts").exists()


@pytest.mark.case(
    risk="silent-wrong",
    tried="predict --dask ADDRESS on a folder of three CSV shards, to Parquet",
)
def test_shards_to_parquet_on_a_cluster_equal_one_process(cli, big, tiny_model, tmp_path, cluster):
    shards = tmp_path / "shards"
    shards.mkdir()
    table = big["table"]
    # numbered so that name order is not text order: shard-2 comes before shard-10
    for n, (lo, hi) in zip((1, 2, 10), ((0, 700), (700, 1500), (1500, len(table))), strict=True):
        table.iloc[lo:hi].to_csv(shards / f"shard-{n}.csv", index=False)
    ref, out = tmp_path / "one.parquet", tmp_path / "dask.parquet"
    assert _one_process(_predict_args(tiny_model, shards, ref)) == 0
    assert cli(*_predict_args(tiny_model, shards, out, "--dask", cluster["address"])).rc == 0
    mine, theirs = pq.read_table(out), pq.read_table(ref)
    assert mine.equals(theirs)
    assert mine.num_rows == len(table)
    frame = mine.to_pandas()
    assert frame["smiles"].tolist() == table["smiles"].tolist()  # input order, each row once
    assert frame.loc[4, "error"].startswith("invalid SMILES")
    # the same rows as the unsharded file's predictions
    whole = pd.read_csv(big["reference"], keep_default_na=False, na_values=[""])
    assert frame["SR-ARE"].astype(float).tolist() == pytest.approx(whole["SR-ARE"].tolist())


@pytest.mark.case(
    risk="data-loss",
    tried="SIGKILL one of the cluster's two worker processes (by its pid) mid-run",
)
def test_a_worker_killed_mid_run_loses_and_duplicates_no_row(big, tiny_model, tmp_path, cluster):
    client = cluster["client"]
    pids = client.run(os.getpid)
    out = tmp_path / "preds.csv"
    thread, result = _in_thread(_predict_args(tiny_model, big["input"], out, "--dask",
                                              cluster["address"]))  # fmt: skip
    _wait_for(lambda: len(_parts(out)) >= 2 or not thread.is_alive())
    assert thread.is_alive() and len(_parts(out)) < len(big["table"]) // int(CHUNK)
    victim = sorted(pids.values())[0]
    os.kill(victim, signal.SIGKILL)
    thread.join(timeout=300)
    assert not thread.is_alive() and result["rc"] == 0
    assert wait_gone([victim], timeout=5) == []
    assert out.read_bytes() == big["reference"].read_bytes()
    # the nanny restarted the worker: the cluster has two again
    _wait_for(lambda: len(client.nthreads()) == 2, timeout=60)


@pytest.mark.case(
    risk="traceback",
    tried="predict --dask ADDRESS when the model file is gone from the workers' file system",
)
def test_a_model_file_missing_on_the_workers_is_one_clear_error(
    big, tiny_model, tmp_path, cluster, capsys
):
    client = cluster["client"]
    model = tmp_path / "model.pt"
    shutil.copy(tiny_model, model)
    # hold both workers until the driver has read the model file, then remove it
    gate = distributed.Event("molddl-test-gate", client=client)
    holds = [client.submit(gate.wait, pure=False, key=f"hold-{i}") for i in range(2)]
    _wait_for(lambda: sum(len(v) for v in client.processing().values()) == 2)
    out = tmp_path / "preds.csv"
    thread, result = _in_thread(_predict_args(model, big["input"], out, "--dask",
                                              cluster["address"]))  # fmt: skip
    manifest = out.with_name("preds.csv.parts") / "manifest.json"
    _wait_for(lambda: manifest.exists())
    model.unlink()
    gate.set()
    thread.join(timeout=120)
    assert not thread.is_alive(), "the run hangs"
    client.gather(holds)
    assert result["rc"] == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("molddl:")]
    assert len(errors) == 1, errors
    assert str(model) in errors[0] and "Dask worker" in errors[0] and "tcp://" in errors[0]
    assert not out.exists()


@pytest.mark.case(
    risk="leak",
    tried="SIGKILL to predict --dask (local cluster) mid-run, then the same command again",
)
def test_a_killed_driver_leaves_no_worker_and_the_rerun_resumes(
    cli, big, tiny_model, tmp_path, caplog
):
    out = tmp_path / "preds.csv"
    argv = _predict_args(tiny_model, big["input"], out, "--dask", "--workers", "2")
    proc = start(*argv)
    deadline = time.monotonic() + 180
    while len(_parts(out)) < 2:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    workers = children(proc.pid)
    assert workers, "the local cluster has its worker processes"
    proc.kill()
    proc.wait(timeout=30)
    assert wait_gone(workers, timeout=20) == [], "workers outlived the killed driver"
    kept = _parts(out)
    assert kept and not out.exists()
    caplog.set_level("INFO")
    assert cli(*argv).rc == 0
    assert f"resuming: {len(kept)} finished part(s)" in caplog.text
    assert out.read_bytes() == big["reference"].read_bytes()


@pytest.mark.case(
    risk="traceback",
    tried="predict --dask ADDRESS on a table with a label cell 'maybe' in row 1,999",
)
def test_a_bad_label_in_a_partition_is_the_one_process_error(
    cli, big, tiny_model, tmp_path, cluster
):
    table = big["table"].copy()
    table.loc[1998, "SR-ARE"] = "maybe"
    table.to_csv(tmp_path / "bad.csv", index=False)
    args = _predict_args(tiny_model, tmp_path / "bad.csv", tmp_path / "preds.csv")
    one = cli(*args, "--workers", "1")
    one.assert_error("'SR-ARE', row 1999", "'maybe'")
    cli(*args, "--dask", cluster["address"]).assert_error(one.message.removeprefix("molddl: "))
    assert not (tmp_path / "preds.csv").exists()
