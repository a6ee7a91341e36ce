"""Fixtures of the CLI unit tests: a folder of local data to add as a source."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "2024").mkdir(parents=True)
    (root / "a.csv").write_text("x,y\n1,2\n")
    (root / "2024" / "sales.csv").write_text("region,amount\nnorth,10\n")
    (root / "notes.txt").write_text("not csv\n")
    return root
