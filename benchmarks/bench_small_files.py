"""``da-sources fetch --all`` of many small local files vs ``cp -r`` with and without hashing, on two file systems.

Run: ``.venv/bin/python -m benchmarks.bench_small_files [--count 10000] [--size 4096] [--repetitions 3]
[--tmpfs DIR] [--ext4 DIR | --ext4-loop] [--skip-bench-dir] [--before CONSOLE]``

Candidates, each a whole process timed the same way (:mod:`benchmarks.common`):

- ``da-sources fetch SRC --all``: every file landed atomically (temporary, rename),
  its sha256 computed, a lineage record per file, durable before the command
  reports success (group commit: one ``syncfs`` per group of files);
- ``cp -r && find | xargs sha256sum && sync -f``: the same guarantees by hand (a
  copy, a digest of every file, the file system synced once);
- ``cp -r && sync -f``: a bare copy made durable, no digest, no record;
- the floor (:mod:`benchmarks.floor_small_files`): a minimal Python program with our
  guarantees (no link followed, locked temporaries, sha256, a record per file, syncfs
  before and after the renames), in one process and in two (forked): how fast Python
  can go at all here, the reference for what is left of ours beyond it.

``sync -f`` is ``syncfs`` of the output's file system (not ``sync``, which would
flush every file system of the machine, neighbours' writes included), as our
fetch does. The source and outputs are under ``$DA_BENCH_DIR`` (the work disk)
and, with ``--tmpfs DIR`` (a tmpfs mount point; mount one as root:
``mount -t tmpfs -o size=2g tmpfs DIR``), under that too.

On the work disk ``sync -f`` flushes the whole root file system, other jobs'
writes included, which drowns the figures in noise. ``--ext4 DIR`` runs on a
dedicated ext4 file system mounted at DIR, whose ``syncfs`` flushes the
benchmark's own writes only; ``--ext4-loop`` makes one for the run (as root: a
2 GiB image under ``$DA_BENCH_DIR``, ``mkfs.ext4``, a loop mount, unmounted and
deleted afterwards). ``--skip-bench-dir`` leaves out the work disk itself.

Each output is checked after every run: every file there (and, for ours, one
lineage record per file). Targets: ours at most the time of ``cp && sha256sum
&& sync`` and at most 2x ``cp && sync``, on both file systems.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from benchmarks.common import PYTHON, Candidate, compare, expect, report, scratch
from benchmarks.results import begin, write_result

CONSOLE = str(Path(sys.executable).with_name("da-sources"))
FLOOR = str(Path(__file__).with_name("floor_small_files.py"))
LINEAGE = ".lineage"
SOURCE_ID = "small"


def make_files(root: Path, count: int, size: int) -> None:
    for folder in range(10):
        (root / f"d{folder}").mkdir(parents=True)
    for index in range(count):
        (root / f"d{index % 10}" / f"f{index:07d}.bin").write_bytes(os.urandom(size))


def counted(folder: Path, count: int, records: bool) -> None:
    files = sum(len([f for f in names if not f.startswith(".")]) for path, _, names in os.walk(folder)
                if LINEAGE not in Path(path).parts)
    expect(files == count, f"{folder}: {files} files, expected {count}")
    if records:
        landed = sum(len(names) for path, _, names in os.walk(folder) if LINEAGE in Path(path).parts)
        expect(landed >= count, f"{folder}: {landed} lineage records, expected {count}")


def fresh(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def candidates(base: Path, count: int, before: str | None = None) -> list[Candidate]:
    src, ws, cp_out, floor_out = base / "src", base / "ws", base / "cp", base / "floor"
    sources = base / "sources.yaml"
    sources.write_text(json.dumps({"sources": [{"id": SOURCE_ID, "type": "local_file", "name": SOURCE_ID,
                                                "config": {"root": str(src)}}]}))
    env = {"DA_SOURCES_FILE": str(sources)}
    others = [] if before is None else [
        Candidate("da-sources fetch --all (before)", [before, "fetch", SOURCE_ID, "--all", "--workspace", str(ws)],
                  f"another build: {before}", lambda _: counted(ws / SOURCE_ID, count, True),
                  prepare=lambda: fresh(ws), env=env)]
    return [
        Candidate("da-sources fetch --all", [CONSOLE, "fetch", SOURCE_ID, "--all", "--workspace", str(ws)],
                  "default settings: atomic rename, sha256, a lineage record per file, group commit (syncfs)",
                  lambda _: counted(ws / SOURCE_ID, count, True), prepare=lambda: fresh(ws), env=env),
        *others,
        *(Candidate(f"floor: minimal Python, same guarantees ({workers} process{'es' if workers > 1 else ''})",
                    [PYTHON, FLOOR, str(src), str(floor_out), "--workers", str(workers)],
                    "benchmarks/floor_small_files.py: locked temporaries, sha256, a record per file, syncfs twice",
                    lambda _: counted(floor_out, count, True), prepare=lambda: fresh(floor_out))
          for workers in (1, 2)),
        Candidate("cp -r, sha256sum of each (find, xargs), sync -f",
                  ["sh", "-c", f"cp -r {src} {cp_out} && find {cp_out} -type f -print0 | xargs -0 sha256sum "
                   f"> /dev/null && sync -f {cp_out}"],
                  "coreutils; syncfs once", lambda _: counted(cp_out, count, False), prepare=lambda: fresh(cp_out)),
        Candidate("cp -r && sync -f", ["sh", "-c", f"cp -r {src} {cp_out} && sync -f {cp_out}"],
                  "coreutils; syncfs once", lambda _: counted(cp_out, count, False), prepare=lambda: fresh(cp_out)),
    ]


def compiled() -> None:
    """Write the bytecode of this checkout's package, as an installed one has it (pip compiles at install).

    Under ``PYTHONDONTWRITEBYTECODE`` a module changed since its bytecode was written is
    otherwise compiled again at every start of ours, which a user's install never does.
    """
    import connectors

    compileall.compile_dir(str(Path(connectors.__file__).parent), quiet=1)


def run_on(base: Path, count: int, size: int, repetitions: int, before: str | None = None) -> str:
    compiled()
    make_files(base / "src", count, size)
    os.sync()
    runs = compare(candidates(base, count, before), repetitions)
    return report(f"{count:,} x {size} B files", runs, items=count, baseline="cp -r && sync -f",
                  ours="da-sources fetch --all", where=str(base), cpu=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--tmpfs", help="a tmpfs mount point to run on as well")
    parser.add_argument("--ext4", help="a dedicated ext4 mount point to run on as well (syncfs flushes only ours)")
    parser.add_argument("--ext4-loop", action="store_true",
                        help="as root: make a 2 GiB ext4 file system on a loop device for the run, then remove it")
    parser.add_argument("--skip-bench-dir", action="store_true", help="do not run on $DA_BENCH_DIR itself")
    parser.add_argument("--before", metavar="CONSOLE",
                        help="another build's da-sources script, run side by side (e.g. main's, for before/after)")
    args = parser.parse_args()
    begin()
    tables = []
    if not args.skip_bench_dir:
        with scratch("da-bench-small-") as base:
            tables.append(run_on(base, args.count, args.size, args.repetitions, args.before))
    with contextlib.ExitStack() as stack:
        mounts = [args.tmpfs] if args.tmpfs else []
        if args.ext4 or args.ext4_loop:
            mounts.append(args.ext4 or str(stack.enter_context(loop_ext4())))
        for mount in mounts:
            tables.append(run_in(Path(mount), args))
    write_result("bench_small_files", tables, [
        "whole processes: ours includes the interpreter's start-up and imports",
        "every candidate makes its output durable with syncfs of the output's file system (sync -f)"])


def run_in(mount: Path, args: argparse.Namespace) -> str:
    """The run in a folder of its own under a mount point, removed afterwards."""
    base = mount / "da-bench-small"
    fresh(base)
    base.mkdir()
    try:
        return run_on(base, args.count, args.size, args.repetitions, args.before)
    finally:
        fresh(base)


@contextlib.contextmanager
def loop_ext4(size: str = "2G") -> Iterator[Path]:
    """A fresh ext4 file system on a loop device, mounted at a new folder; unmounted and deleted afterwards."""
    with scratch("da-bench-ext4-") as folder:
        image, mount = folder / "ext4.img", folder / "mnt"
        mount.mkdir()
        subprocess.run(["truncate", "-s", size, str(image)], check=True)
        subprocess.run(["mkfs.ext4", "-q", str(image)], check=True)
        subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
        try:
            yield mount
        finally:
            subprocess.run(["umount", str(mount)], check=True)  # the loop device is freed with it


if __name__ == "__main__":
    main()
