"""What a whole process tree uses while a benchmark's command runs: peak memory and CPU, sampled.

GNU time reports the largest single process's peak RSS and the CPU of the children that
were waited for. A sharded Dagster run is a tree: the run's process, a fork server and the
step processes it forks (children of the fork server, not of the run), so neither figure
covers it. :class:`TreeUsage` samples every descendant of this process from ``/proc``
(Linux) every ``interval`` seconds:

* memory: the sum of the processes' PSS (proportional set size: a page shared by N processes,
  as a forked child shares its fork server's, counts 1/N in each), so the sum is what the
  tree holds, not each copy of the same pages; the peak of that sum is reported;
* CPU: user + system seconds of every process seen, as last sampled (a process's last
  ``interval`` before it exits is missed).

Elsewhere (no ``/proc``) both stay 0.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class TreeUsage:
    """Samples this process's descendants while in a ``with`` block: ``peak_mib`` and ``cpu_seconds`` after."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peak_mib = 0.0
        self._cpu: dict[tuple[int, int], float] = {}  # (pid, start time): CPU seconds last seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-usage", daemon=True)

    @property
    def cpu_seconds(self) -> float:
        return sum(self._cpu.values())

    def __enter__(self) -> TreeUsage:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        """Add one sample of the descendants' PSS (the peak kept) and CPU."""
        total_kib = 0
        for pid in descendants(os.getpid()):
            stat = _stat(pid)
            if stat is None:
                continue
            started, cpu = stat
            self._cpu[(pid, started)] = cpu
            total_kib += _pss_kib(pid)
        self.peak_mib = max(self.peak_mib, total_kib / 1024)


def descendants(root: int) -> list[int]:
    """Every process below ``root`` (children, their children...), from ``/proc``; empty without it."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if entry.isdigit():
            stat = _fields(int(entry))
            if stat is not None:
                children.setdefault(int(stat[1]), []).append(int(entry))
    found, stack = [], list(children.get(root, []))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def _fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` after the command's name (state, ppid, ...), or None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def _stat(pid: int) -> tuple[int, float] | None:
    """The process's start time (clock ticks since boot) and its user + system CPU seconds."""
    fields = _fields(pid)
    if fields is None:
        return None
    return int(fields[19]), (int(fields[11]) + int(fields[12])) / _TICKS


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
