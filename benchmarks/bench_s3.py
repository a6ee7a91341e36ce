"""The s3 connector against curl, ``aws s3 cp``, obstore and aiobotocore, and against our Azure path.

Run: ``.venv/bin/python -m benchmarks.bench_s3 [big|many ...]`` (both by default); the
reference libraries come with ``pip install -e '.[bench]'``.

Cases (each on a fresh local S3 server started by ``tests.harness``: s3rver, or moto with
``DA_BENCH_S3_SERVER=moto``; both check signatures):
    big   one 1 GiB object (``DA_BENCH_S3_BIG_MIB``): fetch_data (ranged GETs, sha256, ETag-MD5,
          fsync, lineage) vs ``curl`` of a presigned URL vs ``aws s3 cp`` (when the AWS CLI is
          installed) vs obstore and aiobotocore doing the same ranged GETs into a file
    many  10,000 objects of 1 KiB (``DA_BENCH_S3_COUNT``): fetch_many on S3 vs fetch_many of the
          same blobs on Azurite (our Azure path, in the same run) vs obstore and aiobotocore
          getting them 16 at a time into files

Every candidate is a child process timed after its imports (:mod:`benchmarks.common`),
its output checked before its time counts. Both servers are emulators written in
Python (moto) and Node (Azurite): on loopback they, not the clients, set the ceiling,
so the ratios say how close each client gets to what the server can give.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
import random
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
from tests.harness import S3Server, start_azurite, start_s3, start_s3rver

BUCKET = "bench"
BIG_SIZE = int(os.environ.get("DA_BENCH_S3_BIG_MIB", "1024")) * 1024 * 1024
BIG_BLOCK, BIG_SEED = 8 * 1024 * 1024, 2027
RANGE, IN_FLIGHT = 16 * 1024 * 1024, 8
SMALL_COUNT = int(os.environ.get("DA_BENCH_S3_COUNT", "10000"))
SMALL_SIZE = 1024
REPS = int(os.environ.get("DA_BENCH_S3_REPS", "3"))  # runs per candidate (medians)
# s3rver by default: moto copies the whole object for every ranged GET (O(size) per range), so on moto
# any ranged client loses to one stream by a factor that grows with the object; s3rver reads the range only
SERVER = os.environ.get("DA_BENCH_S3_SERVER", "s3rver")
ENV = {"key": "DA_BENCH_S3_KEY", "secret": "DA_BENCH_S3_SECRET", "endpoint": "DA_BENCH_S3_ENDPOINT",
       "azure": "DA_BENCH_AZURE_CS"}


# --- the measured workers (child processes) -----------------------------------------


def _s3_connector(**settings: Any) -> Any:
    from connectors import DataSourceConfig
    from connectors.s3 import S3Connector

    return S3Connector(DataSourceConfig(id="bench", type="s3", name="bench", config={
        "bucket": BUCKET, "endpoint_url": os.environ[ENV["endpoint"]],
        "access_key_id": {"env": ENV["key"]}, "secret_access_key": {"env": ENV["secret"]}, **settings}))


def _azure_connector() -> Any:
    from connectors import DataSourceConfig
    from connectors.azure_blob import AzureBlobConnector

    return AzureBlobConnector(DataSourceConfig(id="bench", type="azure_blob", name="bench", config={
        "connection_string": {"env": ENV["azure"]}, "container_name": BUCKET}))


async def _ours(connector: Any, mode: str, args: list[str]) -> None:
    async with connector as c:
        if mode == "fetch":
            await c.fetch_data(args[0], args[1])
        else:
            results = await c.fetch_many(_small_names(), args[0], concurrency=16)
            expect(all(r.ok for r in results), str([r.error for r in results if not r.ok][:3]))


def _obstore_store() -> Any:
    from obstore.store import S3Store

    config: Any = {
        "endpoint": os.environ[ENV["endpoint"]], "access_key_id": os.environ[ENV["key"]],
        "secret_access_key": os.environ[ENV["secret"]], "region": "us-east-1", "allow_http": True,
        "virtual_hosted_style_request": False}
    return S3Store(BUCKET, config=config)


async def _obstore(mode: str, args: list[str]) -> None:
    import obstore

    store = _obstore_store()
    if mode == "obstore-big":
        size = (await obstore.head_async(store, args[0]))["size"]

        async def get(start: int, end: int) -> bytes:
            return bytes(await obstore.get_range_async(store, args[0], start=start, end=end))

        await _ranged_into(get, size, args[1])
        return
    gate = asyncio.Semaphore(16)

    async def one(name: str) -> None:
        async with gate:
            data = await (await obstore.get_async(store, name)).bytes_async()
        _write(Path(args[0]) / name, bytes(data))

    await asyncio.gather(*(one(n) for n in _small_names()))


async def _aiobotocore(mode: str, args: list[str]) -> None:
    from aiobotocore.session import get_session
    from botocore.config import Config

    config = Config(s3={"addressing_style": "path"}, max_pool_connections=32)
    async with get_session().create_client(
            "s3", endpoint_url=os.environ[ENV["endpoint"]], region_name="us-east-1", config=config,
            aws_access_key_id=os.environ[ENV["key"]], aws_secret_access_key=os.environ[ENV["secret"]]) as s3:
        if mode == "aiobotocore-big":
            size = (await s3.head_object(Bucket=BUCKET, Key=args[0]))["ContentLength"]

            async def get(start: int, end: int) -> bytes:
                answer = await s3.get_object(Bucket=BUCKET, Key=args[0], Range=f"bytes={start}-{end - 1}")
                async with answer["Body"] as body:
                    return bytes(await body.read())

            await _ranged_into(get, size, args[1])
            return
        gate = asyncio.Semaphore(16)

        async def one(name: str) -> None:
            async with gate:
                answer = await s3.get_object(Bucket=BUCKET, Key=name)
                async with answer["Body"] as body:
                    data = await body.read()
            _write(Path(args[0]) / name, data)

        await asyncio.gather(*(one(n) for n in _small_names()))


async def _ranged_into(get: Any, size: int, target: str) -> None:
    """``IN_FLIGHT`` ranged GETs of ``RANGE`` bytes, each written at its offset (what ours does, minus the checks)."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        ranges = iter(range(0, size, RANGE))

        async def worker() -> None:
            for start in ranges:
                data = await get(start, min(start + RANGE, size))
                await asyncio.to_thread(os.pwrite, fd, data, start)

        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    finally:
        os.close(fd)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _worker(mode: str, args: list[str]) -> None:
    if mode == "setup-big":
        _put_big(args[0])
    elif mode in ("fetch", "many"):
        timed_child(["connectors.s3"], lambda: asyncio.run(_ours(_s3_connector(), mode, args)))
    elif mode == "fetch-sha256-only":  # the work of an object with a stored x-amz-checksum-sha256: no MD5
        timed_child(["connectors.s3"], lambda: asyncio.run(_ours(_s3_connector(verify_etag_md5=False), "fetch", args)))
    elif mode == "azure-many":
        timed_child(["connectors.azure_blob"], lambda: asyncio.run(_ours(_azure_connector(), "many", args)))
    elif mode.startswith("obstore"):
        timed_child(["obstore", "obstore.store"], lambda: asyncio.run(_obstore(mode, args)))
    elif mode.startswith("aiobotocore"):
        timed_child(["aiobotocore.session", "aiohttp"], lambda: asyncio.run(_aiobotocore(mode, args)))
    else:
        raise SystemExit(f"unknown worker mode {mode}")


