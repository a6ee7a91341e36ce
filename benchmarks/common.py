"""Timing commands side by side: one clock for all, settings and outputs checked, medians and ratios.

Every candidate is a command run as a child process, so our code and the
reference tools (cp, curl, psql...) are measured the same way: peak RSS of
that command alone (GNU time), and two clocks:

* **whole process**: wall time around the child, interpreter start-up and
  imports included. Native tools (cp, curl, psql) have only this clock.
* **after imports**: every Python candidate (ours and the reference
  libraries alike) runs through :func:`timed_child`, which imports the
  candidate's modules first and then times the work, printing the seconds as
  its last line. So no Python candidate pays its imports inside the clock
  while another does not.

The table shows both. A ratio compares two candidates on one clock: after
imports when both are Python candidates run through :func:`timed_child`,
otherwise whole process on both sides; each ratio says which it used. Each candidate states
its settings (concurrency, chunk sizes, format) in its row, and its output is
checked after every repetition (untimed): a candidate whose bytes or rows
are wrong fails the benchmark instead of counting. Repetitions interleave the
candidates, so a noisy neighbour slows all of them alike.

Files go under ``$DA_BENCH_DIR`` (default: the system temporary folder); each
table names the file system it ran on.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PYTHON = sys.executable
TIME = shutil.which("time", path="/usr/bin:/bin") or "/usr/bin/time"  # GNU time: peak RSS of the command alone
AFTER_IMPORTS, WHOLE_PROCESS = "after imports", "whole process"
REPORTED: list[dict[str, object]] = []  # every table :func:`report` made in this process, as figures


@dataclass
class Sample:
    seconds: float  # on the candidate's clock (see the module docstring)
    process_seconds: float  # wall time of the whole child process
    peak_rss_mib: float
    cpu_seconds: float = 0.0  # user + system CPU of the child command (GNU time)


@dataclass
class Candidate:
    """A named command with its settings, how to prepare a run (untimed) and how to check its output.

    ``verify`` gets the child's standard output and raises when the output (a
    file, rows, a count) is not what every candidate must produce.
    ``reports_seconds`` marks a Python child run through :func:`timed_child`.
    """

    name: str
    command: list[str]
    settings: str
    verify: Callable[[str], None]
    prepare: Callable[[], None] | None = None
    env: dict[str, str] | None = None
    reports_seconds: bool = False
    samples: list[Sample] = field(default_factory=list)

    @property
    def clock(self) -> str:
        return AFTER_IMPORTS if self.reports_seconds else WHOLE_PROCESS

    @property
    def median_seconds(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def median_process_seconds(self) -> float:
        return statistics.median(s.process_seconds for s in self.samples)

    @property
    def median_cpu_seconds(self) -> float:
        return statistics.median(s.cpu_seconds for s in self.samples)

    @property
    def peak_rss_mib(self) -> float:
        return max(s.peak_rss_mib for s in self.samples)


def timed_child(imports: Sequence[str], work: Callable[[], object]) -> None:
    """In a Python candidate's process: import ``imports``, then time ``work``; print its seconds last.

    List every module the candidate's work would otherwise import on first use
    (drivers, dialects, writers), so the clock holds the work alone, as it does for ours.
    """
    for module in imports:
        importlib.import_module(module)
    before = set(sys.modules)
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    late = os.environ.get("DA_BENCH_LATE_IMPORTS")  # a file: which packages the work imported inside the clock
    if late:
        with open(late, "a") as out:
            packages = sorted(set(sys.modules) - before)
            out.write(f"{' '.join(sys.argv[1:3])}: {' '.join(packages)}\n")
    print(seconds, flush=True)


def run_once(candidate: Candidate) -> tuple[Sample, str]:
    """Run ``candidate`` once: its sample and standard output. Raises when it fails.

    The peak RSS comes from GNU time, which forks the command from its own small
    process: a child forked from this (larger) Python process would report this
    process's peak as its own floor, since the kernel keeps the high-water mark across exec.
    """
    env = {**os.environ, **(candidate.env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as rss:
        start = time.perf_counter()
        process = subprocess.run([TIME, "-f", "%M %U %S", "-o", rss.name, *candidate.command], env=env, stdout=out,
                                 stderr=err, check=False)
        whole = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        measured = (rss.read().strip().splitlines()[-1:] or [""])[0].split()
    if process.returncode != 0:
        raise RuntimeError(f"{candidate.name}: {candidate.command[:3]}... exited {process.returncode}: "
                           f"{stderr[-1500:]}")
    seconds = float(stdout.strip().splitlines()[-1]) if candidate.reports_seconds else whole
    peak_kib, user, system = int(measured[0]), float(measured[1]), float(measured[2])
    return Sample(seconds, whole, peak_kib / 1024, user + system), stdout


def compare(candidates: list[Candidate], repetitions: int,
            run: Callable[[Candidate], tuple[Sample, str]] = run_once) -> list[Candidate]:
    """Run every candidate ``repetitions`` times, interleaved, checking each output; fills their samples.

    ``run``: runs one candidate once (:func:`run_once`, or a wrapper that also observes the run).
    """
    for _ in range(repetitions):
        for candidate in candidates:
            if candidate.prepare:
                candidate.prepare()
            sample, stdout = run(candidate)
            try:
                candidate.verify(stdout)
            except Exception as exc:
                raise RuntimeError(f"{candidate.name}: wrong output, not counted: {exc}") from exc
            candidate.samples.append(sample)
    return candidates


def report(title: str, candidates: list[Candidate], *, size_bytes: int | None = None,
           items: int | None = None, baseline: str | None = None, ours: str | None = None,
           where: str | None = None, cpu: bool = False) -> str:
    """A table of medians, throughput and ratios against ``baseline`` (ours / theirs throughput).

    With ``ours`` (a candidate's name), one more column: how many times faster ``ours`` is than each row.
    With ``cpu``, two more: the child's CPU seconds (user + system, whole process) and their ratio to
    ``baseline``'s (far less sensitive to a shared machine's load than wall time).
    ``where``: the folder the outputs went to; the title names its file system.
    """
    base = next((c for c in candidates if c.name == baseline), None)
    mine = next((c for c in candidates if c.name == ours), None)
    extra = (f" {ours} speed-up |" if mine else "") + (f" CPU s | CPU s / {baseline or '-'}'s |" if cpu else "")
    heading = f"## {title}" + (f" — outputs on {describe_filesystem(where)}" if where else "")
    header = (f"| candidate | settings | clock | median s | whole process s | throughput | "
              f"ratio vs {baseline or '-'} | peak RSS MiB | runs |{extra}")
    rule = "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if mine else "") + (
        " ---: | ---: |" if cpu else "")
    lines = [heading, "", header, rule]
    for c in candidates:
        ratio = same_clock_ratio(base, c) if base else "-"
        speedup = f" {same_clock_ratio(c, mine)} |" if mine else ""
        if cpu:
            # GNU time counts CPU in 10 ms ticks: a short baseline may show none
            ticked = base is not None and base.median_cpu_seconds > 0
            cpu_ratio = f"{c.median_cpu_seconds / base.median_cpu_seconds:.2f}x" if base and ticked else "-"
            speedup += f" {c.median_cpu_seconds:.2f} | {cpu_ratio} |"
        lines.append(f"| {c.name} | {c.settings} | {c.clock} | {c.median_seconds:.3f} | "
                     f"{c.median_process_seconds:.3f} | {_throughput(c, size_bytes, items)} | {ratio} | "
                     f"{c.peak_rss_mib:.0f} | {len(c.samples)} |" + speedup)
    text = "\n".join(lines) + "\n"
    REPORTED.append({"title": title, "baseline": baseline, "candidates": [
        {"name": c.name, "settings": c.settings, "clock": c.clock, "median_s": c.median_seconds,
         "median_process_s": c.median_process_seconds, "peak_rss_mib": c.peak_rss_mib, "runs": len(c.samples),
         **({"median_cpu_s": c.median_cpu_seconds} if cpu else {})}
        for c in candidates]})
    print(text, flush=True)
    return text


def same_clock(a: Candidate, b: Candidate) -> tuple[float, float, str]:
    """The medians of ``a`` and ``b`` on one clock, and its name: after imports if both have it, else whole process."""
    if a.clock == b.clock == AFTER_IMPORTS:
        return a.median_seconds, b.median_seconds, AFTER_IMPORTS
    return a.median_process_seconds, b.median_process_seconds, WHOLE_PROCESS


def same_clock_ratio(a: Candidate, b: Candidate) -> str:
    """``a``'s time over ``b``'s on one clock (how many times faster ``b`` is), labelled with the clock."""
    seconds_a, seconds_b, clock = same_clock(a, b)
    return f"{seconds_a / seconds_b:.2f}x ({clock})"


def _throughput(c: Candidate, size_bytes: int | None, items: int | None) -> str:
    if size_bytes:
        return f"{size_bytes / c.median_seconds / 1e6:,.0f} MB/s"
    if items:
        return f"{items / c.median_seconds:,.0f} items/s"
    return "-"


# --- where the files go ------------------------------------------------------------


def bench_dir() -> str:
    """``$DA_BENCH_DIR``, or the system temporary folder: where every benchmark writes its files."""
    return os.environ.get("DA_BENCH_DIR") or tempfile.gettempdir()


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A fresh folder under :func:`bench_dir`, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix, dir=bench_dir()) as folder:
        yield Path(folder)


def describe_filesystem(path: str | os.PathLike[str]) -> str:
    """The file system ``path`` is on, e.g. ``ext4 (/ on /dev/vda1)``, from the mount table."""
    real = os.path.realpath(path)
    best = ("?", "/", "?")
    for line in Path("/proc/self/mounts").read_text().splitlines():
        device, mount_point, fstype = line.split()[:3]
        mount_point = mount_point.replace("\\040", " ")
        inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best[1]):  # the deepest mount holding it (the last wins a tie)
            best = (device, mount_point, fstype)
    device, mount_point, fstype = best
    return f"{fstype} ({real} on {mount_point}, {device})"


# --- output checks -----------------------------------------------------------------


def file_sha256(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as source:
        return hashlib.file_digest(source, "sha256").hexdigest()


def expect(condition: bool, message: str) -> None:
    """Raise ``AssertionError(message)`` unless ``condition`` (kept when Python runs with -O)."""
    if not condition:
        raise AssertionError(message)


def same_file(path: str | os.PathLike[str], sha256: str) -> Callable[[str], None]:
    """A check: the file at ``path`` has exactly the bytes whose digest is ``sha256``."""
    def verify(_: str) -> None:
        expect(Path(path).is_file(), f"{path} was not written")
        digest = file_sha256(path)
        expect(digest == sha256, f"{path}: sha256 {digest[:12]}..., expected {sha256[:12]}...")
    return verify


def landed_with_record(path: str | os.PathLike[str], sha256: str) -> Callable[[str], None]:
    """A check for ours: the landed bytes, and a lineage record that names the same digest."""
    check_bytes = same_file(path, sha256)

    def verify(stdout: str) -> None:
        from connectors import read_provenance

        check_bytes(stdout)
        expect(read_provenance(path)["sha256"] == sha256, f"{path}: its lineage record names another sha256")
    return verify
