"""Atomic file output (a reader never sees a half-written file, and a failure leaves none) and
molddl's cache folders."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as err:
        if err.filename is not None or err.errno is None:
            raise
        # a failed write (a full disk) names no file; the user's is ``path``
        raise OSError(err.errno, err.strerror, str(path)) from None
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write(path: str | Path, write: Callable[[IO], object], mode: str = "w") -> Path:
    """Call ``write(fh)`` on a temporary file and move it onto ``path`` when it succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode) as fh:
        write(fh)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda fh: fh.write(text))


def check_writable(folder: str | Path) -> Path:
    """Create ``folder`` if needed and prove that files can be written there, or raise a
    ``ValueError`` naming it (a read-only or full folder found before the work, not after)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"output folder {folder} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".molddl-write-test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ValueError(f"cannot write to output folder {folder}: {err.strerror or err}") from None
    return folder


def user_cache(name: str) -> Path:
    """``$MOLDDL_CACHE_DIR/<name>``, else ``<the user's cache>/molddl/<name>`` (platformdirs).
    The folder may not exist yet."""
    env = os.environ.get("MOLDDL_CACHE_DIR")
    if env:
        return Path(env).expanduser() / name
    import platformdirs

    return Path(platformdirs.user_cache_dir("molddl")) / name
