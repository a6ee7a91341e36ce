"""The CLI starts without loading what its command does not use: pyarrow costs ~0.5 s of CPU per process.

``da-sources fetch`` of 10,000 small files is compared with ``cp -r`` as whole processes
(benchmarks/bench_small_files.py), so its start-up counts.
"""

from __future__ import annotations

import subprocess
import sys


def test_the_cli_and_a_fetch_import_no_pyarrow() -> None:
    code = ("import sys, connectors.cli, connectors.cli.data, connectors.syncing.source_sync, connectors.local_file; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pyarrow'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


def test_the_cli_and_a_fetch_import_none_of_the_http_api() -> None:
    # the api commands import their settings and key store when they run: ~25 ms less at every other start
    code = ("import sys, connectors.cli, connectors.cli.data, connectors.syncing.source_sync, connectors.local_file; "
            "print(sorted(m for m in sys.modules if m.startswith('connectors.api')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"
