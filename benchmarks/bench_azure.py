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
every candidate alike. Every candidate is a child process (``python -m benchmarks.bench_azure worker ...``
or curl), timed with its peak RSS by :mod:`benchmarks.common`. The reference
Python tools (adlfs, and the SDK itself) come with ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from azure.storage.blob import ContainerSasPermissions, generate_container_sas
from azure.storage.blob.aio import BlobServiceClient

from benchmarks.common import PYTHON, Candidate, compare, report
from tests.harness import AzuriteServer, start_azurite

CONTAINER = "bench"
BIG_SIZE = 1024 * 1024 * 1024
SMALL_COUNT, SMALL_SIZE = 2000, 10 * 1024
LIST_COUNT = 10_000
ENV_CS = "DA_BENCH_AZURE_CS"


# --- the measured workers (run as child processes) --------------------------------


def _connector(container: str):  # type: ignore[no-untyped-def]
    from connectors import DataSourceConfig
    from connectors.azure_blob import AzureBlobConnector

    config = DataSourceConfig(id="bench", type="azure_blob", name="bench",
                              config={"connection_string": {"env": ENV_CS}, "container_name": container})
    return AzureBlobConnector(config)


async def _worker(mode: str, args: list[str]) -> None:
    """Run one measured mode and print its seconds: connect and work, not interpreter start-up
    and imports (curl has none; a Dagster step or the CLI pays them once, not per blob)."""
    import connectors.azure_blob  # noqa: F401  (imported before the clock starts)

    started = time.perf_counter()
    await _work(mode, args)
    print(time.perf_counter() - started)


async def _work(mode: str, args: list[str]) -> None:
    if mode == "fetch":
        async with _connector(args[0]) as c:
            await c.fetch_data(args[1], args[2])
    elif mode == "many":
        async with _connector(args[0]) as c:
            names = [f"small/{i:05d}.bin" for i in range(SMALL_COUNT)]
            results = await c.fetch_many(names, args[1], concurrency=16)
            assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    elif mode == "loop":
        async with _connector(args[0]) as c:
            for i in range(SMALL_COUNT):
                await c.fetch_data(f"small/{i:05d}.bin", args[1])
    elif mode == "list":
        async with _connector(args[0]) as c:
            assert len(await c.list_items()) == LIST_COUNT
    elif mode == "setup-big":  # in a child: the parent's RSS would otherwise count in every fork
        await _upload_big(os.environ[ENV_CS], args[0])
    elif mode == "sdk-download":
        async with BlobServiceClient.from_connection_string(os.environ[ENV_CS]) as service:
            stream = await service.get_blob_client(args[0], args[1]).download_blob(max_concurrency=4)
            with open(args[2], "wb") as out:
                await stream.readinto(out)
    elif mode == "adlfs-get":
        await asyncio.to_thread(_adlfs_get, args[0], args[1], args[2])
    elif mode == "sdk-list":
        async with BlobServiceClient.from_connection_string(os.environ[ENV_CS]) as service:
            names = [n async for n in service.get_container_client(args[0]).list_blob_names()]
            assert len(names) == LIST_COUNT
    else:
        raise SystemExit(f"unknown worker mode {mode}")


def _adlfs_get(container: str, blob: str, target: str) -> None:
    from adlfs import AzureBlobFileSystem  # the bench extra; fsspec's Azure file system

    fs = AzureBlobFileSystem(connection_string=os.environ[ENV_CS])
    fs.get(f"{container}/{blob}", target)


def worker_command(mode: str, *args: str) -> list[str]:
    return [PYTHON, "-m", "benchmarks.bench_azure", "worker", mode, *args]


def python_candidate(name: str, command: list[str], **options: object) -> Candidate:
    """A Python worker: timed by what it reports (see ``_worker``), RSS of the whole process."""
    return Candidate(name, command, reports_seconds=True, **options)  # type: ignore[arg-type]


# --- set-up ------------------------------------------------------------------------


