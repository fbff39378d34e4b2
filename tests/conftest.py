"""Shared fixtures: the real data directory and an isolated cache for every test."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def _data_dir() -> Path | None:
    env = os.environ.get("MOLDDL_DATA_DIR")
    for candidate in (Path(env) if env else None, SHARED_DATA):
        if candidate is not None and (candidate / "tox21.csv.gz").exists():
            return candidate
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder with the real datasets (``MOLDDL_DATA_DIR`` or ``../shared/data``)."""
    found = _data_dir()
    if found is None:
        pytest.skip("real datasets not found: set MOLDDL_DATA_DIR or place ../shared/data")
    return found


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Each test session gets its own cache so tests never depend on the user's cache."""
    cache = tmp_path_factory.getbasetemp() / "molddl-cache"
    monkeypatch.setenv("MOLDDL_CACHE_DIR", str(cache))


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny models: on a busy 2-core machine extra intra-op threads only spin (a 3 s fit
    took 90 s under load). One thread also keeps CPU results bit-reproducible."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


#: feature columns of :func:`tiny_higgs_csv`
TINY_HIGGS_FEATURES = [f"f{i}" for i in range(21)]


@pytest.fixture
def tiny_higgs_csv(data_dir: Path, tmp_path: Path) -> Path:
    """240 real HIGGS events as a user's CSV: 21 low-level features f0..f20, m_jj, m_jjj."""
    raw = pd.read_csv(data_dir / "higgs_sas_sample.csv.gz", nrows=240)
    table = raw.iloc[:, :21].set_axis(TINY_HIGGS_FEATURES, axis=1)
    table["m_jj"], table["m_jjj"] = raw["m_jj"], raw["m_jjj"]
    path = tmp_path / "higgs_tiny.csv"
    table.to_csv(path, index=False)
    return path
