"""``da-sources serve`` under 50 concurrent clients: the two most called routes beside ``/health``, with ``wrk``.

Run: ``.venv/bin/python -m benchmarks.bench_api_load [--seconds 8] [--rounds 3] [--parsers httptools,h11]``

One server process (uvicorn, one worker, uvloop) per HTTP parser, over a
sources file of 10 ``local_file`` sources and an API key: ``wrk -t1 -c50``
(keep-alive) on ``GET /health`` (no key: the anchor, what the server costs
without the app's routes), ``GET /v1/data-sources/{id}`` and
``GET /v1/data-sources``, authentication included (a Bearer key, checked
against the keys file each request; the audit log is written only for calls
that change or move data and for refusals, see ``connectors/api/audit.py``).
The two source reads take the short way in front of FastAPI's routing
(``connectors/api/fast_reads.py``); ``/health`` goes through FastAPI.
Rounds interleave the routes and the parsers, so a noisy neighbour slows all
alike. Each route's answers are checked: any non-2xx answer or socket error
fails the run.

Per route: the median over rounds of requests/s and of wrk's p99 latency, and
the server's CPU time per request (user + system, from ``/proc``): on a
shared machine the CPU time per request is the steadier figure, and one core
divided by it is what one worker serves when it has the core to itself.
Targets: >= 2,000 requests/s, p99 <= 50 ms for both routes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import PYTHON, expect, scratch
from benchmarks.results import begin, write_result
from tests.harness import free_port, stop_process_group, wait_for_port

CLIENTS = 50
SOURCES = 10
ROUTES = ("/health", "/v1/data-sources/s3", "/v1/data-sources")
CONSOLE = str(Path(sys.executable).with_name("da-sources"))
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Route:
    parser: str
    path: str
    rps: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)


def serve_child(parser: str, port: int) -> None:
    """In the child: ``da-sources serve`` as the CLI runs it, on the given HTTP parser."""
    from connectors.api import server
    from connectors.api.api_settings import ApiSettings

    if parser == "h11":  # the protocol serve used before httptools (kept for an installation without it)
        server.http_protocol = lambda connections, settings: server.bounded_protocol(  # type: ignore[assignment]
            connections, settings.header_timeout_seconds, settings.body_timeout_seconds)
    server.serve("127.0.0.1", port, ApiSettings.from_env())


def setup(base: Path) -> tuple[dict[str, str], str]:
    (base / "data").mkdir()
    (base / "data" / "a.csv").write_text("x\n1\n")
    sources = [{"id": f"s{i}", "type": "local_file", "name": f"source {i}",
                "config": {"root": str(base / "data")}, "metadata": {"team": "bench"}} for i in range(SOURCES)]
    (base / "sources.yaml").write_text(json.dumps({"sources": sources}))
    env = {**os.environ, "DA_SOURCES_FILE": str(base / "sources.yaml"), "DA_WORKSPACE": str(base / "ws")}
    key = subprocess.run([CONSOLE, "api-keys", "create", "bench"], env=env, capture_output=True, text=True,
                         check=True).stdout.split()[0]
    return env, key


@contextmanager
def server(parser: str, env: dict[str, str]) -> Iterator[tuple[int, int]]:
    port = free_port()
    process = subprocess.Popen([PYTHON, "-m", "benchmarks.bench_api_load", "--serve", parser, str(port)], env=env,
                               stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port(port, process, 120, "da-sources serve")
        yield port, process.pid
    finally:
        stop_process_group(process)


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of the line)


def run_wrk(port: int, path: str, key: str, seconds: int, pid: int) -> tuple[float, float, float]:
    """(requests/s, p99 ms, server CPU us per request) of one wrk run; fails on any error or non-2xx."""
    before = cpu_ticks(pid)
    out = subprocess.run(["wrk", "-t1", f"-c{CLIENTS}", f"-d{seconds}s", "--timeout", "30s", "--latency", "-H",
                          f"Authorization: Bearer {key}", f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, check=True).stdout
    ticks = cpu_ticks(pid) - before
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    expect("Non-2xx" not in out and (errors is None or not any(int(n) for n in errors.groups())),
           f"{path}: failed answers in wrk's output:\n{out}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return rps, p99, ticks / TICKS * 1e6 / max(requests, 1)


def check_answers(port: int, key: str) -> None:
    """The routes answer what they should (the source, the whole list) before they are timed."""
    def get(path: str) -> dict[str, object]:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return json.loads(response.read())  # type: ignore[no-any-return]

    expect(get(ROUTES[1])["id"] == "s3", "GET /v1/data-sources/s3 answered another source")
    listed = get(ROUTES[2])["data"]
    expect(isinstance(listed, list) and len(listed) == SOURCES, f"the list has not the {SOURCES} sources")


def table(routes: list[Route]) -> str:
    anchor = {r.parser: statistics.median(r.rps) for r in routes if r.path == "/health"}
    lines = [f"## GET routes, {CLIENTS} keep-alive clients (wrk -t1 -c{CLIENTS}), one uvicorn worker", "",
             "| parser | route | requests/s (median) | p99 ms (median) | server CPU us/request | req/s per core "
             "(1e6 / CPU us) | req/s vs /health |", "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in routes:
        rps, cpu = statistics.median(r.rps), statistics.median(r.cpu_us)
        lines.append(f"| {r.parser} | `{r.path}` | {rps:,.0f} | {statistics.median(r.p99_ms):.1f} | {cpu:.0f} | "
                     f"{1e6 / cpu:,.0f} | {rps / anchor[r.parser]:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parsers", default="httptools,h11")
    parser.add_argument("--serve", nargs=2, metavar=("PARSER", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_child(args.serve[0], int(args.serve[1]))
        return
    expect(shutil.which("wrk") is not None, "wrk is not installed (apt-get install wrk)")
    begin()
    parsers = args.parsers.split(",")
    routes = [Route(p, path) for p in parsers for path in ROUTES]
    with scratch("da-bench-api-load-") as base:
        env, key = setup(base)
        for _ in range(args.rounds):
            for name in parsers:  # a fresh server per round and parser: no state carried between rounds
                with server(name, env) as (port, pid):
                    check_answers(port, key)
                    run_wrk(port, "/health", key, 2, pid)  # warm-up
                    for route in (r for r in routes if r.parser == name):
                        rps, p99, cpu = run_wrk(port, route.path, key, args.seconds, pid)
                        route.rps.append(rps)
                        route.p99_ms.append(p99)
                        route.cpu_us.append(cpu)
                        print(f"{name} {route.path}: {rps:,.0f} req/s, p99 {p99:.1f} ms, {cpu:.0f} us CPU",
                              flush=True)
                time.sleep(1)
    text = table(routes)
    print(text)
    write_result("bench_api_load", text, [
        "server: uvicorn 1 worker, uvloop; 'httptools' is what da-sources serve runs (the C parser with the "
        "bounds of connectors/api/fast_protocol.py), 'h11' the pure-Python protocol it ran before",
        "authentication included (Bearer key checked against the keys file every request); successful GETs of "
        "sources write no audit line (only changes, data moves and refusals do)",
        "the two source reads take the short way in front of FastAPI's routing (connectors/api/fast_reads.py, "
        "the same key checks and answer builders as the routes); /health goes through FastAPI's routing",
        "wrk runs on the same machine and takes CPU from the server: on 2 cores requests/s is bounded by the "
        "share the server gets; 'req/s per core' is the rate one worker serves with a core to itself"],
        {"routes": [r.__dict__ for r in routes]})


if __name__ == "__main__":
    main()