async def _upload_big(connection_string: str, name: str) -> None:
    async with BlobServiceClient.from_connection_string(connection_string) as service:
        container = service.get_container_client(CONTAINER)
        await container.create_container()
        block = os.urandom(8 * 1024 * 1024)
        data = b"".join([block] * (BIG_SIZE // len(block)))
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
    with start_azurite() as server:
        env = {ENV_CS: server.connection_string}
        subprocess.run(worker_command("setup-big", "big.bin"), env={**os.environ, **env}, check=True)
        url = f"{server.blob_endpoint}/{CONTAINER}/big.bin?{_sas(server)}"
        ws, out = scratch / "ws", scratch / "out"
        candidates = [
            python_candidate("fetch_data (sha256+lineage)", worker_command("fetch", CONTAINER, "big.bin", str(ws)),
                      prepare=lambda: _fresh(ws), env=env),
            Candidate("curl", ["curl", "-sf", "-o", str(out / "big.bin"), url], prepare=lambda: _fresh(out)),
            # what our guarantees cost a shell user: the same bytes, hashed and on disk
            Candidate("curl && sha256sum && sync", ["sh", "-c", f"curl -sf -o {out}/big.bin '{url}' && sha256sum "
                                                    f"{out}/big.bin >/dev/null && sync -f {out}/big.bin"],
                      prepare=lambda: _fresh(out)),
            python_candidate("sdk download_blob(max_concurrency=4)",
                      worker_command("sdk-download", CONTAINER, "big.bin", str(out / "big.bin")),
                      prepare=lambda: _fresh(out), env=env),
            python_candidate("adlfs get", worker_command("adlfs-get", CONTAINER, "big.bin", str(out / "big.bin")),
                             prepare=lambda: _fresh(out), env=env),
        ]
        compare(candidates, repetitions=3)
        return report("1 GiB blob", candidates, size_bytes=BIG_SIZE, baseline="curl",
                      ours="fetch_data (sha256+lineage)")


def bench_many(scratch: Path) -> str:
    payload = os.urandom(SMALL_SIZE)
    blobs = {f"small/{i:05d}.bin": payload for i in range(SMALL_COUNT)}
    with start_azurite() as server:
        asyncio.run(_upload(server, blobs))
        env = {ENV_CS: server.connection_string}
        sas, out, ws = _sas(server), scratch / "out", scratch / "ws"
        config = scratch / "curl.cfg"
        config.write_text("".join(f'url = "{server.blob_endpoint}/{CONTAINER}/{n}?{sas}"\n'
                                  f'output = "{out}/{n}"\n' for n in blobs))
        candidates = [
            python_candidate("fetch_many(concurrency=16)", worker_command("many", CONTAINER, str(ws)),
                      prepare=lambda: _fresh(ws), env=env),
            Candidate("curl --parallel --parallel-max 16",
                      ["curl", "-sf", "--parallel", "--parallel-max", "16", "--create-dirs", "-K", str(config)],
                      prepare=lambda: _fresh(out)),
            python_candidate("loop of fetch_data", worker_command("loop", CONTAINER, str(ws)),
                      prepare=lambda: _fresh(ws), env=env),
        ]
        compare(candidates, repetitions=3)
        return report(f"{SMALL_COUNT} blobs of 10 KiB", candidates, items=SMALL_COUNT,
                      baseline="curl --parallel --parallel-max 16", ours="fetch_many(concurrency=16)")


def bench_list(scratch: Path) -> str:
    with start_azurite() as server:
        asyncio.run(_upload(server, {f"d{i % 10}/{i:06d}.csv": b"x" for i in range(LIST_COUNT)}))
        env = {ENV_CS: server.connection_string}
        candidates = [
            python_candidate("list_items", worker_command("list", CONTAINER), env=env),
            python_candidate("sdk list_blob_names", worker_command("sdk-list", CONTAINER), env=env),
        ]
        compare(candidates, repetitions=5)
        return report(f"listing {LIST_COUNT} blobs", candidates, items=LIST_COUNT, baseline="sdk list_blob_names")


CASES = {"big": bench_big, "many": bench_many, "list": bench_list}


def main(argv: list[str]) -> None:
    if argv[:1] == ["worker"]:
        asyncio.run(_worker(argv[1], argv[2:]))
        return
    tables = []
    for name in argv or list(CASES):
        # DA_BENCH_DIR: where outputs land (both ours and curl's), e.g. /dev/shm to keep a busy disk out
        with tempfile.TemporaryDirectory(prefix=f"da-bench-{name}-", dir=os.environ.get("DA_BENCH_DIR")) as scratch:
            started = time.perf_counter()
            tables.append(CASES[name](Path(scratch)))
            print(f"({name}: {time.perf_counter() - started:.0f} s including set-up)\n", flush=True)
    print("\n".join(tables))


if __name__ == "__main__":
    main(sys.argv[1:])
