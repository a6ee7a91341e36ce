"""The HTTP API against the CLI and the connector, on Azurite, through a real ``da-sources serve``.

Run: ``.venv/bin/python -m benchmarks.bench_api [big|list|latency ...]`` (all cases by default).

Cases:
    big      one blob (1 GiB; ``DA_BENCH_API_MIB`` to change): ``POST /fetch`` and polling the job
             until it is done (every 20 ms) vs ``da-sources fetch`` vs the connector's ``fetch_data``
    list     10,000 blobs (``DA_BENCH_API_ITEMS``): every page of ``GET /browse?delimiter=&limit=1000``,
             cache cold (the source is touched before each run), vs the connector's ``list_items``
    latency  ``GET /v1/data-sources/{id}`` from 50 concurrent clients (keep-alive), 40 requests each:
             p50, p99 and requests per second

The server runs as its own process (uvicorn, one worker) for the whole case.
Every ratio is on one clock: the API client against the connector in-process
(both timed after their imports, the server already up, as in use), and the
API client against the CLI as whole processes (both pay an interpreter's
start-up). The latency case also times one client alone (``GET /v1/data-sources/{id}``
and ``/health``). Outputs land under ``$DA_BENCH_DIR`` (default: the system
temporary folder); results to ``benchmarks/results/bench_api.md`` (``bench_api_<cases>``
when only some cases run).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from azure.storage.blob.aio import BlobServiceClient

from benchmarks.bench_azure import BIG_BLOCK, CONTAINER, ENV_CS, _big_block, _connector, _fresh, _upload
from benchmarks.common import PYTHON, Candidate, compare, expect, landed_with_record, report, same_clock_ratio
from benchmarks.results import begin, write_result
from tests.harness import start_azurite, stop_process_group

BIG_SIZE = int(os.environ.get("DA_BENCH_API_MIB", "1024")) << 20
ITEMS = int(os.environ.get("DA_BENCH_API_ITEMS", "10000"))
CONSOLE = str(Path(sys.executable).with_name("da-sources"))


# --- measured workers (child processes) ---------------------------------------------


def _call(base: str, key: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


def _api_fetch(base: str, key: str, item: str, workspace: str) -> None:
    job = _call(base, key, "POST", "/v1/data-sources/az/fetch", {"items": [item], "workspace": workspace})
    while job["status"] in ("queued", "running"):
        time.sleep(0.02)
        job = _call(base, key, "GET", f"/v1/data-sources/az/jobs/{job['id']}")
    assert job["status"] == "succeeded", job


def _api_list(base: str, key: str) -> None:
    count, after = 0, ""
    while True:
        page = _call(base, key, "GET", f"/v1/data-sources/az/browse?delimiter=&limit=1000{after}")
        count += len(page["data"])
        if not page["has_more"]:
            break
        after = f"&after={page['next_cursor']}"
    print(f"items={count}")


async def _connector_work(mode: str, args: list[str]) -> None:
    async with _connector(CONTAINER) as connector:
        if mode == "fetch":
            await connector.fetch_data(args[0], args[1])
        else:
            print(f"items={len(await connector.list_items())}")


def worker(mode: str, args: list[str]) -> None:
    import connectors.azure_blob  # noqa: F401  (before the clock starts)

    started = time.perf_counter()
    if mode == "setup-big":  # in a child: the parent's 1 GiB would otherwise count in every child's peak RSS
        asyncio.run(_upload_big(os.environ[ENV_CS]))
    elif mode == "api-fetch":
        _api_fetch(*args)
    elif mode == "api-list":
        _api_list(*args)
    else:
        asyncio.run(_connector_work(mode, args))
    print(time.perf_counter() - started)


def worker_command(mode: str, *args: str) -> list[str]:
    return [PYTHON, "-m", "benchmarks.bench_api", "worker", mode, *args]


# --- the server ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def api_server(scratch: Path, connection_string: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    """``da-sources serve`` over one source ``az``; (base URL, manage key, environment)."""
    env = {**os.environ, ENV_CS: connection_string, "DA_SOURCES_FILE": str(scratch / "sources.yaml"),
           "DA_WORKSPACE": str(scratch / "api-ws"), "DA_API_MAX_ITEM_BYTES": str(1 << 40),
           "DA_API_CACHE_SECONDS": "600"}
    (scratch / "sources.yaml").write_text(json.dumps({"sources": [{"id": "az", "type": "azure_blob", "name": "az",
        "config": {"container_name": CONTAINER, "connection_string": {"env": ENV_CS}}}]}))
    # the operator's policy lets the API reach the loopback emulator (closed by default)
    (scratch / "api-policy.yaml").write_text(json.dumps({"hosts": ["127.0.0.1"], "ports": "any",
                                                         "schemes": ["http"]}))
    key = subprocess.run([CONSOLE, "api-keys", "create", "bench"], env=env, capture_output=True, text=True,
                         check=True).stdout.split()[0]
    port = _free_port()
    server = subprocess.Popen([CONSOLE, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/health", timeout=1).close()  # noqa: S310
                break
            except OSError:
                time.sleep(0.1)
        yield base, key, env
    finally:
        stop_process_group(server)


# --- the cases ----------------------------------------------------------------------


async def _upload_big(connection_string: str) -> None:
    async with BlobServiceClient.from_connection_string(connection_string) as service:
        container = service.get_container_client(CONTAINER)
        await container.create_container()
        await container.upload_blob("big.bin", _big_block() * (BIG_SIZE // BIG_BLOCK), max_concurrency=4)


def _big_sha256() -> str:
    digest, block = hashlib.sha256(), _big_block()
    for _ in range(BIG_SIZE // BIG_BLOCK):
        digest.update(block)
    return digest.hexdigest()


def bench_big(scratch: Path) -> str:
    with start_azurite() as azurite, api_server(scratch, azurite.connection_string) as (base, key, env):
        subprocess.run(worker_command("setup-big"), env={**os.environ, ENV_CS: azurite.connection_string}, check=True,
                       stdout=subprocess.DEVNULL)
        cli_ws, api_ws, conn_ws = scratch / "cli-ws", scratch / "api-ws" / ".fetch-jobs" / "bench", scratch / "conn-ws"
        digest = _big_sha256()
        candidates = [
            Candidate("API POST /fetch + poll", worker_command("api-fetch", base, key, "big.bin", "bench"),
                      "server: uvicorn, 1 worker; client polls every 20 ms", landed_with_record(
                          api_ws / "big.bin", digest), prepare=lambda: _fresh(api_ws), reports_seconds=True),
            Candidate("da-sources fetch (CLI)", [CONSOLE, "fetch", "az", "big.bin", "--workspace", str(cli_ws)],
                      "default settings", landed_with_record(cli_ws / "az" / "big.bin", digest),
                      prepare=lambda: _fresh(cli_ws), env=env),
            Candidate("connector fetch_data", worker_command("fetch", "big.bin", str(conn_ws)), "default settings",
                      landed_with_record(conn_ws / "big.bin", digest), prepare=lambda: _fresh(conn_ws), env=env,
                      reports_seconds=True),
        ]
        compare(candidates, repetitions=3)
        api, cli, connector = candidates
        return report(f"{BIG_SIZE >> 20} MiB blob", candidates, size_bytes=BIG_SIZE,
                      baseline="connector fetch_data", ours="API POST /fetch + poll") + (
            f"\nAPI over the connector: {same_clock_ratio(api, connector)}; "
            f"API over the CLI: {same_clock_ratio(api, cli)} (time ratios; lower is faster for the API).\n")


def _counted(stdout: str) -> None:
    """A check: the worker saw every blob (it prints the count before its seconds)."""
    lines = stdout.split()
    expect(len(lines) >= 2 and lines[-2] == f"items={ITEMS}", f"listed {lines[-2:-1]}, expected {ITEMS}")


def bench_list(scratch: Path) -> str:
    with start_azurite() as azurite, api_server(scratch, azurite.connection_string) as (base, key, env):
        asyncio.run(_upload(azurite, {f"d{i % 10}/{i:06d}.csv": b"x" for i in range(ITEMS)}))
        touched = iter(range(1_000_000))

        def cold() -> None:  # a changed source drops its cached listing (and its pooled connector)
            _call(base, key, "PATCH", "/v1/data-sources/az", {"metadata": {"bench": next(touched)}})

        candidates = [
            Candidate("API browse, 1,000 a page", worker_command("api-list", base, key),
                      "GET /browse?delimiter=&limit=1000, cache cold", _counted, prepare=cold, reports_seconds=True),
            Candidate("connector list_items", worker_command("list"), "one call", _counted, env=env,
                      reports_seconds=True),
        ]
        compare(candidates, repetitions=5)
        return report(f"listing {ITEMS} blobs", candidates, items=ITEMS, baseline="connector list_items",
                      ours="API browse, 1,000 a page")


async def _latency(base: str, key: str, clients: int, each: int,
                   path: str = "/v1/data-sources/az") -> tuple[list[float], float, int]:
    """Answered requests' seconds, the whole time, and the requests that failed (not answered 200)."""
    import httpx

    timings: list[float] = []
    failed = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, limits=limits,
                                 timeout=60) as client:
        async def one_client() -> None:
            nonlocal failed
            for _ in range(each):
                started = time.perf_counter()
                try:
                    response = await client.get(path)
                except httpx.TransportError:  # counted, not hidden: a loaded server dropping a connection
                    failed += 1
                    continue
                timings.append(time.perf_counter() - started)
                failed += response.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        return timings, time.perf_counter() - started, failed