def worker_command(mode: str, *args: str) -> list[str]:
    return [PYTHON, "-m", "benchmarks.bench_s3", "worker", mode, *args]


def _timed(name: str, command: list[str], settings: str, verify: Any, **options: Any) -> Candidate:
    return Candidate(name, command, settings, verify, reports_seconds=True, **options)


# --- set-up and checks ---------------------------------------------------------------


def _big_block() -> bytes:
    return random.Random(BIG_SEED).randbytes(BIG_BLOCK)  # noqa: S311 - test data


def _big_sha256() -> str:
    digest, block = hashlib.sha256(), _big_block()
    for _ in range(BIG_SIZE // BIG_BLOCK):
        digest.update(block)
    return digest.hexdigest()


def _put_big(key: str) -> None:  # one PutObject: a single-part ETag, so ours also checks the MD5
    client = _client(os.environ[ENV["endpoint"]])
    client.put_object(Bucket=BUCKET, Key=key, Body=_big_block() * (BIG_SIZE // BIG_BLOCK))


def _client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=os.environ[ENV["key"]], aws_secret_access_key=os.environ[ENV["secret"]],
                        config=Config(s3={"addressing_style": "path"}, max_pool_connections=32,
                                                  signature_version="s3v4"))


def _small_names() -> list[str]:
    return [f"small/{i:05d}.bin" for i in range(SMALL_COUNT)]


def _all_small(folder: Path, payload: bytes) -> Any:
    def verify(_: str) -> None:
        wrong = [n for n in _small_names() if not (folder / n).is_file() or (folder / n).read_bytes() != payload]
        expect(not wrong, f"{len(wrong)} of {SMALL_COUNT} small objects missing or wrong under {folder}")
    return verify


def _fresh(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.sync()


def _env(server: S3Server) -> dict[str, str]:
    return {ENV["key"]: server.access_key, ENV["secret"]: server.secret_key, ENV["endpoint"]: server.endpoint_url}


def _server() -> Any:
    return start_s3() if SERVER == "moto" else start_s3rver()


def _cli_source(folder: Path, server: S3Server) -> Path:
    """A sources file with source ``bench`` on this server, added as a user would (``da-sources add s3``)."""
    sources = folder / "sources.yaml"
    subprocess.run([str(Path(PYTHON).parent / "da-sources"), "add", "s3", "bench", "--bucket", BUCKET,
                    "--endpoint-url", server.endpoint_url, "--access-key-id-env", ENV["key"],
                    "--secret-access-key-env", ENV["secret"]],
                   env={**os.environ, "DA_SOURCES_FILE": str(sources)}, check=True, capture_output=True)
    return sources


def _aws_cli() -> str | None:
    aws = shutil.which("aws")
    if aws is None:
        return None
    done = subprocess.run([aws, "--version"], capture_output=True, text=True, check=False)
    return aws if done.returncode == 0 else None


# --- the cases -------------------------------------------------------------------------


def _installed(module: str, make: Callable[[], Candidate]) -> list[Candidate]:
    """``[make()]`` when the reference library is installed (``pip install -e '.[bench]'``), else none, said."""
    if importlib.util.find_spec(module) is None:
        print(f"{module} is not installed: its candidate is left out (pip install -e '.[bench]')", flush=True)
        return []
    return [make()]


def bench_big(folder: Path) -> str:
    sha256 = _big_sha256()
    with _server() as server:
        env = _env(server)
        os.environ.update(env)
        _client(server.endpoint_url).create_bucket(Bucket=BUCKET)
        subprocess.run(worker_command("setup-big", "big.bin"), env={**os.environ, **env}, check=True)
        # curl signs SigV4 itself (moto answers presigned URLs with a 500 when it checks signatures)
        url = f"{server.endpoint_url}/{BUCKET}/big.bin"
        sigv4 = ["--aws-sigv4", "aws:amz:us-east-1:s3", "--user", f"{server.access_key}:{server.secret_key}",
                 "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]
        ws, out = folder / "ws", folder / "out"
        target, sources = out / "big.bin", _cli_source(folder, server)
        ranged = f"{RANGE >> 20} MiB ranges, {IN_FLIGHT} in flight"
        candidates = [
            _timed("s3 fetch_data (sha256+lineage)", worker_command("fetch", "big.bin", str(ws)),
                   f"{ranged}; sha256, ETag MD5, fsync, lineage", landed_with_record(ws / "big.bin", sha256),
                   prepare=lambda: _fresh(ws), env=env),
            # s3rver keeps no x-amz-checksum-*: this is the CPU work of an object that has a full-object sha256
            # (the stored checksum is checked against the sha256 we compute, and no MD5 is computed)
            _timed("s3 fetch_data, sha256 only", worker_command("fetch-sha256-only", "big.bin", str(ws)),
                   f"{ranged}; sha256, fsync, lineage; no MD5 (as for an object with x-amz-checksum-sha256)",
                   landed_with_record(ws / "big.bin", sha256), prepare=lambda: _fresh(ws), env=env),
            Candidate("da-sources fetch (CLI)", [str(Path(PYTHON).parent / "da-sources"), "fetch", "bench", "big.bin",
                                                 "--workspace", str(ws)],
                      f"the CLI, interpreter start and imports included; {ranged}; sha256, ETag MD5, fsync, lineage",
                      landed_with_record(ws / "bench" / "big.bin", sha256), prepare=lambda: _fresh(ws),
                      env={**env, "DA_SOURCES_FILE": str(sources)}),
            Candidate("curl", ["curl", "-sf", *sigv4, "-o", str(target), url],
                      "one GET, one stream (--aws-sigv4); no hash, no fsync", same_file(target, sha256),
                      prepare=lambda: _fresh(out)),
            Candidate("curl -o && sync", ["sh", "-c", f"curl -sf {shlex.join(sigv4)} -o {target} '{url}' && "
                                          f"sync -f {target}"],
                      "one GET, then syncfs (durable, as ours); no hash", same_file(target, sha256),
                      prepare=lambda: _fresh(out)),
            # what our guarantees cost a shell user: the same bytes, both digests checked, and on disk
            Candidate("curl && sha256sum && md5sum && sync",
                      ["sh", "-c", f"curl -sf {shlex.join(sigv4)} -o {target} '{url}' && "
                       f"sha256sum {target} >/dev/null && md5sum {target} >/dev/null && sync -f {target}"],
                      "one GET, then sha256sum, md5sum, syncfs", same_file(target, sha256),
                      prepare=lambda: _fresh(out)),
            *_installed("obstore", lambda: _timed(
                "obstore ranged gets", worker_command("obstore-big", "big.bin", str(target)),
                f"{ranged}; no hash, no fsync", same_file(target, sha256), prepare=lambda: _fresh(out), env=env)),
            *_installed("aiobotocore", lambda: _timed(
                "aiobotocore ranged gets", worker_command("aiobotocore-big", "big.bin", str(target)),
                f"{ranged}; no hash, no fsync", same_file(target, sha256), prepare=lambda: _fresh(out), env=env)),
        ]
        aws = _aws_cli()
        if aws:
            candidates.append(Candidate(
                "aws s3 cp", [aws, "s3", "cp", "--only-show-errors", "--endpoint-url", server.endpoint_url,
                              f"s3://{BUCKET}/big.bin", str(target)],
                "AWS CLI defaults (8 MiB parts, 10 threads); no fsync", same_file(target, sha256),
                prepare=lambda: _fresh(out),
                env={"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key,
                     "AWS_DEFAULT_REGION": "us-east-1"}))
        compare(candidates, repetitions=REPS)
        return report(f"{BIG_SIZE >> 20} MiB object on {SERVER}", candidates, size_bytes=BIG_SIZE, baseline="curl",
                      ours="s3 fetch_data (sha256+lineage)", where=str(folder))


async def _upload_small(server: S3Server, payload: bytes) -> None:
    client = _client(server.endpoint_url)
    client.create_bucket(Bucket=BUCKET)
    gate = asyncio.Semaphore(32)

    async def one(name: str) -> None:
        async with gate:
            await asyncio.to_thread(client.put_object, Bucket=BUCKET, Key=name, Body=payload)

    await asyncio.gather(*(one(n) for n in _small_names()))


async def _upload_azure(connection_string: str, payload: bytes) -> None:
    from azure.storage.blob.aio import BlobServiceClient

    async with BlobServiceClient.from_connection_string(connection_string) as service:
        container = service.get_container_client(BUCKET)
        await container.create_container()
        gate = asyncio.Semaphore(32)

        async def one(name: str) -> None:
            async with gate:
                await container.upload_blob(name, payload)

        await asyncio.gather(*(one(n) for n in _small_names()))


def bench_many(folder: Path) -> str:
    payload = os.urandom(SMALL_SIZE)
    with _server() as server, start_azurite() as azurite:
        env = {**_env(server), ENV["azure"]: azurite.connection_string}
        os.environ.update(env)
        asyncio.run(_upload_small(server, payload))
        asyncio.run(_upload_azure(azurite.connection_string, payload))
        ws, out = folder / "ws", folder / "out"
        both = "16 GETs in flight; sha256, lineage records, one syncfs per group"
        candidates = [
            _timed("s3 fetch_many(16)", worker_command("many", str(ws)), both, _all_small(ws, payload),
                   prepare=lambda: _fresh(ws), env=env),
            _timed("azure fetch_many(16) on Azurite", worker_command("azure-many", str(ws)), both,
                   _all_small(ws, payload), prepare=lambda: _fresh(ws), env=env),
            *_installed("obstore", lambda: _timed(
                "obstore get x16", worker_command("obstore-many", str(out)), "16 GETs in flight; no hash, no fsync",
                _all_small(out, payload), prepare=lambda: _fresh(out), env=env)),
            *_installed("aiobotocore", lambda: _timed(
                "aiobotocore get x16", worker_command("aiobotocore-many", str(out)),
                "16 GETs in flight; no hash, no fsync", _all_small(out, payload), prepare=lambda: _fresh(out),
                env=env)),
        ]
        compare(candidates, repetitions=REPS)
        return report(f"{SMALL_COUNT} objects of 1 KiB on {SERVER} (Azure: Azurite)", candidates, items=SMALL_COUNT,
                      baseline="azure fetch_many(16) on Azurite", ours="s3 fetch_many(16)", where=str(folder))


CASES = {"big": bench_big, "many": bench_many}


def main(argv: list[str]) -> None:
    if argv[:1] == ["worker"]:
        _worker(argv[1], argv[2:])
        return
    begin()
    tables = []
    for name in argv or list(CASES):
        with scratch(f"da-bench-s3-{name}-") as folder:
            started = time.perf_counter()
            tables.append(CASES[name](folder))
            print(f"({name}: {time.perf_counter() - started:.0f} s including set-up)\n", flush=True)
    print("\n".join(tables))
    write_result("bench_s3" if not argv or argv == list(CASES) else "_".join(["bench_s3", *argv]), tables)


if __name__ == "__main__":
    main(sys.argv[1:])
