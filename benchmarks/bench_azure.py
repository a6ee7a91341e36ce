"""Azure Blob connector against curl and the SDK, side by side, on a fresh Azurite per case.

Run: ``.venv/bin/python -m benchmarks.bench_azure [big|many|list ...]`` (all cases by default).

Cases:
    big   one 1 GiB blob: fetch_data (sha256 + size check + fsync + lineage) vs ``curl`` with a
          SAS URL (and ``curl && sha256sum && sync``, the same guarantees by hand) vs the SDK's
          ``download_blob(max_concurrency=4).readinto`` vs adlfs ``get``
    many  2,000 blobs of 10 KiB: fetch_many vs ``curl --parallel --parallel-max 16`` vs a
          loop of fetch_data
    list  10,000 blobs: list_items vs the SDK's bare ``list_blob_names`` pager

Outputs land under ``$DA_BENCH_DIR`` (default: the system temp folder) for
every candidate alike, and the table names that file system. Every candidate
is a child process (``python -m benchmarks.bench_azure worker ...`` or curl),
timed with its peak RSS by :mod:`benchmarks.common`: curl as a whole process,
every Python candidate (ours, the SDK, adlfs) after its own imports. The SDK
and adlfs run both at their defaults and at our settings (8 ranges in flight,
16 MiB ranges where they can be set). Every output is checked (sha256, or
every small file's bytes, or the listed names) before its time counts. The
reference Python tools (adlfs, and the SDK itself) come with
``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.storage.blob import ContainerSasPermissions, generate_container_sas
from azure.storage.blob.aio import BlobServiceClient

from benchmarks.common import (
    PYTHON,
    Candidate,
    compare,
    expect,
    landed_with_record,
    report,
    same_file,
    scratch,
    timed_child,
)
from benchmarks.results import begin, write_result
from connectors.azure_blob.ranged_download import CHUNK
from tests.harness import AzuriteServer, start_azurite

CONTAINER = "bench"
BIG_SIZE = int(os.environ.get("DA_BENCH_AZURE_BIG_MIB", "1024")) * 1024 * 1024  # smaller only while developing
BIG_BLOCK, BIG_SEED = 8 * 1024 * 1024, 2026
OUR_RANGES = f"first GET {CHUNK >> 20} MiB, then {CHUNK >> 20} MiB ranges, 8 in flight"
SMALL_COUNT, SMALL_SIZE = 2000, 10 * 1024
LIST_COUNT = 10_000
ENV_CS = "DA_BENCH_AZURE_CS"


# --- the measured workers (run as child processes) --------------------------------

OURS_IMPORTS = ["connectors.azure_blob"]
# what the SDK imports on its first request (found with DA_BENCH_LATE_IMPORTS)
SDK_IMPORTS = ["azure.storage.blob.aio", "aiohttp", "azure.core.rest._aiohttp",
               "azure.core.rest._http_response_impl_async", "concurrent.futures.thread"]
ADLFS_IMPORTS = ["adlfs", "fsspec", *SDK_IMPORTS]


def _connector(container: str):  # type: ignore[no-untyped-def]
    from connectors import DataSourceConfig
    from connectors.azure_blob import AzureBlobConnector

    config = DataSourceConfig(id="bench", type="azure_blob", name="bench",
                              config={"connection_string": {"env": ENV_CS}, "container_name": container})
    return AzureBlobConnector(config)


def _worker(mode: str, args: list[str]) -> None:
    """Run one measured mode, timed after its imports (connect and work; see :func:`timed_child`)."""
    if mode == "setup-big":  # in a child: the parent's RSS would otherwise count in every fork
        asyncio.run(_upload_big(os.environ[ENV_CS], args[0]))
    elif mode == "adlfs-get":
        timed_child(ADLFS_IMPORTS, lambda: _adlfs_get(*args))
    elif mode in ("fetch", "many", "loop", "list"):
        timed_child(OURS_IMPORTS, lambda: asyncio.run(_ours(mode, args)))
    elif mode in ("sdk-download", "sdk-list"):
        timed_child(SDK_IMPORTS, lambda: asyncio.run(_sdk(mode, args)))
    else:
        raise SystemExit(f"unknown worker mode {mode}")


async def _ours(mode: str, args: list[str]) -> None:
    async with _connector(args[0]) as c:
        if mode == "fetch":
            await c.fetch_data(args[1], args[2])
        elif mode == "many":
            results = await c.fetch_many(_small_names(), args[1], concurrency=16)
            assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
        elif mode == "loop":
            for name in _small_names():
                await c.fetch_data(name, args[1])
        else:
            Path(args[1]).write_text("\n".join(item.path for item in await c.list_items()))


async def _sdk(mode: str, args: list[str]) -> None:
    if mode == "sdk-list":
        async with BlobServiceClient.from_connection_string(os.environ[ENV_CS]) as service:
            names = [n async for n in service.get_container_client(args[0]).list_blob_names()]
        Path(args[1]).write_text("\n".join(names))
        return
    container, blob, target, concurrency, chunk = args
    sizes: dict[str, Any] = {"max_single_get_size": int(chunk), "max_chunk_get_size": int(chunk)} if int(chunk) else {}
    async with BlobServiceClient.from_connection_string(os.environ[ENV_CS], **sizes) as service:
        stream = await service.get_blob_client(container, blob).download_blob(max_concurrency=int(concurrency))
        with open(target, "wb") as out:
            await stream.readinto(out)


def _adlfs_get(container: str, blob: str, target: str, concurrency: str) -> None:
    from adlfs import AzureBlobFileSystem  # the bench extra; fsspec's Azure file system

    fs = AzureBlobFileSystem(connection_string=os.environ[ENV_CS], skip_instance_cache=True)
    fs.get(f"{container}/{blob}", target, max_concurrency=int(concurrency))


def _small_names() -> list[str]:
    return [f"small/{i:05d}.bin" for i in range(SMALL_COUNT)]


def worker_command(mode: str, *args: str) -> list[str]:
    return [PYTHON, "-m", "benchmarks.bench_azure", "worker", mode, *args]


def python_candidate(name: str, command: list[str], settings: str, verify: Any, **options: Any) -> Candidate:
    """A Python worker: timed after its imports (see :func:`timed_child`), RSS of the whole process."""
    return Candidate(name, command, settings, verify, reports_seconds=True, **options)


# --- output checks -----------------------------------------------------------------


def _big_block() -> bytes:
    return random.Random(BIG_SEED).randbytes(BIG_BLOCK)  # noqa: S311 - test data, known to the parent


def _big_sha256() -> str:
    digest, block = hashlib.sha256(), _big_block()
    for _ in range(BIG_SIZE // BIG_BLOCK):
        digest.update(block)
    return digest.hexdigest()


def _all_small(folder: Path, payload: bytes) -> Any:
    def verify(_: str) -> None:
        wrong = [n for n in _small_names() if not (folder / n).is_file() or (folder / n).read_bytes() != payload]
        expect(not wrong, f"{len(wrong)} of {SMALL_COUNT} small blobs missing or wrong under {folder}, e.g. "
                          f"{wrong[:2]}")
    return verify


def _listed(path: Path, names: list[str]) -> Any:
    def verify(_: str) -> None:
        expect(sorted(path.read_text().splitlines()) == names, f"{path}: not the {len(names)} blobs uploaded")
        path.unlink()
    return verify


# --- set-up ------------------------------------------------------------------------


async def _upload_big(connection_string: str, name: str) -> None:
    async with BlobServiceClient.from_connection_string(connection_string) as service:
        container = service.get_container_client(CONTAINER)
        await container.create_container()
        data = _big_block() * (BIG_SIZE // BIG_BLOCK)
        await container.upload_blob(name, data, max_concurrency=4)


async def _upload(server: AzuriteServer, blobs: dict[str, bytes]) -> None:
    async with BlobServiceClient.from_connection_string(server.connection_string) as service:
        container = service.get_container_client(CONTAINER)
        await container.create_container()
        gate = asyncio.Semaphore(32)

        async def one(name: str, payload: bytes) -> None:
            async with gate:
                await container.upload_blob(name, payload)

        await asyncio.gather(*(one(n, d) for n, d in blobs.items()))


def _sas(server: AzuriteServer) -> str:
    return generate_container_sas(server.account_name, CONTAINER, account_key=server.account_key,
                                  permission=ContainerSasPermissions(read=True),
                                  expiry=datetime.now(UTC) + timedelta(hours=2))


def _fresh(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    # the deletes are set-up: flushed now, not charged to whichever candidate syncs the disk next
    os.sync()


# --- the cases ---------------------------------------------------------------------


def bench_big(scratch: Path) -> str:
    sha256 = _big_sha256()
    with start_azurite() as server:
        env = {ENV_CS: server.connection_string}
        subprocess.run(worker_command("setup-big", "big.bin"), env={**os.environ, **env}, check=True)
        url = f"{server.blob_endpoint}/{CONTAINER}/big.bin?{_sas(server)}"
        ws, out = scratch / "ws", scratch / "out"
        target = out / "big.bin"

        def sdk(concurrency: int, chunk: int, settings: str) -> Candidate:
            return python_candidate(f"sdk download_blob(max_concurrency={concurrency})", worker_command(
                "sdk-download", CONTAINER, "big.bin", str(target), str(concurrency), str(chunk)), settings,
                same_file(target, sha256), prepare=lambda: _fresh(out), env=env)

        def adlfs(concurrency: int, settings: str) -> Candidate:
            return python_candidate(f"adlfs get(max_concurrency={concurrency})", worker_command(
                "adlfs-get", CONTAINER, "big.bin", str(target), str(concurrency)), settings,
                same_file(target, sha256), prepare=lambda: _fresh(out), env=env)

        candidates = [
            python_candidate("fetch_data (sha256+lineage)", worker_command("fetch", CONTAINER, "big.bin", str(ws)),
                             f"{OUR_RANGES}; sha256, fsync, lineage record",
                             landed_with_record(ws / "big.bin", sha256), prepare=lambda: _fresh(ws), env=env),
            Candidate("curl", ["curl", "-sf", "-o", str(target), url], "one GET, one stream",
                      same_file(target, sha256), prepare=lambda: _fresh(out)),
            # what our guarantees cost a shell user: the same bytes, hashed and on disk
            Candidate("curl && sha256sum && sync", ["sh", "-c", f"curl -sf -o {target} '{url}' && sha256sum "
                                                    f"{target} >/dev/null && sync -f {target}"],
                      "one GET, then sha256sum, then syncfs", same_file(target, sha256), prepare=lambda: _fresh(out)),
            sdk(4, 0, "SDK defaults: 32 MiB first GET, 4 MiB ranges, 4 in flight; no hash, no fsync"),
            sdk(8, CHUNK, f"as ours: {OUR_RANGES}; no hash, no fsync"),
            adlfs(1, "adlfs default: one GET stream (SDK 32 MiB first GET, 4 MiB ranges); no hash, no fsync"),
            adlfs(8, "8 in flight as ours (SDK 32 MiB first GET, 4 MiB ranges; not settable); no hash, no fsync"),
        ]
        compare(candidates, repetitions=3)
        return report(f"{BIG_SIZE >> 20} MiB blob", candidates, size_bytes=BIG_SIZE, baseline="curl",
                      ours="fetch_data (sha256+lineage)", where=str(scratch))


def bench_many(scratch: Path) -> str:
    payload = os.urandom(SMALL_SIZE)
    blobs = dict.fromkeys(_small_names(), payload)
    with start_azurite() as server:
        asyncio.run(_upload(server, blobs))
        env = {ENV_CS: server.connection_string}
        sas, out, ws = _sas(server), scratch / "out", scratch / "ws"
        config = scratch / "curl.cfg"
        config.write_text("".join(f'url = "{server.blob_endpoint}/{CONTAINER}/{n}?{sas}"\n'
                                  f'output = "{out}/{n}"\n' for n in blobs))
        candidates = [
            python_candidate("fetch_many(concurrency=16)", worker_command("many", CONTAINER, str(ws)),
                             "16 GETs in flight; sha256, lineage records, one syncfs per group",
                             _all_small(ws, payload), prepare=lambda: _fresh(ws), env=env),
            Candidate("curl --parallel --parallel-max 16",
                      ["curl", "-sf", "--parallel", "--parallel-max", "16", "--create-dirs", "-K", str(config)],
                      "16 GETs in flight; no hash, no fsync", _all_small(out, payload), prepare=lambda: _fresh(out)),
            python_candidate("loop of fetch_data", worker_command("loop", CONTAINER, str(ws)),
                             "one GET at a time; sha256, lineage record, 3 fsyncs each",
                             _all_small(ws, payload), prepare=lambda: _fresh(ws), env=env),
        ]
        compare(candidates, repetitions=3)
        return report(f"{SMALL_COUNT} blobs of 10 KiB", candidates, items=SMALL_COUNT,
                      baseline="curl --parallel --parallel-max 16", ours="fetch_many(concurrency=16)",
                      where=str(scratch))


def bench_list(scratch: Path) -> str:
    names = sorted(f"d{i % 10}/{i:06d}.csv" for i in range(LIST_COUNT))
    with start_azurite() as server:
        asyncio.run(_upload(server, dict.fromkeys(names, b"x")))
        env = {ENV_CS: server.connection_string}
        ours, sdks = scratch / "ours.txt", scratch / "sdk.txt"
        candidates = [
            python_candidate("list_items", worker_command("list", CONTAINER, str(ours)),
                             "5,000 per page; size, etag, MD5, metadata per item", _listed(ours, names), env=env),
            python_candidate("sdk list_blob_names", worker_command("sdk-list", CONTAINER, str(sdks)),
                             "service default page (5,000); names only", _listed(sdks, names), env=env),
        ]
        compare(candidates, repetitions=5)
        return report(f"listing {LIST_COUNT} blobs", candidates, items=LIST_COUNT, baseline="sdk list_blob_names",
                      where=str(scratch))


CASES = {"big": bench_big, "many": bench_many, "list": bench_list}


def main(argv: list[str]) -> None:
    if argv[:1] == ["worker"]:
        _worker(argv[1], argv[2:])
        return
    begin()
    tables = []
    for name in argv or list(CASES):
        # DA_BENCH_DIR: where outputs land (both ours and curl's), e.g. /dev/shm to keep a busy disk out
        with scratch(f"da-bench-{name}-") as folder:
            started = time.perf_counter()
            tables.append(CASES[name](folder))
            print(f"({name}: {time.perf_counter() - started:.0f} s including set-up)\n", flush=True)
    print("\n".join(tables))
    write_result("bench_azure" if not argv or argv == list(CASES) else "_".join(["bench_azure", *argv]), tables)


if __name__ == "__main__":
    main(sys.argv[1:])
