"""Timing commands side by side: wall time and the peak RSS of each run, medians and ratios.

Every candidate is a command run as a child process, so our code and the
reference tools (cp, curl, psql...) are measured the same way: wall-clock time
around the process, peak RSS from ``wait4`` for that child alone. Repetitions
interleave the candidates, so a noisy neighbour slows all of them alike.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

PYTHON = sys.executable


@dataclass
class Sample:
    seconds: float
    peak_rss_mib: float


@dataclass
class Candidate:
    """A named command; ``prepare`` runs before each repetition (untimed), e.g. to remove output."""

    name: str
    command: list[str]
    prepare: Callable[[], None] | None = None
    env: dict[str, str] | None = None
    # the command prints the seconds of the measured work as its last line (so
    # interpreter start-up and imports are not counted against it)
    reports_seconds: bool = False
    samples: list[Sample] = field(default_factory=list)

    @property
    def median_seconds(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def peak_rss_mib(self) -> float:
        return max(s.peak_rss_mib for s in self.samples)


def run_once(command: list[str], env: dict[str, str] | None = None, reports_seconds: bool = False) -> Sample:
    """Run ``command``; its wall time (or the time it reports) and peak RSS. Raises when it fails."""
    full_env = {**os.environ, **(env or {})}
    start = time.perf_counter()
    stdout = subprocess.PIPE if reports_seconds else subprocess.DEVNULL
    process = subprocess.Popen(command, env=full_env, stdout=stdout, stderr=subprocess.PIPE)
    output = process.stdout.read().decode() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if reports_seconds:
        seconds = float(output.strip().splitlines()[-1])
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        error = process.stderr.read().decode(errors="replace") if process.stderr else ""
        raise RuntimeError(f"{command[:3]}... exited {process.returncode}: {error[-1500:]}")
    if process.stderr:
        process.stderr.close()
    return Sample(seconds, usage.ru_maxrss / 1024)


def compare(candidates: list[Candidate], repetitions: int) -> list[Candidate]:
    """Run every candidate ``repetitions`` times, interleaved; fills their samples."""
    for _ in range(repetitions):
        for candidate in candidates:
            if candidate.prepare:
                candidate.prepare()
            candidate.samples.append(run_once(candidate.command, candidate.env, candidate.reports_seconds))
    return candidates


def report(title: str, candidates: list[Candidate], *, size_bytes: int | None = None,
           items: int | None = None, baseline: str | None = None, ours: str | None = None) -> str:
    """A table of medians, throughput and ratios against ``baseline`` (ours / theirs throughput).

    With ``ours`` (a candidate's name), one more column: how many times faster ``ours`` is than each row.
    """
    base = next((c for c in candidates if c.name == baseline), None)
    mine = next((c for c in candidates if c.name == ours), None)
    extra = f" {ours} speed-up |" if mine else ""
    header = f"| candidate | median s | throughput | ratio vs {baseline or '-'} | peak RSS MiB | runs |{extra}"
    lines = [f"## {title}", "", header, "| --- | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if mine else "")]
    for c in candidates:
        ratio = base.median_seconds / c.median_seconds if base else float("nan")
        speedup = f" {c.median_seconds / mine.median_seconds:.2f}x |" if mine else ""
        lines.append(f"| {c.name} | {c.median_seconds:.3f} | {_throughput(c, size_bytes, items)} | "
                     f"{ratio:.2f} | {c.peak_rss_mib:.0f} | {len(c.samples)} |" + speedup)
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    return text


def _throughput(c: Candidate, size_bytes: int | None, items: int | None) -> str:
    if size_bytes:
        return f"{size_bytes / c.median_seconds / 1e6:,.0f} MB/s"
    if items:
        return f"{items / c.median_seconds:,.0f} items/s"
    return "-"