def _latency_row(label: str, timings: list[float], total: float, failed: int) -> str:
    timings = sorted(timings)
    p50, p99 = statistics.median(timings), timings[max(int(len(timings) * 0.99) - 1, 0)]
    return (f"| {label} | {len(timings)} | {failed} | {p50 * 1000:.1f} | {p99 * 1000:.1f} | "
            f"{timings[-1] * 1000:.1f} | {len(timings) / total:,.0f} |")


def bench_latency(scratch: Path) -> str:
    clients, each = 50, 40
    with start_azurite() as azurite, api_server(scratch, azurite.connection_string) as (base, key, _):
        asyncio.run(_latency(base, key, clients, 5))  # warm-up
        rows = [_latency_row(f"GET /v1/data-sources/{{id}}, {clients} clients",
                             *asyncio.run(_latency(base, key, clients, each)))]
        rows.append(_latency_row("GET /v1/data-sources/{id}, 1 client", *asyncio.run(_latency(base, key, 1, 200))))
        rows.append(_latency_row("GET /health, 1 client", *asyncio.run(_latency(base, key, 1, 200, "/health"))))
    text = ("## API latency (keep-alive clients in one process, server: uvicorn, 1 worker)\n\n"
            "| case | answered | failed | p50 ms | p99 ms | max ms | requests/s |\n"
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n"
            + "\n".join(rows) + "\n")
    print(text, flush=True)
    return text


CASES = {"big": bench_big, "list": bench_list, "latency": bench_latency}


def main(argv: list[str]) -> None:
    if argv[:1] == ["worker"]:
        worker(argv[1], argv[2:])
        return
    begin()
    tables = []
    for name in argv or list(CASES):
        with tempfile.TemporaryDirectory(prefix=f"da-bench-api-{name}-", dir=os.environ.get("DA_BENCH_DIR")) as tmp:
            started = time.perf_counter()
            tables.append(CASES[name](Path(tmp)))
            print(f"({name}: {time.perf_counter() - started:.0f} s including set-up)\n", flush=True)
    print("\n".join(tables))
    write_result("bench_api" if not argv or argv == list(CASES) else "_".join(["bench_api", *argv]), tables,
                 ["client and server on the same machine: the clients' CPU competes with the server's"])


if __name__ == "__main__":
    main(sys.argv[1:])
