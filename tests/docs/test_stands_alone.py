"""The repository stands alone: no file points at documents outside it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# the brief's documents and folder, spelt so that this file does not name them itself
OUTSIDE = tuple(name.replace(" ", "") for name in ("CONTRACT .md", "DESIGN .md", ".. /shared"))


def tracked_text_files() -> list[Path]:
    names = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    return [REPO / name for name in names if (REPO / name).suffix in {".py", ".md", ".yml"}]


@pytest.mark.parametrize("path", tracked_text_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_reference_outside_the_repository(path: Path) -> None:
    text = path.read_text(errors="replace")
    assert [name for name in OUTSIDE if name in text] == []
