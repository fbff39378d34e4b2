""".ci/run and the PostgreSQL test: under CI=true a PostgreSQL that does not start fails the
run, not a silent skip; elsewhere the test may skip."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def ci_tree(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of ``.ci/run`` whose ``postgres.sh`` fails and whose ``make`` only leaves a
    mark, with the environment to run it in (no CI variables of the outer run)."""
    (tmp_path / ".ci").mkdir()
    shutil.copy(REPO / ".ci" / "run", tmp_path / ".ci" / "run")
    log = tmp_path / "postgres.log"
    (tmp_path / ".ci" / "postgres.sh").write_text(
        f"echo 'initdb: could not create directory' > {log}\nexit 1\n"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    make = bin_dir / "make"
    make.write_text(f"#!/bin/sh\ntouch {tmp_path / 'make-ran'}\n")
    make.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "MOLDDL_TEST_POSTGRES_URL")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["MOLDDL_CI_POSTGRES_LOG"] = str(log)
    return tmp_path, env


def _run(tree: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(tree / ".ci" / "run")], capture_output=True, text=True, env=env, timeout=60
    )


def test_ci_run_fails_when_postgresql_does_not_start_under_ci(ci_tree):
    tree, env = ci_tree
    proc = _run(tree, {**env, "CI": "true"})
    assert proc.returncode != 0
    assert "PostgreSQL did not start" in proc.stderr
    assert "initdb: could not create directory" in proc.stderr  # the reason, from its log
    assert not (tree / "make-ran").exists()  # no test run that would only skip


def test_ci_run_outside_ci_goes_on_and_the_test_skips(ci_tree):
    tree, env = ci_tree
    proc = _run(tree, env)
    assert proc.returncode == 0, proc.stderr
    assert "not available (test will skip)" in proc.stdout
    assert (tree / "make-ran").exists()


@pytest.mark.slow
def test_the_postgresql_test_fails_rather_than_skips_under_ci(data_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MOLDDL_TEST_POSTGRES_URL"}
    env.update(CI="true", MOLDDL_DATA_DIR=str(data_dir), MOLDDL_CACHE_DIR=str(tmp_path / "cache"))
    test = "tests/unit/test_tuning.py::test_two_workers_share_one_postgresql_study"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout
    assert "1 failed" in proc.stdout and "no PostgreSQL server" in proc.stdout
