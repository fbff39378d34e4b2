"""Fill docs/RESULTS.md's tables from the experiments' own outputs.

Every ``<!-- table: NAME -->`` … ``<!-- end -->`` block is replaced with the Markdown table that
``molddl benchmark ...`` wrote to ``docs/results/NAME/results.md``, so no number is typed by
hand. Every ``<!-- before-after: NAME COMMIT METRIC [METRIC ...] -->`` … ``<!-- end -->`` block
gets a table of those metrics, before (``docs/results/NAME/results.csv`` as committed at
``COMMIT``) and after (the file now), over the seeds the run now holds. Rerun after an
experiment gains seeds:

    python docs/render_results.py
"""

from __future__ import annotations

import io
import re
import subprocess
from pathlib import Path

import pandas as pd

DOCS = Path(__file__).resolve().parent
BLOCK = re.compile(r"(<!-- table: ([\w.-]+) -->\n).*?(<!-- end -->)", re.S)
BEFORE_AFTER = re.compile(
    r"(<!-- before-after: ([\w.-]+) (\w+) ([\w ]+?) -->\n).*?(<!-- end -->)", re.S
)


def _cell(values: pd.Series) -> str:
    std = values.std() if len(values) > 1 else 0.0
    return f"{values.mean():.3f} ± {std:.3f}"


def before_after(name: str, commit: str, metrics: list[str]) -> str:
    """Mean ± std per task × method of ``metrics``, at ``commit`` and now, same seeds."""
    rel = f"docs/results/{name}/results.csv"
    now_path = DOCS.parent / rel
    if not now_path.exists():
        return f"*not run yet: `{rel}` is missing*\n\n"
    old_csv = subprocess.run(
        ["git", "show", f"{commit}:{rel}"], cwd=DOCS.parent, check=True, capture_output=True
    ).stdout.decode()
    now, old = pd.read_csv(now_path), pd.read_csv(io.StringIO(old_csv))
    seeds = sorted(now["seed"].unique())
    old = old[old["seed"].isin(seeds)]
    rows = []
    for (task, method), cell in now.groupby(["task", "method"], sort=True):
        row = {"task": task, "method": method}
        for m in metrics:
            before = old[(old.task == task) & (old.method == method) & (old.metric == m)]
            after = cell[cell.metric == m]
            row[f"{m} before"] = _cell(before["value"]) if len(before) else "–"
            row[f"{m} after"] = _cell(after["value"]) if len(after) else "–"
        rows.append(row)
    table = pd.DataFrame(rows)
    head = "| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns) + "\n"
    body = "".join("| " + " | ".join(map(str, r)) + " |\n" for r in table.itertuples(False))
    n = ", ".join(map(str, seeds))
    return f"seeds {n}; before: `{commit}`, after: this commit\n\n" + head + body + "\n"


def table(name: str) -> str:
    path = DOCS / "results" / name / "results.md"
    if not path.exists():
        return f"*not run yet: `{path.relative_to(DOCS.parent)}` is missing*\n\n"
    return path.read_text().strip() + "\n\n"


def main() -> None:
    path = DOCS / "RESULTS.md"
    text = path.read_text()
    text = BLOCK.sub(lambda m: m.group(1) + table(m.group(2)) + m.group(3), text)
    text = BEFORE_AFTER.sub(
        lambda m: (
            m.group(1) + before_after(m.group(2), m.group(3), m.group(4).split()) + m.group(5)
        ),
        text,
    )
    path.write_text(text)


if __name__ == "__main__":
    main()
