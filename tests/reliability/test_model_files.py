"""Crafted and damaged model and cache files: a model file is data, never code; a cache file
is used only from a folder that is the user's alone, and a damaged one costs a compilation,
not a crash."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pandas as pd
import pytest
import torch

from .conftest import TINY, molddl_env, snapshot


def _predict(cli, model: Path, tox_tables, out: Path):
    return cli(
        "predict", "--model", model, "--input", tox_tables["screen"], "--output", out,
        "--workers", "1",
    )  # fmt: skip


def _refused(cli, model: Path, tox_tables, tmp_path: Path, *needles: str) -> None:
    before = snapshot(model) if model.is_file() else {}
    out = tmp_path / "out.csv"
    _predict(cli, model, tox_tables, out).assert_error(*needles)
    assert not out.exists()
    if before:
        assert snapshot(model) == before
    # evaluate reads the model the same way
    cli("evaluate", "--model", model).assert_error(str(model))


@pytest.mark.case(risk="traceback", tried="predict with a 0-byte model file")
def test_zero_byte_model(cli, tox_tables, tmp_path):
    model = tmp_path / "model.pt"
    model.write_bytes(b"")
    _refused(cli, model, tox_tables, tmp_path, str(model), "empty (0 bytes)")


@pytest.mark.case(risk="traceback", tried="predict with a model file cut in half")
def test_truncated_model(cli, tiny_model, tox_tables, tmp_path):
    model = tmp_path / "model.pt"
    data = tiny_model.read_bytes()
    model.write_bytes(data[: len(data) // 2])
    _refused(cli, model, tox_tables, tmp_path, str(model), "not a readable molddl model file")


@pytest.mark.case(risk="traceback", tried="predict with random bytes as the model file")
def test_random_bytes_model(cli, tox_tables, tmp_path):
    model = tmp_path / "model.pt"
    model.write_bytes(os.urandom(4096))
    _refused(cli, model, tox_tables, tmp_path, str(model), "not a readable molddl model file")


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.case(risk="foreign-code", tried="a model file whose pickle runs os.system")
def test_malicious_pickle(cli, tox_tables, tmp_path):
    marker = tmp_path / "ran"
    model = tmp_path / "model.pt"
    torch.save({"format": "molddl-model", "net": _Payload(marker)}, model)
    _refused(cli, model, tox_tables, tmp_path, str(model), "refused", "system")
    assert not marker.exists()


@pytest.mark.case(risk="foreign-code", tried="a model file that is a plain pickle of code")
def test_plain_pickle(cli, tox_tables, tmp_path):
    marker = tmp_path / "ran"
    model = tmp_path / "model.pt"
    model.write_bytes(pickle.dumps(_Payload(marker)))
    _refused(cli, model, tox_tables, tmp_path, str(model))
    assert not marker.exists()


@pytest.mark.case(risk="silent-wrong", tried="a torch file of tensors that is not molddl's")
def test_foreign_torch_file(cli, tox_tables, tmp_path):
    model = tmp_path / "model.pt"
    torch.save({"weight": torch.zeros(3)}, model)
    _refused(cli, model, tox_tables, tmp_path, str(model), "not a molddl model file")


def _edited(tiny_model: Path, tmp_path: Path, edit) -> Path:
    payload = torch.load(tiny_model, weights_only=True)
    edit(payload)
    model = tmp_path / "edited.pt"
    torch.save(payload, model)
    return model


@pytest.mark.case(risk="silent-wrong", tried="a model file from a future molddl format")
def test_future_format(cli, tiny_model, tox_tables, tmp_path):
    model = _edited(tiny_model, tmp_path, lambda p: p.update(format_version=99))
    _refused(cli, model, tox_tables, tmp_path, str(model), "format 99", "Retrain")


@pytest.mark.case(risk="silent-wrong", tried="a model file whose config does not fit its weights")
def test_config_weights_mismatch(cli, tiny_model, tox_tables, tmp_path):
    model = _edited(tiny_model, tmp_path, lambda p: p["config"]["model"].update(hidden=32))
    _refused(cli, model, tox_tables, tmp_path, str(model), "weights do not match")


@pytest.mark.case(risk="traceback", tried="a model file without its preprocessing entry")
def test_missing_entry(cli, tiny_model, tox_tables, tmp_path):
    model = _edited(tiny_model, tmp_path, lambda p: p.pop("preprocessor"))
    _refused(cli, model, tox_tables, tmp_path, str(model), "damaged", "'preprocessor'")


@pytest.mark.case(risk="traceback", tried="a model file whose stored config has a bad value")
def test_bad_stored_config(cli, tiny_model, tox_tables, tmp_path):
    model = _edited(tiny_model, tmp_path, lambda p: p["config"]["model"].update(hidden=-3))
    _refused(cli, model, tox_tables, tmp_path, "'model.hidden'")


@pytest.mark.case(risk="traceback", tried="a model file whose preprocessing is garbage")
def test_garbage_preprocessing(cli, tiny_model, tox_tables, tmp_path):
    model = _edited(tiny_model, tmp_path, lambda p: p.update(preprocessor={"labels": 5}))
    _refused(cli, model, tox_tables, tmp_path, str(model), "damaged")


@pytest.mark.case(risk="traceback", tried="a folder given as the model file")
def test_folder_as_model(cli, tox_tables, tmp_path):
    _refused(cli, tmp_path, tox_tables, tmp_path / "x", str(tmp_path), "folder")


@pytest.mark.case(risk="traceback", tried="a damaged model under a 300-character path")
def test_long_path_is_named_whole(cli, tox_tables, tmp_path):
    deep = tmp_path.joinpath(*["a-rather-long-folder-name-" + str(i) for i in range(10)])
    deep.mkdir(parents=True)
    model = deep / "model.pt"
    model.write_bytes(b"\x00" * 100)
    assert len(str(model)) > 300
    _predict(cli, model, tox_tables, tmp_path / "o.csv").assert_error(str(model))


def _smiles_only(tox_tables, tmp_path: Path) -> Path:
    """Compounds with no label known: every one goes through alternate inference."""
    path = tmp_path / "smiles.csv"
    pd.read_csv(tox_tables["screen"])[["smiles"]].to_csv(path, index=False)
    return path


def _predict_proc(cli_proc, tiny_model, inputs: Path, out: Path, cache: Path):
    return cli_proc(
        "-v", "predict", "--model", tiny_model, "--input", inputs, "--output", out,
        "--workers", "1", "--set", "inference.kernel=numba",
        env=molddl_env(cache),
    )  # fmt: skip


@pytest.mark.case(risk="foreign-code", tried="a numba cache folder that others may write")
def test_shared_cache_folder_is_not_used(cli_proc, tiny_model, tox_tables, tmp_path):
    cache = tmp_path / "cache"
    (cache / "numba").mkdir(parents=True)
    os.chmod(cache / "numba", 0o777)  # noqa: S103 - the very case
    inputs = _smiles_only(tox_tables, tmp_path)
    result = _predict_proc(cli_proc, tiny_model, inputs, tmp_path / "o.csv", cache)
    assert result.rc == 0, result.err[-2000:]
    assert "writable by its group or by other users" in result.err
    assert list((cache / "numba").iterdir()) == []  # nothing written, so nothing loaded


@pytest.mark.case(risk="traceback", tried="numba cache files cut short between two runs")
def test_damaged_cache_files_are_recompiled(cli_proc, tiny_model, tox_tables, tmp_path):
    cache = tmp_path / "cache"
    inputs = _smiles_only(tox_tables, tmp_path)
    first = _predict_proc(cli_proc, tiny_model, inputs, tmp_path / "a.csv", cache)
    assert first.rc == 0, first.err[-2000:]
    files = [p for p in (cache / "numba").rglob("*") if p.is_file()]
    assert files
    for f in files:
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    second = _predict_proc(cli_proc, tiny_model, inputs, tmp_path / "b.csv", cache)
    assert second.rc == 0, second.err[-2000:]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv"))


@pytest.mark.case(risk="traceback", tried="a cache folder that cannot be created")
def test_cache_folder_cannot_be_created(cli_proc, tiny_model, tox_tables, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would go")
    inputs = _smiles_only(tox_tables, tmp_path)
    result = _predict_proc(cli_proc, tiny_model, inputs, tmp_path / "o.csv", blocker / "cache")
    assert result.rc == 0, result.err[-2000:]
    assert "Traceback" not in result.err
    assert len(pd.read_csv(tmp_path / "o.csv")) == len(pd.read_csv(inputs))


@pytest.mark.case(
    risk="traceback", tried="train with a feature cache folder that cannot be created"
)
def test_train_without_a_cache_folder(cli_proc, tox_tables, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would go")
    result = cli_proc(
        "train", "--set", f"data.dataset={tox_tables['train']}",
        "--set", "data.labels=[SR-ARE, SR-MMP]", *TINY, "--output", tmp_path / "run",
        env=molddl_env(blocker / "cache"),
    )  # fmt: skip
    assert result.rc == 0, result.err[-2000:]
    assert "cannot write the feature cache" in result.err
    assert (tmp_path / "run" / "model.pt").exists()
