"""A local source of small CSV files for the re-sync tests, built in a test's temporary folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from connectors.base import DataSourceConfig
from connectors.plugins import get_connector_class


def csv_source(tmp_path: Path, count: int, per_folder: int) -> tuple[Callable[[], Any], Path, Path]:
    """``count`` files ``d<k>/f<index>.csv`` under ``tmp_path/src``, ``per_folder`` to a folder.

    Returns:
        A factory of a new connector of the source, its root, and its workspace folder.
    """
    root = tmp_path / "src"
    for index in range(count):
        folder = root / f"d{index // per_folder}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index:04d}.csv").write_text(f"x\n{index}\n")
    config = DataSourceConfig(id="files", type="local_file", name="Files", config={"root": str(root)})
    return (lambda: get_connector_class("local_file")(config)), root, tmp_path / "ws" / "files"
