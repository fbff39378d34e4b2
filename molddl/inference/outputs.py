"""What a screening run may write, and how it stops: the output is never one of the user's
input files, one run at a time writes it (an OS lock the kernel releases however the process
ends), and Ctrl-C or SIGTERM stops it as :class:`Interrupted`, finished parts kept."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

#: the first line of a lock file, so that a file of the user's of that name is never taken
LOCK_MARK = "molddl predict lock"


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or a signal (``signum``) stopped a screening run; ``note`` says what was kept."""

    def __init__(self, signum: int = signal.SIGINT, note: str = "") -> None:
        super().__init__(signum, note)
        self.signum = int(signum)
        self.note = note


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one file: the same path once links are resolved, or two
    names of one file (a hard link)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def output_paths(output: str | Path) -> dict[str, Path]:
    """The files a run writes for ``output``: the output, its parts folder, its lock and its
    config (``<output>.config.yaml``, by ``molddl predict``)."""
    output = Path(output)
    return {
        "output": output,
        "parts": output.with_name(output.name + ".parts"),
        "lock": output.with_name(output.name + ".lock"),
        "config": output.with_name(output.name + ".config.yaml"),
    }


#: output formats by file name ending; any other name is written as CSV
OUTPUT_FORMATS = {".parquet": "parquet", ".pq": "parquet"}
#: endings of formats ``molddl predict`` does not write
_REFUSED = (".gz", ".xlsx", ".xls", ".sdf", ".json")


def output_format(output: str | Path) -> str:
    """``"parquet"`` for an output named ``.parquet`` / ``.pq``, else ``"csv"``."""
    return OUTPUT_FORMATS.get(Path(output).suffix.lower(), "csv")


def check_output(
    output: str | Path, input_path: str | Path, model_path: str | Path | None = None
) -> None:
    """Refuse an ``output`` that is a folder, or that is (or whose parts, lock or config file
    is) the input or the model file: the run would replace the user's file."""
    output = Path(output)
    if output.is_dir():
        raise ValueError(
            f"--output {output} is a folder; give the CSV file to write in it, "
            f"e.g. {output / 'predictions.csv'}"
        )
    if output.suffix.lower() in _REFUSED:
        raise ValueError(
            f"--output {output}: predictions are written as plain CSV text or Parquet, not "
            f"as {output.suffix}; name the output .csv or .parquet"
        )
    theirs = {"--input": Path(input_path)}
    if model_path is not None:
        theirs["--model"] = Path(model_path)
    for role, mine in output_paths(output).items():
        for option, path in theirs.items():
            if _same_file(mine, path):
                what = "--output" if role == "output" else f"the {role} of --output {output},"
                raise ValueError(
                    f"{what} {mine} is the {option} file {path}: the run would replace it; "
                    f"choose another --output"
                )


@contextlib.contextmanager
def output_lock(output: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``<output>.lock`` while writing ``output``.

    A second holder stops at once (``ValueError`` naming the output). The lock is the
    kernel's (``flock``): it goes with the process however that ends, so the file a killed
    run leaves never blocks; it is removed when the run ends. Creating it first also proves
    that the output folder (made if missing) takes files, before any work.
    """
    import fcntl  # POSIX only, like the rest of the screening run's process handling

    output = Path(output)
    path = output_paths(output)["lock"]
    folder = path.parent
    for _ in range(20):  # a run that ends removes the file: lock the one that stays
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:  # read-only, not a folder, full...: before any work
            raise ValueError(
                f"cannot write {output.name} in the folder {folder}: {err.strerror or err}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ValueError(
                f"another molddl predict is writing {output} (it holds {path}); wait for it "
                f"to end or choose another --output"
            ) from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    else:  # pragma: no cover - 20 runs in a row ending just as this one locks
        raise ValueError(f"could not lock {path}; try again")
    try:
        with os.fdopen(os.dup(fd), "r+") as fh:
            text = fh.read()
            if text and not text.startswith(LOCK_MARK):
                raise ValueError(
                    f"{path} exists and is not molddl's lock file; move it or choose another "
                    f"--output"
                )
            fh.seek(0)
            fh.truncate()
            fh.write(f"{LOCK_MARK}\npid {os.getpid()}\n")
        try:
            yield path
        finally:  # while still locked: a run waiting on this file then locks a new one
            path.unlink(missing_ok=True)
    finally:
        os.close(fd)
