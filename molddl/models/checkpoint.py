"""The model file: one ``torch.save`` of plain data (weights, config, preprocessing), read
back with ``weights_only=True`` so that loading never runs code from the file."""

from __future__ import annotations

import contextlib
import io
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from molddl._version import __version__
from molddl.io import atomic_path

MODEL_FORMAT = "molddl-model"
#: the payload's layout; optional keys added later (``test_ids``) leave it unchanged, so
#: files written before them stay readable
MODEL_FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model file that is missing, corrupt, or from an incompatible molddl version."""


def write(path: str | Path, parts: dict[str, Any]) -> Path:
    """Write ``parts`` (tensors, numbers, strings, lists and dicts of them) with the format
    header and molddl's version, atomically."""
    payload = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "molddl_version": __version__,
        **parts,
    }
    buffer = io.BytesIO()  # torch reports a failed write (a full disk) as a RuntimeError
    torch.save(payload, buffer)  # that names neither the file nor the cause; a plain
    with atomic_path(path) as tmp:  # write raises the OSError that does
        tmp.write_bytes(buffer.getbuffer())
    return Path(path)


def read(path: str | Path) -> dict[str, Any]:
    """The payload of a model file, checked for molddl's format and version."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file {path} does not exist")
    if path.is_dir():
        raise ModelFileError(f"model file {path} is a folder; give the model.pt inside it")
    if path.stat().st_size == 0:
        raise ModelFileError(f"model file {path} is empty (0 bytes): not a molddl model file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch refuses a pickle that names a Python callable (it would run when unpickled);
        # its message advises loading the file unsafely, which molddl never does
        named = [ln.strip() for ln in str(err).splitlines() if "global" in ln.lower()]
        if named:
            raise ModelFileError(
                f"{path} was refused: it holds Python objects beyond tensors and plain data "
                f"({named[0]}), which loading would have to run; molddl model files never do"
            ) from None
        raise ModelFileError(
            f"{path} is not a readable molddl model file (damaged or another format): "
            f"{next((ln.strip() for ln in str(err).splitlines() if 'Unsupported' in ln), err)}"
        ) from None
    except Exception as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        raise ModelFileError(
            f"{path} is not a readable molddl model file (truncated, damaged or another "
            f"format): {type(err).__name__}: {' '.join(lines[:3])}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path} is not a molddl model file")
    if payload.get("format_version") != MODEL_FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was written by molddl {payload.get('molddl_version')} in model format "
            f"{payload.get('format_version')}; this molddl {__version__} reads format "
            f"{MODEL_FORMAT_VERSION}. Retrain the model or use the molddl that wrote it."
        )
    return payload


def upgrade_config(config: dict) -> dict:
    """A stored config in today's schema: ``inference.kernel: compiled`` (the C kernel of
    earlier molddl) reads as ``numba``, the loop that replaced it."""
    inference = config.get("inference")
    if isinstance(inference, dict) and inference.get("kernel") == "compiled":
        config = {**config, "inference": {**inference, "kernel": "numba"}}
    return config


@contextlib.contextmanager
def entries_of(path: str | Path) -> Iterator[None]:
    """Turn an error while building a model from a payload's entries into a
    :class:`ModelFileError` naming ``path``: a crafted or damaged file gets one line."""
    try:
        yield
    except ModelFileError:
        raise
    except KeyError as err:
        raise ModelFileError(f"{path} is damaged: it has no {err} entry") from None
    except (TypeError, ValueError, AttributeError, IndexError, RuntimeError) as err:
        raise ModelFileError(
            f"{path} is damaged: its stored config or preprocessing cannot be used "
            f"({type(err).__name__}: {err})"
        ) from None


def load_weights(path: str | Path, module: torch.nn.Module, state: dict) -> None:
    """``module.load_state_dict(state)``, as a :class:`ModelFileError` naming the file."""
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise ModelFileError(f"{path}: weights do not match the stored config ({err})") from None
