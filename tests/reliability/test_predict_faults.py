"""Fault-injection cases of ``molddl predict`` (issue 18): an output that is one of the user's
files, two runs on one output, a killed or terminated run and its workers, input that is not
UTF-8 text or is Parquet, and output folders that cannot take the result."""

from __future__ import annotations

import contextlib
import ctypes
import gzip
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from molddl.cli.main import main

from .conftest import children, snapshot, start, wait_gone

#: rows of the input that a run must take long enough on to be overlapped or killed
BIG_COPIES = 40  # x 60 rows of screen.csv
CHUNK = "200"


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def _same(path: Path, reference: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(_read(path), reference, rtol=1e-5)


@pytest.fixture(scope="module")
def big(
    tox_tables: dict[str, Path], tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict:
    """``screen.csv`` repeated to 2,400 rows and its predictions by one process (in this one)."""
    root = tmp_path_factory.mktemp("big")
    table = pd.read_csv(tox_tables["screen"], dtype=str, keep_default_na=False)
    pd.concat([table] * BIG_COPIES, ignore_index=True).to_csv(root / "big.csv", index=False)
    ref = root / "reference.csv"
    argv = ["predict", "--model", str(tiny_model), "--input", str(root / "big.csv")]
    assert main([*argv, "--output", str(ref), "--workers", "1", "--chunk-size", CHUNK]) == 0
    return {"input": root / "big.csv", "reference": _read(ref)}


def _wait_for(what: Callable[[], object], proc: subprocess.Popen, timeout: float = 120) -> None:
    """Poll until ``what()`` is true while ``proc`` runs; fail if it ends or times out."""
    deadline = time.monotonic() + timeout
    while not what():
        if proc.poll() is not None:
            pytest.fail(f"molddl ended (status {proc.returncode}) first: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out")
        time.sleep(0.1)


def _parts(output: Path) -> list[Path]:
    return sorted(output.with_name(output.name + ".parts").glob("part-*.csv"))


def _predict_args(model: Path, input_path: Path, output: Path, *extra: str) -> list[str]:
    return ["predict", "--model", str(model), "--input", str(input_path), "--output",
            str(output), *extra]  # fmt: skip


# --- an output that is one of the user's files ------------------------------------------------


@pytest.mark.case(risk="data-loss", tried="predict with --output the very file given as --input")
def test_output_equal_to_the_input_is_refused(cli, tox_tables, tiny_model, tmp_path):
    screen = tmp_path / "screen.csv"
    shutil.copy(tox_tables["screen"], screen)
    before = snapshot(tmp_path)
    cli(*_predict_args(tiny_model, screen, screen)).assert_error(str(screen), "--input")
    assert snapshot(tmp_path) == before


@pytest.mark.case(
    risk="data-loss",
    tried="predict with --output a symbolic link to, or a hard link of, the input",
)
def test_output_that_is_a_link_to_the_input_is_refused(cli, tox_tables, tiny_model, tmp_path):
    screen = tmp_path / "screen.csv"
    shutil.copy(tox_tables["screen"], screen)
    (tmp_path / "soft.csv").symlink_to(screen)
    os.link(screen, tmp_path / "hard.csv")
    before = snapshot(screen)
    for link in ("soft.csv", "hard.csv"):
        cli(*_predict_args(tiny_model, screen, tmp_path / link)).assert_error(link, str(screen))
    cli(*_predict_args(tiny_model, tmp_path / "soft.csv", screen)).assert_error("soft.csv")
    assert snapshot(screen) == before


@pytest.mark.case(risk="data-loss", tried="predict with --output the model file itself")
def test_output_equal_to_the_model_is_refused(cli, tox_tables, tiny_model, tmp_path):
    model = tmp_path / "model.pt"
    shutil.copy(tiny_model, model)
    before = snapshot(model, tox_tables["screen"])
    cli(*_predict_args(model, tox_tables["screen"], model)).assert_error(str(model), "--model")
    assert snapshot(model, tox_tables["screen"]) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


# --- output folders ----------------------------------------------------------------------------


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in ("effective", "permitted", "inheritable")]


@contextlib.contextmanager
def _unprivileged() -> Iterator[None]:
    """As root, this thread without the capabilities that ignore file modes
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), as an ordinary user runs molddl."""
    if os.geteuid() != 0:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()  # version 3; pid 0: this thread
    if libc.capget(ctypes.byref(header), data) != 0:
        pytest.skip("cannot read this thread's capabilities")
    saved = data[0].effective
    data[0].effective &= ~((1 << 1) | (1 << 2))
    if libc.capset(ctypes.byref(header), data) != 0:
        pytest.skip("cannot drop this thread's capabilities")
    try:
        yield
    finally:
        data[0].effective = saved
        assert libc.capset(ctypes.byref(header), data) == 0


@pytest.mark.case(
    risk="traceback", tried="predict into a read-only folder (as a user who cannot write there)"
)
def test_a_read_only_output_folder_is_named_before_predicting(
    cli, tox_tables, tiny_model, tmp_path
):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with _unprivileged():
            result = cli(*_predict_args(tiny_model, tox_tables["screen"], folder / "out.csv"))
    finally:
        folder.chmod(0o755)
    result.assert_error(str(folder), "cannot write")
    assert list(folder.iterdir()) == []


@pytest.mark.case(risk="traceback", tried="predict with --output in a folder that does not exist")
def test_an_output_in_a_missing_folder_is_written_there(cli, tox_tables, tiny_model, tmp_path):
    out = tmp_path / "new" / "deeper" / "preds.csv"
    assert cli(*_predict_args(tiny_model, tox_tables["screen"], out)).rc == 0
    assert len(_read(out)) == 60
    assert sorted(p.name for p in out.parent.iterdir()) == ["preds.csv", "preds.csv.config.yaml"]


@pytest.mark.case(risk="traceback", tried="predict with --output an existing folder")
def test_an_output_that_is_a_folder_is_refused(cli, tox_tables, tiny_model, tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "mine.txt").write_text("keep")
    before = snapshot(tmp_path)
    cli(*_predict_args(tiny_model, tox_tables["screen"], folder)).assert_error(
        str(folder), "folder"
    )
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


# --- input that is not UTF-8 CSV ----------------------------------------------------------------


@pytest.mark.case(
    risk="traceback", tried="predict on a CSV with a byte 0xff (Latin-1 text) in row 37"
)
def test_non_utf8_input_names_the_file_and_the_line(cli, tox_tables, tiny_model, tmp_path):
    lines = tox_tables["screen"].read_bytes().splitlines(keepends=True)
    lines[37] = lines[37].replace(b",", b"\xff,", 1)  # line 38 of the file: data row 37
    bad = tmp_path / "latin.csv"
    bad.write_bytes(b"".join(lines))
    out = tmp_path / "out.csv"
    result = cli(*_predict_args(tiny_model, bad, out, "--chunk-size", "10"))
    result.assert_error(str(bad), "line 38", "UTF-8")
    assert not out.exists()
    gz = tmp_path / "latin.csv.gz"
    gz.write_bytes(gzip.compress(bad.read_bytes()))
    cli(*_predict_args(tiny_model, gz, out, "--chunk-size", "10")).assert_error(str(gz), "line 38")
    # in the header, before any chunk
    bad.write_bytes(b"smi\xe9les,SR-ARE\nCCO,1\n")
    cli(*_predict_args(tiny_model, bad, out)).assert_error(str(bad), "line 1", "UTF-8")


@pytest.mark.case(
    risk="silent-wrong",
    tried="predict on a Parquet file (ints, floats, nulls, strings) in chunks",
)
def test_parquet_input_is_predicted_like_the_same_csv(cli, tox_tables, tiny_model, tmp_path):
    table = pd.read_csv(tox_tables["screen"])  # labels: float with NaN
    table.insert(0, "num", pd.array(range(60), dtype="Int64"))
    table.loc[3, "num"] = pd.NA
    table["note"] = ["", "x", None] * 20
    csv, parquet = tmp_path / "screen.csv", tmp_path / "screen.parquet"
    table.to_csv(csv, index=False)
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), parquet, row_group_size=25)
    assert cli(*_predict_args(tiny_model, csv, tmp_path / "from_csv.csv")).rc == 0
    out = tmp_path / "from_parquet.csv"
    assert cli(*_predict_args(tiny_model, parquet, out, "--chunk-size", "20")).rc == 0
    _same(out, _read(tmp_path / "from_csv.csv"))
    # a Parquet file under another name is still read as Parquet
    shutil.copy(parquet, tmp_path / "screen.dat")
    assert cli(*_predict_args(tiny_model, tmp_path / "screen.dat", out)).rc == 0
    _same(out, _read(tmp_path / "from_csv.csv"))


