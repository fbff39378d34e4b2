"""Atomic file output (a reader never sees a half-written file, and a failure leaves none) and
molddl's cache folders."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    The file gets the mode ``open()`` would give it: that of the file it replaces, else
    ``0o666`` less the user's umask (not ``mkstemp``'s private ``0o600``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _new_file_beside(path)
    try:
        yield tmp_path
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp_path, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(tmp_path, path)
    except OSError as err:
        if err.filename is not None or err.errno is None:
            raise
        # a failed write (a full disk) names no file; the user's is ``path``
        raise OSError(err.errno, err.strerror, str(path)) from None
    finally:
        tmp_path.unlink(missing_ok=True)


def _new_file_beside(path: Path) -> Path:
    """A new empty file ``.<name>.<random>.tmp`` beside ``path``, created as ``open()``
    creates files (mode ``0o666`` less the umask, which the system applies)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path))


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
