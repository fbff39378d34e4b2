"""``molddl train``'s folder: the checkpoints from which a killed run resumes, and the tables
it writes beside the model.

``DIR/checkpoints/`` holds, per phase (``marginal``, ``dll``)::

    config.yaml             the resolved config the checkpoints belong to
    <phase>/best.ckpt       Lightning checkpoint at the best validation value (train.monitor)
    <phase>/last.ckpt       Lightning checkpoint at the end of the last finished epoch
    <phase>/finished.pt     the phase's final (best) weights and summary, once it has ended

``molddl train --resume`` with the same config skips a finished phase and continues the
other from its ``last.ckpt``. Every file here is read with ``weights_only=True`` (tensors and
plain data only, as model files are: :mod:`molddl.models.checkpoint`), so resuming never runs
code from a file; Lightning's own loading of ``last.ckpt`` is called with it too.
"""

from __future__ import annotations

import contextlib
import io
import logging
import pickle
import shutil
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml

from molddl.config import Config
from molddl.data.dataset import DualLabelDataset
from molddl.io import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)

#: the phases of a DLL training, in order (the ``log_name`` of each)
PHASES = ("marginal", "dll")
#: config keys that may differ between a run and its resumption: they change no number
#: (``molddl train`` sets the log folder inside its folder, which may have been moved)
FREE_KEYS = frozenset({"train.progress_bar", "train.log_dir"})
#: what ``molddl train`` writes beside ``model.pt`` and ``config.yaml`` once it is done (an
#: earlier run's are removed when a run finishes, before the new ones are written)
OUTPUTS = (
    "test_metrics.csv",
    "test_predictions.csv",
    "split.csv",
    "learning_curves.png",
    "roc_pr.png",
    "parity.png",
)


class ResumeError(ValueError):
    """``--resume`` cannot continue this folder: nothing to resume, another config, or a
    checkpoint that is damaged or holds more than tensors and plain data."""


