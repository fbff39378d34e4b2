"""Progress for people, quiet in logs: a bar on stderr when stderr is a terminal; when it is
not (a redirected log, a pipe, a CI job), no bar, only an occasional plain line at INFO level.

Every long command reports progress through :class:`Progress` (trials of ``molddl tune``, cells
of ``molddl benchmark``, molecules being featurized); Lightning's per-epoch bars of
``molddl train`` are :class:`molddl.models.training.PhaseProgressBar`, on stderr as well.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from types import TracebackType

from tqdm import tqdm

from molddl.config import Config

logger = logging.getLogger(__name__)


def stderr_is_terminal() -> bool:
    """Whether stderr is a terminal (a person watches it), not a file or a pipe."""
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def quiet_trainings(cfg: Config) -> Config:
    """``cfg`` for commands that train many models (``molddl tune``, ``molddl benchmark``):
    their per-epoch bars (``train.progress_bar: true``) only on a terminal, never in a log."""
    if not cfg.train.progress_bar or stderr_is_terminal():
        return cfg
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, progress_bar=False))


class Progress:
    """A tqdm bar on stderr when it is a terminal; otherwise, with ``log_lines``, one INFO line
    per update (``"trials: 3 of 20 done"``) and no bar characters at all.

    Parameters
    ----------
    total
        Steps expected (``None``: unknown).
    desc
        What is counted, shown before the bar and in the log lines.
    unit
        The unit of a step, for the bar's rate.
    log_lines
        Log a line per update when there is no bar (for steps that take seconds or more).
    force
        ``True`` shows the bar even when stderr is not a terminal, ``False`` never shows it,
        ``None`` (default) decides by the terminal.
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "it",
        *,
        log_lines: bool = True,
        force: bool | None = None,
    ) -> None:
        self.total, self.desc, self.n = total, desc, 0
        show = stderr_is_terminal() if force is None else force
        self.log_lines = log_lines and not show
        self.bar: tqdm | None = (
            tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)
            if show
            else None
        )

    def update(self, n: int = 1) -> None:
        """``n`` more steps are done."""
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.log_lines and n:
            of = "" if self.total is None else f" of {self.total}"
            logger.info("%s: %d%s done", self.desc, self.n, of)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
