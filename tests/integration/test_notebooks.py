"""Every notebook runs top to bottom (small settings) from a folder outside the checkout, as a
user's copy would, is committed without outputs, imports only molddl's public API, and its
outputs show what a reader relies on: tables with the tasks, figures, no error or warning.

Each notebook is executed once per test session (see :func:`executed`); the tests below read
the outputs of that one run.
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
TASKS = ("Single-y1", "Single-y2", "Double-y1", "Double-y2")
#: what a notebook may import of molddl: the package, and the figures of the experiments
PUBLIC_MODULES = ("molddl", "molddl.experiments")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def executed(data_dir, tmp_path_factory):
    """``run(name)``: the notebook ``name``, copied alone into a fresh folder outside the
    checkout and executed there with ``MOLDDL_NOTEBOOK_QUICK=1`` (once, on first use), and
    the error that stopped it or ``None``."""
    done: dict[str, tuple[nbformat.NotebookNode, CellExecutionError | None]] = {}

    def run(name: str):
        if name not in done:
            folder = tmp_path_factory.mktemp(Path(name).stem)
            assert not folder.resolve().is_relative_to(REPO), folder  # a user's own folder
            path = Path(shutil.copy(REPO / "notebooks" / name, folder))
            nb = nbformat.read(path, as_version=4)
            client = NotebookClient(
                nb,
                timeout=600,
                kernel_name="python3",
                resources={"metadata": {"path": str(folder)}},  # the kernel's working folder
            )
            error = None
            with pytest.MonkeyPatch.context() as mp:  # the kernel inherits this environment
                mp.setenv("MOLDDL_DATA_DIR", str(data_dir))
                mp.setenv("MOLDDL_NOTEBOOK_QUICK", "1")
                mp.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend: PNGs
                try:
                    client.execute()
                except CellExecutionError as err:  # names the failing cell
                    error = err
            done[name] = (nb, error)
        return done[name]

    return run


def _notebook(executed, name: str) -> nbformat.NotebookNode:
    nb, error = executed(name)
    if error is not None:
        pytest.fail(f"{name} did not run to the end:\n{error}")
    return nb


def _cell(nb: nbformat.NotebookNode, marker: str) -> nbformat.NotebookNode:
    """The one code cell whose source contains ``marker``."""
    cells = [c for c in nb.cells if c.cell_type == "code" and marker in c.source]
    assert len(cells) == 1, f"{len(cells)} code cells contain {marker!r}"
    return cells[0]


def _text(cell, mime: str = "text/plain", stdout: bool = True) -> str:
    """What ``cell`` showed as ``mime``, after what it printed to stdout (``stdout``)."""
    parts = []
    for out in cell.outputs:
        if stdout and out.output_type == "stream" and out.name == "stdout":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data") and mime in out.data:
            parts.append(out.data[mime])
    return "\n".join(parts)


def _images(cell) -> int:
    return sum("image/png" in out.get("data", {}) for out in cell.outputs)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_imports_only_the_public_api_and_no_file_of_the_checkout(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            modules = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            for module in modules:
                if module.split(".")[0] == "molddl":
                    assert module in PUBLIC_MODULES, f"{path.name} imports {module}"
        assert "../" not in cell.source, f"{path.name} reads a file beside the notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_without_error_or_warning(path, executed):
    nb = _notebook(executed, path.name)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.execution_count is not None, f"{path.name} cell {i} did not run"
        for out in cell.outputs:
            assert out.output_type != "error", f"{path.name} cell {i}: {out.get('ename')}"
            texts = [out.text] if out.output_type == "stream" else []
            texts += [v for v in out.get("data", {}).values() if isinstance(v, str)]
            for text in texts:
                assert "IProgress" not in text, f"{path.name} cell {i}:\n{text}"
                assert "Traceback" not in text, f"{path.name} cell {i}:\n{text}"
                warned = [ln for ln in text.splitlines() if re.search("warn", ln, re.IGNORECASE)]
                assert warned == [], f"{path.name} cell {i} warns:\n" + "\n".join(warned)


def test_quickstart_shows_the_partition_the_screen_and_the_four_tasks(executed):
    nb = _notebook(executed, "01_quickstart.ipynb")

    split = _cell(nb, "train.describe()")
    sizes = re.search(r"^(\d+) (\d+) (\d+)$", _text(split), re.MULTILINE)
    assert sizes, _text(split)
    n_train, n_val, n_test = map(int, sizes.groups())
    assert 7 * n_val < n_train < 9 * n_val and abs(n_val - n_test) <= 1  # 80 / 10 / 10
    partition = _text(split)
    for part in ("D12", "D1", "D2", "D0", "SR-ARE + SR-MMP", "only SR-MMP", "none"):
        assert part in partition, part

    history = _text(_cell(nb, "model.history_"))
    assert all(k in history for k in ("'marginal'", "'dll'", "'best_epoch'")), history

    screened = _text(_cell(nb, 'table[["id", "SR-ARE"'))
    assert "SR-ARE_prob" in screened and "SR-MMP_source" in screened
    sources = _text(_cell(nb, "value_counts()"))
    assert all(s in sources for s in ("given", "direct", "alternate")), sources

    scores = _text(_cell(nb, "pivot_table"))
    for word in (*TASKS, "DLL", "MT", "roc_auc", "pr_auc", "f1"):
        assert word in scores, (word, scores)

    assert "round trip identical:" in _text(_cell(nb, "DualLabelModel.load(path)"))

    roc = _cell(nb, "roc_curve(")  # ROC curves of the screen: direct and alternate
    assert _images(roc) == 1
    assert sum(_images(c) for c in nb.cells if c.cell_type == "code") == 1


def test_paper_experiments_draw_every_figure_and_the_task_table(executed):
    nb = _notebook(executed, "02_paper_experiments.ipynb")
    figures = {
        "compare.figure(tidy);": None,
        "missing_rate.figure(tidy);": "with 4 Axes",  # one panel per reveal task
        "compare.figure(tidy.rename": None,
        "convergence.figure(tidy);": "with 2 Axes",  # score and fraction converged
    }
    for marker, axes in figures.items():
        cell = _cell(nb, marker)
        assert _images(cell) == 1, marker
        if axes:
            assert axes in _text(cell), (marker, _text(cell))
    table = _text(_cell(nb, "compare.summary_markdown(tidy)"), "text/markdown", stdout=False)
    for word in (*TASKS, "DLL", "MT", "LS", "mape"):
        assert word in table, (word, table)
    assert table.count("| DLL |") == 4  # one row per task


def test_tuning_notebook_reports_the_study_and_its_plots(executed):
    nb = _notebook(executed, "03_tuning.ipynb")

    trials = _text(_cell(nb, "study.trials_dataframe()"))
    assert "params_train.gamma" in trials and "params_train.alpha1" in trials
    assert len(re.findall(r"\b(?:COMPLETE|PRUNED)\b", trials)) == 3, trials  # n_trials=3

    summary = _text(_cell(nb, "summary.md"), "text/markdown", stdout=False)
    assert summary.startswith("# Study `mof`") and "| trials | 3 |" in summary, summary

    best = _text(_cell(nb, 'best_config.yaml").read_text()'))
    assert best.startswith("data:") and "gamma:" in best and "hidden:" in best

    assert _images(_cell(nb, "history.png")) == 2  # history and importances


def test_tuning_notebook_rerun_shows_the_study_grow(executed):
    nb = _notebook(executed, "03_tuning.ipynb")
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert "again = tune(" in last.source
    text = _text(last)
    # three trials before, four after: the rerun's trial is number 3, after trials 0, 1, 2
    assert "3 -> 4 trials; the rerun added trial number 3\n" in text, text
    # the first study object is a view of the same storage, so it now sees four
    assert "the first `study` reads the same storage and now counts 4" in text, text