class RunFolder:
    """The checkpoints of one ``molddl train`` folder.

    Parameters
    ----------
    root
        The ``--output`` folder.
    resume
        Continue the run the folder's checkpoints belong to, instead of starting afresh.
    rank
        The process's global rank under DDP: only rank 0 writes.
    """

    def __init__(self, root: str | Path, *, resume: bool = False, rank: int = 0) -> None:
        self.root = Path(root)
        self.resume = resume
        self.rank = rank

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def config_path(self) -> Path:
        return self.checkpoints / "config.yaml"

    def phase_dir(self, phase: str) -> Path:
        return self.checkpoints / phase

    # ---------------------------------------------------------------- start or resume
    def start(self, cfg: Config) -> None:
        """A fresh run: drop an earlier run's checkpoints and record ``cfg`` as the config of
        the new ones. A resumed run: check that it can continue (:meth:`check_resume`)."""
        if self.resume:
            self.check_resume(cfg)
            return
        if self.rank != 0:
            return
        if self.checkpoints.exists():
            shutil.rmtree(self.checkpoints)
        atomic_write_text(self.config_path, cfg.to_yaml())

    def check_resume(self, cfg: Config) -> None:
        """A :class:`ResumeError` unless the folder holds checkpoints of a run with config
        ``cfg`` (:data:`FREE_KEYS` aside), each readable as plain data."""
        if not self.config_path.exists():
            raise ResumeError(
                f"nothing to resume in {self.root}: it holds no checkpoints of an earlier "
                "'molddl train' (train without --resume)"
            )
        try:
            stored = Config.from_yaml(self.config_path)
        except (ValueError, yaml.YAMLError) as err:
            raise ResumeError(
                f"cannot resume {self.root}: its {self.config_path.name} is unreadable ({err})"
            ) from None
        changed = _differences(stored.to_dict(), cfg.to_dict())
        if changed:
            raise ResumeError(
                f"cannot resume {self.root} with another config: {'; '.join(changed)} "
                f"(resume with the config the run began with, {self.config_path}, e.g. "
                f"--config {self.config_path}; or train afresh without --resume)"
            )
        found = [p for phase in PHASES for p in self._files(phase) if p.exists()]
        if not found:
            raise ResumeError(
                f"nothing to resume in {self.root}: the run stopped before its first epoch "
                "ended (train again without --resume)"
            )
        for path in found:
            read_checkpoint(path)

    def _files(self, phase: str) -> tuple[Path, Path]:
        folder = self.phase_dir(phase)
        return folder / "finished.pt", folder / "last.ckpt"

    # ---------------------------------------------------------------- per phase
    def last(self, phase: str) -> Path | None:
        """The ``last.ckpt`` of ``phase`` to continue from: only when resuming."""
        path = self.phase_dir(phase) / "last.ckpt"
        return path if self.resume and path.exists() else None

    def finished(self, phase: str) -> dict[str, Any] | None:
        """``{"weights", "summary"}`` of ``phase`` if the resumed run finished it, else
        ``None`` (always ``None`` for a fresh run)."""
        path = self.phase_dir(phase) / "finished.pt"
        if not self.resume or not path.exists():
            return None
        return read_checkpoint(path)

    def finish(self, phase: str, weights: dict[str, torch.Tensor], summary: dict) -> None:
        """Record that ``phase`` has ended, with its final weights and summary."""
        if self.rank != 0:
            return
        payload = {
            "weights": {k: v.detach().cpu() for k, v in weights.items()},
            "summary": dict(summary),
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        path = self.phase_dir(phase) / "finished.pt"
        try:
            with atomic_path(path) as tmp:
                tmp.write_bytes(buffer.getbuffer())
        except OSError as err:  # as a checkpoint (training.CheckpointFiles): the run goes on
            logger.warning(
                "cannot write %s (%s); a resumed run would go on with the %s phase from "
                "its last checkpoint",
                path, err.strerror or err, phase,
            )  # fmt: skip


def _differences(stored: dict, current: dict) -> list[str]:
    """``section.key: old -> new`` for every key that differs, :data:`FREE_KEYS` aside."""

    def flat(d: dict) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in d.items():
            if isinstance(value, dict):
                out.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                out[key] = value
        return out

    old, new = flat(stored), flat(current)
    return [
        f"{key} was {old.get(key)!r}, now {new.get(key)!r}"
        for key in sorted(set(old) | set(new))
        if key not in FREE_KEYS and old.get(key) != new.get(key)
    ]


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint of the run folder (Lightning's ``.ckpt`` or ``finished.pt``), loaded with
    ``weights_only=True``; a :class:`ResumeError` naming the file when it is damaged or holds
    Python objects that loading would have to run."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        named = [ln.strip() for ln in str(err).splitlines() if "global" in ln.lower()]
        raise ResumeError(
            f"{path} was refused: it holds Python objects beyond tensors and plain data"
            f"{f' ({named[0]})' if named else ''}, which loading would have to run; "
            "molddl's checkpoints never do (train again without --resume)"
        ) from None
    except Exception as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        raise ResumeError(
            f"{path} is not a readable checkpoint (truncated or damaged): "
            f"{type(err).__name__}: {' '.join(lines[:2])} (train again without --resume)"
        ) from None
    if not isinstance(payload, dict):
        raise ResumeError(f"{path} is not a molddl checkpoint (train again without --resume)")
    return payload


def split_table(
    train: DualLabelDataset, val: DualLabelDataset, test: DualLabelDataset
) -> pd.DataFrame:
    """``split.csv``: ``id``, ``row`` (in the source table, from 1), ``smiles`` for
    molecules, and ``part`` (train / val / test) of every sample, in source-table order."""
    frames = []
    for part, data in (("train", train), ("val", val), ("test", test)):
        cols: dict[str, Any] = {"id": data.ids, "row": data.row + 1}
        if data.smiles is not None:
            cols["smiles"] = data.smiles
        cols["part"] = part
        frames.append(pd.DataFrame(cols))
    table = pd.concat(frames, ignore_index=True)
    return table.sort_values("row", kind="stable").reset_index(drop=True)


#: the run folder of the ``molddl train`` in progress (:func:`activated`), read by
#: :func:`molddl.models.training.train_dll`
_ACTIVE: ContextVar[RunFolder | None] = ContextVar("molddl_run_folder", default=None)


def active() -> RunFolder | None:
    """The run folder whose checkpoints the training now running writes, if any."""
    return _ACTIVE.get()


@contextlib.contextmanager
def activated(folder: RunFolder) -> Iterator[RunFolder]:
    """Trainings inside this block (``DualLabelModel.fit``) checkpoint into ``folder``."""
    token = _ACTIVE.set(folder)
    try:
        yield folder
    finally:
        _ACTIVE.reset(token)
