"""The result file every benchmark writes: its tables with where, when and how they were measured.

``write_result("bench_x", tables, notes, data)`` writes ``benchmarks/results/bench_x.md``
and ``bench_x.json`` (or under ``$DA_BENCH_RESULTS``, which the test suite points at a
temporary folder). Both carry the commit (``-dirty`` when the tree differs from it,
result files aside), the machine (cores, CPU model, memory, the file systems of the
benchmark folder and of the temporary folder), the load average at the start and the
end of the run, the date and the exact command line. The docs quote these files only.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "benchmarks" / "results"
HEADER_FIELDS = ("commit", "date", "command", "machine", "file systems", "load average")
SHARED = ("the machine may be shared with other jobs (see the load average): compare ratios taken in "
          "the same run, not absolute times across runs")

_STARTED = (time.time(), os.getloadavg())  # when the benchmark's process imported this module
_COMMIT: list[str] = []  # the commit when the run started (see run_header)
# the settings the command was given (a benchmark sets more for its own children: not part of the command)
_SETTINGS = {k: v for k, v in os.environ.items() if k.startswith("DA_BENCH_") and k not in ("DA_BENCH_NOTE",
                                                                                              "DA_BENCH_RESULTS")}


def begin() -> None:
    """Note the commit now, at the start of a run: a commit made while it runs is not the one measured."""
    _COMMIT[:] = [commit()]


def results_dir() -> Path:
    """``$DA_BENCH_RESULTS``, or the committed ``benchmarks/results/``."""
    return Path(os.environ.get("DA_BENCH_RESULTS") or COMMITTED)


def write_result(bench: str, tables: str | Sequence[str], notes: Sequence[str] = (),
                 data: Mapping[str, Any] | None = None) -> Path:
    """Write ``<bench>.md`` and ``<bench>.json`` under :func:`results_dir`; the Markdown file's path.

    Args:
        bench: the file's stem, e.g. ``bench_api`` (a benchmark with variants adds a suffix).
        tables: Markdown tables (or any Markdown) as the benchmark printed them.
        notes: sentences on how to read the figures; ``$DA_BENCH_NOTE`` (e.g. "shared machine") is added.
        data: the figures as values, for tests and other tools (stored under ``data`` in the JSON,
            beside ``reports``: every table :func:`benchmarks.common.report` made in this process).
    """
    header = run_header()
    texts = [tables] if isinstance(tables, str) else list(tables)
    every_note = [*notes, *([os.environ["DA_BENCH_NOTE"]] if os.environ.get("DA_BENCH_NOTE") else []), SHARED]
    folder = results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    from benchmarks.common import REPORTED

    figures = {**({"reports": REPORTED} if REPORTED else {}), **(data or {})}
    record = {"bench": bench, **header, "notes": every_note, "tables": texts, "data": figures}
    (folder / f"{bench}.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    path = folder / f"{bench}.md"
    path.write_text(render(bench, header, every_note, texts))
    print(f"(results written to {path})", flush=True)
    return path


def render(bench: str, header: Mapping[str, Any], notes: Sequence[str], tables: Sequence[str]) -> str:
    """The Markdown result file: a header list (one line per :data:`HEADER_FIELDS`), notes, tables."""
    machine, load = header["machine"], header["load_average"]
    lines = [f"# {bench}", "",
             f"- commit: `{header['commit']}`",
             f"- date: {header['date']} (took {header['seconds']:.0f} s)",
             f"- command: `{header['command']}`",
             f"- machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']} GiB memory, "
             f"{machine['system']}, Python {machine['python']}",
             f"- file systems: benchmark folder {machine['bench_dir_fs']}; temporary folder {machine['temp_dir_fs']}",
             f"- load average (1, 5, 15 min): {_load(load['start'])} at the start, {_load(load['end'])} at the end",
             *(f"- note: {note}" for note in notes), ""]
    return "\n".join(lines) + "\n" + "\n".join(text.rstrip() + "\n" for text in tables)


def run_header() -> dict[str, Any]:
    """Commit, date, command, machine and load average of this run (see the module docstring)."""
    started, load_at_start = _STARTED
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return {"commit": _COMMIT[0] if _COMMIT else commit(), "date": date,
            "seconds": time.time() - started, "command": command_line(), "machine": machine(),
            "load_average": {"start": list(load_at_start), "end": list(os.getloadavg())}}


def commit() -> str:
    """``git rev-parse HEAD``, with ``-dirty`` when tracked files differ (result files aside)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/results")
    return head + ("-dirty" if changed else "")


def command_line() -> str:
    """The command as typed, repository paths made relative, with the ``DA_BENCH_*`` settings it was given."""
    argv = [_relative(arg) for arg in getattr(sys, "orig_argv", sys.argv)]
    return shlex.join([*(f"{k}={v}" for k, v in sorted(_SETTINGS.items())), *argv])


def machine() -> dict[str, Any]:
    from benchmarks.common import bench_dir, describe_filesystem

    return {"cores": os.cpu_count(), "cpu": _cpu_model(), "memory_gib": round(_memory_bytes() / 2**30, 1),
            "system": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "bench_dir_fs": describe_filesystem(bench_dir()), "temp_dir_fs": describe_filesystem(tempfile.gettempdir())}


def _relative(arg: str) -> str:
    path = Path(arg)
    if path.is_absolute() and path.is_relative_to(REPO):
        return str(path.relative_to(REPO))
    return arg


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _load(values: Sequence[float]) -> str:
    return " ".join(f"{v:.1f}" for v in values)
