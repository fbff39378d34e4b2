"""Atomic writes create files as ``open()`` would: mode 0o666 less the umask, or the mode of the
file they replace; never a private 0o600 the user did not ask for."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

import pytest

from molddl.io import atomic_path, atomic_write, atomic_write_text


@pytest.fixture
def umask() -> Iterator[None]:
    """Restore the process umask after a test that sets its own."""
    before = os.umask(0o022)
    yield
    os.umask(before)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_gets_the_mode_of_the_umask(tmp_path, umask, mask, expected):
    os.umask(mask)
    atomic_write_text(tmp_path / "config.yaml", "seed: 0\n")
    atomic_write(tmp_path / "model.pt", lambda fh: fh.write(b"\0"), mode="wb")
    with atomic_path(tmp_path / "figure.png") as tmp:
        tmp.write_bytes(b"png")
    for name in ("config.yaml", "model.pt", "figure.png"):
        assert _mode(tmp_path / name) == expected, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "figure.png", "model.pt"]


def test_a_replaced_file_keeps_its_mode(tmp_path, umask):
    os.umask(0o022)
    path = tmp_path / "predictions.csv"
    path.write_text("old\n")
    path.chmod(0o640)
    atomic_write_text(path, "new\n")
    assert (path.read_text(), _mode(path)) == ("new\n", 0o640)
    path.chmod(0o444)  # read-only for everyone: the new content is written all the same
    atomic_write_text(path, "newer\n")
    assert (path.read_text(), _mode(path)) == ("newer\n", 0o444)


def test_a_failed_write_leaves_no_file(tmp_path, umask):
    def fail(fh):
        fh.write("half")
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "out.csv", fail)
    assert list(tmp_path.iterdir()) == []
