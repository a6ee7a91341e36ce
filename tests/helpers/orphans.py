"""Processes for the tests of ``da_pipelines.deploy.exit_with_parent``: a parent that starts a worker.

Run as ``python -m tests.helpers.orphans FOLDER [METHOD]``: the parent starts one worker the way Dagster
starts step workers (a multiprocessing child, spawned, or forked by a fork server as the shard executor
does: METHOD ``forkserver``), writes ``parent.pid`` and ``worker.pid`` in FOLDER once the worker watches
its parent, then sleeps until it is killed.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from pathlib import Path


def worker(folder: str) -> None:
    """Watch the parent (``exit_with_parent``), say so, then idle like a step still landing items."""
    from da_pipelines.deploy import exit_with_parent

    exit_with_parent()
    _write(Path(folder) / "worker.pid", os.getpid())
    while True:
        time.sleep(0.1)


def _write(path: Path, pid: int) -> None:
    staged = path.with_suffix(".tmp")
    staged.write_text(str(pid))
    staged.rename(path)  # the test never reads half a number


def main(folder: str, method: str = "spawn") -> None:
    child = multiprocessing.get_context(method).Process(target=worker, args=(folder,), daemon=False)
    child.start()
    _write(Path(folder) / "parent.pid", os.getpid())
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main(*sys.argv[1:3])
