"""What the README tells a user to install or type is true of this checkout."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked() -> set[str]:
    """The distributions that requirements.lock pins (``make setup`` installs them)."""
    lines = (REPO / "requirements.lock").read_text().splitlines()
    return {_canonical(m.group(1)) for ln in lines if (m := re.match(r"([A-Za-z0-9_.-]+)==", ln))}


def test_the_readme_asks_to_install_nothing_the_lock_already_installs():
    locked = _locked()
    assert "psycopg" in locked  # the PostgreSQL driver of distributed tuning
    asked = []
    for command in re.findall(r"pip install ([^`\n]+)", (REPO / "README.md").read_text()):
        if "--index-url" in command:  # another build of a pinned package (torch for CUDA)
            continue
        for word in command.split():
            name = re.split(r"[\[=<>~!]", word.strip("\"'"))[0]
            if name and not word.startswith("-") and name != ".":
                asked.append(name)
    assert not [n for n in asked if _canonical(n) in locked], asked


def test_the_readme_shows_the_chemprop_flags_and_data_describe_set():
    readme = (REPO / "README.md").read_text()
    for flag in ("--data-path", "--target-columns", "--split-type", "--epochs", "--save-dir"):
        assert flag in readme, flag
    assert "molddl data describe --set" in readme
