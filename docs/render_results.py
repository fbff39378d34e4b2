"""Fill docs/RESULTS.md's tables from the experiments' own outputs.

Every ``<!-- table: NAME -->`` … ``<!-- end -->`` block is replaced with the Markdown table that
``molddl benchmark ...`` wrote to ``docs/results/NAME/results.md``, so no number is typed by
hand. Rerun after an experiment gains seeds:

    python docs/render_results.py
"""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent
BLOCK = re.compile(r"(<!-- table: ([\w.-]+) -->\n).*?(<!-- end -->)", re.S)


def table(name: str) -> str:
    path = DOCS / "results" / name / "results.md"
    if not path.exists():
        return f"*not run yet: `{path.relative_to(DOCS.parent)}` is missing*\n\n"
    return path.read_text().strip() + "\n\n"


def main() -> None:
    path = DOCS / "RESULTS.md"
    text = path.read_text()
    path.write_text(BLOCK.sub(lambda m: m.group(1) + table(m.group(2)) + m.group(3), text))


if __name__ == "__main__":
    main()
