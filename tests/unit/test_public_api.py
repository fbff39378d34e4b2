"""What a notebook user imports from ``molddl`` itself: the public names (loaded on first use),
the shipped configs and committed results by name from any working folder, and no
``IProgress`` warning in a Jupyter kernel without ipywidgets."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import molddl
from molddl import Config, ConfigError, shipped_configs, shipped_results

REPO = Path(__file__).resolve().parents[2]


def _python(code: str, cwd: Path) -> str:
    """What ``code`` prints, run by this interpreter in ``cwd``."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_every_public_name_resolves_and_import_stays_lazy(tmp_path):
    for name in molddl.__all__:
        assert getattr(molddl, name) is not None, name
    assert set(molddl.__all__) <= set(dir(molddl))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = molddl.nope
    loaded = _python(
        """
        import sys, molddl
        print(sorted(m for m in ("torch", "lightning", "optuna", "tqdm") if m in sys.modules))
        """,
        tmp_path,
    )
    assert loaded == "[]"


def test_a_shipped_config_is_read_by_name_from_any_folder(tmp_path):
    assert {"tox21", "mof", "higgs", "template"} <= set(shipped_configs())
    for name in shipped_configs():
        assert Config.from_yaml(name) == Config.from_yaml(REPO / "configs" / f"{name}.yaml")
    printed = _python(
        """
        from molddl import Config
        cfg = Config.from_yaml("mof")
        print(cfg.data.dataset, cfg.tune.study)
        """,
        tmp_path,  # outside the checkout: no configs/ here
    )
    assert printed == "mof mof"


def test_an_unknown_name_lists_the_shipped_configs():
    with pytest.raises(ConfigError) as err:
        Config.from_yaml("tox12")
    message = str(err.value)
    assert "no shipped config 'tox12' (did you mean 'tox21'?)" in message
    assert all(name in message for name in shipped_configs())


def test_a_file_in_the_working_folder_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tox21").write_text("seed: 7\n")
    assert Config.from_yaml("tox21").seed == 7
    with pytest.raises(ConfigError, match=r"tox21\.yaml does not exist \(shipped configs"):
        Config.from_yaml("tox21.yaml")  # a path: never looked up by name


def test_committed_results_are_found_by_name_or_listed():
    path = shipped_results("mof-compare")
    assert path == REPO / "docs" / "results" / "mof-compare" / "results.csv" and path.is_file()
    with pytest.raises(FileNotFoundError, match="did you mean 'mof-compare'") as err:
        shipped_results("mof-compar")
    assert "tox21-ablation" in str(err.value)
    with pytest.raises(FileNotFoundError):
        shipped_results("../configs")


_KERNEL = """
    import sys, types, warnings
    # what tqdm.autonotebook takes for a Jupyter kernel
    sys.modules["ipykernel.zmqshell"] = types.ModuleType("ipykernel.zmqshell")
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = type("ZMQInteractiveShell", (), {})
    sys.modules["IPython"] = ipython
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        IMPORTS
    print([str(w.message) for w in caught])
"""


@pytest.mark.skipif(
    importlib.util.find_spec("ipywidgets") is not None, reason="ipywidgets is installed"
)
def test_no_iprogress_warning_in_a_kernel_without_ipywidgets(tmp_path):
    # torch_geometric and optuna import tqdm.auto, which warns in such a kernel ...
    bare = _python(_KERNEL.replace("IMPORTS", "import tqdm.auto"), tmp_path)
    assert "IProgress not found" in bare
    # ... but not once molddl is imported (molddl's own bars are plain tqdm on stderr)
    quiet = _python(
        _KERNEL.replace("IMPORTS", "import molddl; import tqdm.auto; import optuna"), tmp_path
    )
    assert quiet == "[]"
