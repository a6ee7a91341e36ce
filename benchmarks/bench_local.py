"""LocalFileConnector.fetch_data of a 1 GiB file vs ``cp``, warm and cold page cache.

Run: ``.venv/bin/python -m benchmarks.bench_local [--size-mib 1024] [--repetitions 5]``

Ours includes what cp does not: a sha256 of every byte, the size and
unchanged-source checks, fsync, the atomic rename and the lineage record.
``sha256sum`` alone and ``cp && sha256sum && sync`` run beside them: a single
SHA-256 stream is the bound on any fetch that hashes what it lands. The
cold case drops the page cache before every run (root only), so both read the
source from the disk.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import PYTHON, Candidate, compare, report


def fetch_once(root: str, identifier: str, workspace: str) -> None:
    """The measured candidate: one fetch, printing its seconds last."""
    from connectors import DataSourceConfig
    from connectors.local_file import LocalFileConnector

    config = DataSourceConfig(id="bench", type="local_file", name="bench", config={"root": root})

    async def main() -> float:
        async with LocalFileConnector(config) as connector:
            start = time.perf_counter()
            await connector.fetch_data(identifier, workspace)
            return time.perf_counter() - start

    print(asyncio.run(main()))


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


def candidates(base: Path, cold: bool) -> list[Candidate]:
    source, cp_target, workspace = base / "src" / "big.bin", base / "cp" / "big.bin", base / "ws"

    def clear(path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink() if path.is_file() else shutil.rmtree(path)
        if cold:
            drop_caches()

    return [
        Candidate("cp", ["cp", str(source), str(cp_target)], prepare=lambda: clear(cp_target)),
        # the work cp does not do, as the reference tools do it: the bound on ours
        Candidate("sha256sum", ["sha256sum", str(source)], prepare=lambda: clear(cp_target)),
        Candidate("cp && sha256sum && sync", ["sh", "-c", f"cp {source} {cp_target} && sha256sum {cp_target} "
                  f"&& sync {cp_target}"], prepare=lambda: clear(cp_target)),
        Candidate("LocalFileConnector.fetch_data", [PYTHON, "-m", "benchmarks.bench_local", "--fetch-once",
                  str(source.parent), "big.bin", str(workspace)], prepare=lambda: clear(workspace),
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
    size = args.size_mib * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="da-bench-local-", dir=os.environ.get("BENCH_DIR")) as tmp:
        base = Path(tmp)
        (base / "src").mkdir()
        (base / "cp").mkdir()
        make_file(base / "src" / "big.bin", size)
        cases = [("warm page cache", False)] + ([("cold page cache", True)] if can_drop_caches() else [])
        for title, cold in cases:
            runs = compare(candidates(base, cold), args.repetitions)
            report(f"local_file: {args.size_mib} MiB file, {title}", runs, size_bytes=size, baseline="cp")
    if not can_drop_caches():
        print("(cold case skipped: dropping the page cache needs root)", file=sys.stderr)


if __name__ == "__main__":
    main()
