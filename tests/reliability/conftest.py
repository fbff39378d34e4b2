"""The fault-injection suite's tools: every test here is a *case* (``@pytest.mark.case``), run
through molddl's real entry point, and asserts what the user sees: the exit status, an error
naming the file / row / column / key, and that every file the user had is intact.

``MOLDDL_RELIABILITY_REPORT=report.json pytest tests/reliability`` also writes each case's
risk, what was tried, the observed outcome (exit status and first error line) and whether it
held; ``docs/render_reliability.py`` turns that into ``docs/RELIABILITY.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from molddl.cli.main import main

REPO = Path(__file__).resolve().parents[2]

#: the tiny network every case trains (seconds, not minutes)
TINY = [
    "--set", "model.hidden=8", "--set", "model.tower_hidden=8", "--set", "model.layers=1",
    "--set", "model.label_dim=4", "--set", "train.max_epochs=1", "--set", "device=cpu",
]  # fmt: skip
LABELS = ["SR-ARE", "SR-MMP"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "case(risk, tried): a fault-injection case and the risk it guards against: data-loss, "
        "foreign-code, silent-wrong, traceback, leak or concurrency (docs/render_reliability.py)",
    )
    config.stash[_CASES] = []


_CASES = pytest.StashKey[list]()


@dataclass
class Result:
    """What the user saw: the exit status and the two output streams."""

    rc: int
    out: str
    err: str

    @property
    def message(self) -> str:
        """The line(s) molddl printed for the user (``molddl: error: ...``); for a failed run
        without one, the last line of stderr (a traceback's)."""
        lines = [ln for ln in self.err.splitlines() if ln.startswith("molddl:")]
        if lines or self.rc == 0:
            return " / ".join(lines)
        tail = [ln for ln in self.err.splitlines() if ln.strip()]
        return tail[-1] if tail else ""

    def assert_error(self, *needles: str, rc: int = 2) -> None:
        """Exit status ``rc``, exactly one error line, no traceback, naming every needle."""
        assert self.rc == rc, (self.rc, self.err[-2000:])
        assert "Traceback" not in self.err, self.err[-2000:]
        errors = [ln for ln in self.err.splitlines() if ln.startswith("molddl: error:")]
        assert len(errors) == 1, self.err[-2000:]
        for needle in needles:
            assert needle in errors[0], (needle, errors[0])


def _record(request: pytest.FixtureRequest, result: Result) -> None:
    request.node.stash[_LAST] = result


_LAST = pytest.StashKey[Result]()


@pytest.fixture
def cli(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture) -> Callable[..., Result]:
    """``cli("predict", "--model", ...)``: molddl's ``main`` in this process. An exception that
    escapes it is what the user would see as a traceback: recorded as exit status 1 with the
    traceback on stderr, not raised, so that the case can assert on it."""

    def run(*argv: str | Path, cwd: Path | None = None) -> Result:
        capsys.readouterr()
        old = Path.cwd()
        if cwd is not None:
            os.chdir(cwd)
        try:
            rc = main([str(a) for a in argv])
            tb = ""
        except SystemExit as err:  # argparse
            rc = err.code if isinstance(err.code, int) else 1
            tb = ""
        except Exception:
            rc, tb = 1, traceback.format_exc()
        finally:
            os.chdir(old)
        captured = capsys.readouterr()
        result = Result(rc, captured.out, captured.err + tb)
        _record(request, result)
        return result

    return run


def molddl_env(cache: Path | None = None) -> dict[str, str]:
    """The environment of a ``molddl`` subprocess: this checkout first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if cache is not None:
        env["MOLDDL_CACHE_DIR"] = str(cache)
    return env


@pytest.fixture
def cli_proc(request: pytest.FixtureRequest) -> Callable[..., Result]:
    """``cli_proc("train", ..., timeout=120)``: molddl as a separate process."""

    def run(*argv: str | Path, cwd: Path | None = None, timeout: float = 300, **kw) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "molddl.cli.main", *map(str, argv)],
            capture_output=True,
            text=True,
            cwd=cwd,
            env=kw.pop("env", None) or molddl_env(),
            timeout=timeout,
            **kw,
        )
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        _record(request, result)
        return result

    return run


def start(*argv: str | Path, cwd: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    """``molddl ARGV`` started in the background, in its own session (its children too), with
    stdout and stderr to files beside ``cwd``."""
    return subprocess.Popen(
        [sys.executable, "-m", "molddl.cli.main", *map(str, argv)],
        cwd=cwd,
        env=env or molddl_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def children(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent and fields[0] != "Z":
                child = int(stat.parent.name)
                found.append(child)
                todo.append(child)
    return found


def alive(pids: Iterable[int]) -> list[int]:
    """The ones of ``pids`` still running (zombies count as gone)."""
    out = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.append(pid)
    return out


def wait_gone(pids: Sequence[int], timeout: float = 20.0) -> list[int]:
    """Wait until none of ``pids`` runs; the ones still running after ``timeout``."""
    deadline = time.monotonic() + timeout
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = alive(pids)
    for pid in left:  # do not leave them to the next test
        os.kill(pid, signal.SIGKILL)
    return left


def snapshot(*paths: Path) -> dict[Path, str]:
    """The content hash of every file under ``paths``; compare with a later snapshot."""
    out = {}
    for p in paths:
        files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())
        for f in files:
            out[f] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="session")
def tox_tables(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real Tox21 rows as a user's files: ``train.csv`` (300 rows, SMILES and the two labels)
    and ``screen.csv`` (60 other rows, some labels known)."""
    root = tmp_path_factory.mktemp("tox")
    tox21 = pd.read_csv(data_dir / "tox21.csv.gz")[["smiles", *LABELS]]
    tox21.iloc[:300].to_csv(root / "train.csv", index=False)
    tox21.iloc[300:360].to_csv(root / "screen.csv", index=False)
    return {"root": root, "train": root / "train.csv", "screen": root / "screen.csv"}


@pytest.fixture(scope="session")
def tiny_model(tox_tables: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DLL model trained by ``molddl train`` (a subprocess) on ``train.csv``; treat it as
    read-only (copy it to change it)."""
    run = tmp_path_factory.mktemp("tiny") / "run"
    proc = subprocess.run(
        [
            sys.executable, "-m", "molddl.cli.main", "train",
            "--set", f"data.dataset={tox_tables['train']}",
            "--set", "data.labels=[SR-ARE, SR-MMP]", *TINY, "--output", str(run),
        ],
        capture_output=True, text=True, env=molddl_env(), timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run / "model.pt"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = (yield).get_result()
    marker = item.get_closest_marker("case")
    if marker is None or report.when not in ("setup", "call"):
        return
    if report.when == "setup" and report.passed:
        return  # the call phase reports it
    last = item.stash.get(_LAST, None)
    item.config.stash[_CASES].append(
        {
            "id": item.nodeid,
            "risk": marker.kwargs.get("risk", marker.args[0] if marker.args else ""),
            "tried": marker.kwargs.get("tried", marker.args[1] if len(marker.args) > 1 else ""),
            "rc": None if last is None else last.rc,
            "message": "" if last is None else last.message,
            "held": report.passed,
            "skipped": report.skipped,
        }
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("MOLDDL_RELIABILITY_REPORT")
    if path:
        Path(path).write_text(json.dumps(session.config.stash[_CASES], indent=1))


@pytest.fixture
def unwritable_dir(tmp_path: Path) -> Path:
    """A folder path under which nothing can be created: a folder of mode 0555 for a normal
    user; for root, whom modes do not stop, a path under ``/sys``."""
    if os.geteuid() != 0:
        ro = tmp_path / "read-only"
        ro.mkdir()
        ro.chmod(0o555)
        yield ro / "out"
        ro.chmod(0o755)
        return
    if not Path("/sys").is_dir() or os.access("/sys", os.W_OK) and _can_create(Path("/sys")):
        pytest.skip("no folder here refuses root's writes")
    yield Path("/sys") / "molddl-test-out"


def _can_create(folder: Path) -> bool:
    try:
        (folder / ".molddl-probe").mkdir()
    except OSError:
        return False
    (folder / ".molddl-probe").rmdir()
    return True


def limit_file_size(max_bytes: int) -> Callable[[], None]:
    """A ``preexec_fn`` under which the process cannot write a file beyond ``max_bytes``
    (``write`` fails with EFBIG, as on a full disk, instead of the process being killed)."""

    def apply() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return apply