@pytest.mark.case(
    risk="silent-wrong", tried="Ctrl-C during a chunked Parquet run, then the same command again"
)
def test_an_interrupted_parquet_run_resumes(cli, tox_tables, tiny_model, tmp_path, monkeypatch):
    from molddl.inference import screen as screen_mod

    parquet = tmp_path / "screen.parquet"
    pq.write_table(pa.Table.from_pandas(pd.read_csv(tox_tables["screen"])), parquet)
    argv = _predict_args(tiny_model, parquet, tmp_path / "preds.csv", "--chunk-size", "25")
    assert cli(*_predict_args(tiny_model, tox_tables["screen"], tmp_path / "ref.csv")).rc == 0

    def interrupted(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(screen_mod, "_concatenate", interrupted)
    assert cli(*argv).rc == 130
    parts = tmp_path / "preds.csv.parts"
    kept = {p.name: p.stat().st_mtime_ns for p in parts.glob("part-*.csv")}
    assert sorted(kept) == ["part-000000.csv", "part-000001.csv", "part-000002.csv"]
    (parts / "part-000001.csv").unlink()
    del kept["part-000001.csv"]
    assert cli(*argv).rc == 130
    assert {n: (parts / n).stat().st_mtime_ns for n in kept} == kept  # reused, not redone
    monkeypatch.undo()
    assert cli(*argv).rc == 0
    _same(tmp_path / "preds.csv", _read(tmp_path / "ref.csv"))


@pytest.mark.case(risk="traceback", tried="predict on a damaged Parquet file (truncated)")
def test_a_damaged_parquet_file_is_named(cli, tox_tables, tiny_model, tmp_path):
    parquet = tmp_path / "screen.parquet"
    pq.write_table(pa.Table.from_pandas(pd.read_csv(tox_tables["screen"])), parquet)
    data = parquet.read_bytes()
    parquet.write_bytes(data[: len(data) // 2])
    cli(*_predict_args(tiny_model, parquet, tmp_path / "out.csv")).assert_error(
        str(parquet), "Parquet"
    )
    assert not (tmp_path / "out.csv").exists()


# --- two runs, killed runs ----------------------------------------------------------------------


@pytest.mark.case(
    risk="concurrency",
    tried="a second predict to the same output while the first one runs",
)
def test_a_second_run_on_the_same_output_is_refused_and_the_first_completes(
    cli, big, tox_tables, tiny_model, tmp_path
):
    out = tmp_path / "preds.csv"
    argv = _predict_args(tiny_model, big["input"], out, "--chunk-size", CHUNK)
    first = start(*argv, "--workers", "1")
    try:
        _wait_for(lambda: _parts(out), first)
        began = time.monotonic()
        second = cli(*argv, "--workers", "1")
        assert time.monotonic() - began < 10  # at once, not after a run of its own
        second.assert_error("another molddl predict is writing", str(out))
        assert first.poll() is None, "the second run was refused only after the first ended"
        _, err = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0, err[-2000:]
    _same(out, big["reference"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds.csv", "preds.csv.config.yaml"]
    later = _predict_args(tiny_model, tox_tables["screen"], out)
    assert cli(*later).rc == 0  # the lock went with the first run
    assert len(_read(out)) == 60


@pytest.mark.case(
    risk="data-loss", tried="predict to OUTPUT when the user has a file of their own at OUTPUT.lock"
)
def test_a_users_file_named_like_the_lock_is_kept(cli, tox_tables, tiny_model, tmp_path):
    mine = tmp_path / "preds.csv.lock"
    mine.write_text("my notes\n")
    out = tmp_path / "preds.csv"
    cli(*_predict_args(tiny_model, tox_tables["screen"], out)).assert_error(str(mine))
    assert mine.read_text() == "my notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds.csv.lock"]


def _start_and_wait_for_workers(
    model: Path, input_path: Path, out: Path, parts: bool = True
) -> tuple:
    """``predict --workers 2`` in the background, once its workers run (and a part is done)."""
    proc = start(*_predict_args(model, input_path, out, "--workers", "2", "--chunk-size", CHUNK))
    _wait_for(lambda: len(children(proc.pid)) >= 2 and (_parts(out) or not parts), proc)
    return proc, children(proc.pid)


def _ended(proc: subprocess.Popen, workers: list[int]) -> tuple[list[int], str]:
    """Wait for ``proc`` to end: its workers still running 10 s later (killed then, so that
    none outlives the case) and its stderr."""
    try:
        proc.wait(timeout=60)
    finally:
        left = wait_gone(workers, timeout=10)
        proc.kill()
    assert proc.stderr is not None
    return left, proc.stderr.read()


@pytest.mark.case(
    risk="leak",
    tried="SIGKILL to predict --workers 2 mid-run, then the same command again",
)
def test_sigkill_takes_the_workers_down_and_the_rerun_resumes(
    cli, big, tiny_model, tmp_path, caplog
):
    out = tmp_path / "preds.csv"
    proc, workers = _start_and_wait_for_workers(tiny_model, big["input"], out)
    proc.kill()
    left, _ = _ended(proc, workers)
    assert left == [], "workers outlived their killed parent"
    kept = _parts(out)
    assert kept and not out.exists()
    # the lock of the killed run does not block; its finished parts are reused
    argv = _predict_args(tiny_model, big["input"], out, "--workers", "2", "--chunk-size", CHUNK)
    caplog.set_level("INFO")
    assert cli(*argv).rc == 0
    assert f"resuming: {len(kept)} finished part(s)" in caplog.text
    _same(out, big["reference"])


@pytest.mark.case(
    risk="leak",
    tried="SIGTERM to predict --workers 2 mid-run, then the same command again",
)
def test_sigterm_keeps_the_parts_stops_the_workers_and_the_rerun_resumes(
    cli, big, tiny_model, tmp_path, caplog
):
    out = tmp_path / "preds.csv"
    proc, workers = _start_and_wait_for_workers(tiny_model, big["input"], out)
    proc.terminate()
    left, err = _ended(proc, workers)
    assert left == [], "workers outlived their terminated parent"
    assert proc.returncode == 143, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    said = [ln for ln in err.splitlines() if ln.strip() and "%" not in ln]  # no progress bar
    assert len(said) == 1 and "SIGTERM" in said[0] and "resume" in said[0], err[-2000:]
    kept = _parts(out)
    assert kept and not out.exists()
    argv = _predict_args(tiny_model, big["input"], out, "--workers", "2", "--chunk-size", CHUNK)
    caplog.set_level("INFO")
    assert cli(*argv).rc == 0
    assert f"resuming: {len(kept)} finished part(s)" in caplog.text
    _same(out, big["reference"])


@pytest.mark.case(risk="traceback", tried="Ctrl-C (SIGINT) to predict --workers 2 mid-run")
def test_ctrl_c_is_one_line_and_exit_status_130(big, tiny_model, tmp_path):
    out = tmp_path / "preds.csv"
    proc, workers = _start_and_wait_for_workers(tiny_model, big["input"], out, parts=False)
    os.killpg(proc.pid, signal.SIGINT)  # the terminal signals the whole foreground group
    left, err = _ended(proc, workers)
    assert left == []
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    said = [ln for ln in err.splitlines() if ln.strip()]
    assert len(said) == 1 and "interrupted" in said[0], err[-2000:]
    assert not out.exists()


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.case(
            risk="silent-wrong", tried=f"predict --output {n} (a format predict does not write)"))
        for n in ("out.xlsx", "out.csv.gz")
    ],
)  # fmt: skip
def test_an_output_name_of_another_format_is_refused(cli, tiny_model, tox_tables, tmp_path, name):
    out = tmp_path / name
    result = cli("predict", "--model", tiny_model, "--input", tox_tables["screen"],
                 "--output", out, "--workers", "1")  # fmt: skip
    result.assert_error(str(out), "plain CSV text or Parquet")
    assert not out.exists()


@pytest.mark.case(risk="silent-wrong", tried="predict on a CSV whose header names a column twice")
def test_a_repeated_column_name_is_refused(cli, tiny_model, tox_tables, tmp_path):
    text = tox_tables["screen"].read_text().splitlines()
    text[0] = text[0].replace("SR-MMP", "SR-ARE")
    path = tmp_path / "twice.csv"
    path.write_text("\n".join(text) + "\n")
    out = tmp_path / "out.csv"
    result = cli("predict", "--model", tiny_model, "--input", path, "--output", out,
                 "--workers", "1")  # fmt: skip
    result.assert_error(str(path), "'SR-ARE' appears twice")
    assert not out.exists()
