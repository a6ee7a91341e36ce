"""The sync planning (connectors.syncing) runs without Dagster: importing all of it loads no dagster module."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import connectors.syncing


def test_every_syncing_module_imports_without_loading_dagster() -> None:
    modules = [f"connectors.syncing.{m.name}" for m in pkgutil.iter_modules(connectors.syncing.__path__)]
    assert {"connectors.syncing.cursor", "connectors.syncing.dataset_sync", "connectors.syncing.datasets"} <= set(
        modules)
    probe = "; ".join([f"import {m}" for m in modules] + [
        "import sys", "print(sorted(m for m in sys.modules if m.split('.')[0].startswith('dagster')))"])
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"
