"""LocalFileConnector.fetch_data of a 1 GiB file vs ``cp``, warm and cold page cache.

Run: ``.venv/bin/python -m benchmarks.bench_local [--size-mib 1024] [--repetitions 5]``

Ours includes what cp does not: a sha256 of every byte, the size and
unchanged-source checks, fsync, the atomic rename and the lineage record.
``sha256sum`` alone and ``cp && sha256sum && sync`` run beside them: a single
SHA-256 stream is the bound on any fetch that hashes what it lands. The
cold case drops the page cache before every run (root only), so both read the
source from the disk. The source and every output are under ``$DA_BENCH_DIR``;
each run's output is checked against the source's sha256 before it counts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import (
    PYTHON,
    Candidate,
    compare,
    expect,
    file_sha256,
    landed_with_record,
    report,
    same_file,
    scratch,
    timed_child,
)
from benchmarks.results import begin, write_result


def fetch_once(root: str, identifier: str, workspace: str) -> None:
    """The measured candidate: one fetch (connect included), timed after imports like every Python candidate."""
    from connectors import DataSourceConfig
    from connectors.local_file import LocalFileConnector

    config = DataSourceConfig(id="bench", type="local_file", name="bench", config={"root": root})

    async def main() -> None:
        async with LocalFileConnector(config) as connector:
            await connector.fetch_data(identifier, workspace)

    timed_child(["connectors.local_file"], lambda: asyncio.run(main()))


def make_file(path: Path, size: int) -> None:
    block = os.urandom(1024 * 1024)
    with open(path, "wb") as out:
        for _ in range(size // len(block)):
            out.write(block)
        os.fsync(out.fileno())


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def can_drop_caches() -> bool:
    try:
        drop_caches()
        return True
    except OSError:
        return False


def printed_digest(sha256: str) -> Any:
    def verify(stdout: str) -> None:
        expect(stdout.split()[:1] == [sha256], f"sha256sum printed {stdout[:80]!r}")
    return verify


def candidates(base: Path, cold: bool, sha256: str) -> list[Candidate]:
    source, cp_target, workspace = base / "src" / "big.bin", base / "cp" / "big.bin", base / "ws"

    def clear(path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink() if path.is_file() else shutil.rmtree(path)
        if cold:
            drop_caches()

    return [
        Candidate("cp", ["cp", str(source), str(cp_target)], "coreutils defaults (copy_file_range)",
                  same_file(cp_target, sha256), prepare=lambda: clear(cp_target)),
        # the work cp does not do, as the reference tools do it: the bound on ours
        Candidate("sha256sum", ["sha256sum", str(source)], "one stream", printed_digest(sha256),
                  prepare=lambda: clear(cp_target)),
        Candidate("cp && sha256sum && sync", ["sh", "-c", f"cp {source} {cp_target} && sha256sum {cp_target} "
                  f"&& sync {cp_target}"], "as above, then fsync of the copy", same_file(cp_target, sha256),
                  prepare=lambda: clear(cp_target)),
        Candidate("LocalFileConnector.fetch_data", [PYTHON, "-m", "benchmarks.bench_local", "--fetch-once",
                  str(source.parent), "big.bin", str(workspace)],
                  "copy_file_range 64 MiB chunks + sha256 thread, fsync, lineage record",
                  landed_with_record(workspace / "big.bin", sha256), prepare=lambda: clear(workspace),
                  reports_seconds=True),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--fetch-once", nargs=3, metavar=("ROOT", "ID", "WORKSPACE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fetch_once:
        fetch_once(*args.fetch_once)
        return
    begin()
    size = args.size_mib * 1024 * 1024
    with scratch("da-bench-local-") as base:  # under $DA_BENCH_DIR: the source and every output
        (base / "src").mkdir()
        (base / "cp").mkdir()
        make_file(base / "src" / "big.bin", size)
        sha256 = file_sha256(base / "src" / "big.bin")
        cases = [("warm page cache", False)] + ([("cold page cache", True)] if can_drop_caches() else [])
        tables = [report(f"local_file: {args.size_mib} MiB file, {title}", compare(candidates(base, cold, sha256),
                                                                                   args.repetitions),
                         size_bytes=size, baseline="cp", ours="LocalFileConnector.fetch_data", where=str(base))
                  for title, cold in cases]
    notes = [] if can_drop_caches() else ["cold case skipped: dropping the page cache needs root"]
    for note in notes:
        print(f"({note})", file=sys.stderr)
    write_result("bench_local", tables, notes)


if __name__ == "__main__":
    main()
