"""AzureBlobConnector under faults (docs/RELIABILITY.md rows 9-16, 21-23), through tests.faults.FaultProxy."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient, ContentSettings

import connectors.azure_blob.ranged_download as transfer
from connectors import (
    AuthenticationError,
    ConnectionError,
    IntegrityError,
    NotFoundError,
    WorkspaceError,
    read_provenance,
)
from connectors.azure_blob import AzureBlobConnector
from connectors.landing.lineage import find_provenance
from tests.conformance import files_under, run, temporaries
from tests.faults import FaultProxy, Rule, blob_get, ranged_after_first
from tests.harness import REPO, AzuriteServer
from tests.helpers.azure import CANARY, new_container, via_proxy
from tests.helpers.tmpfs import tmpfs

pytestmark = pytest.mark.integration

CHUNK = 128 * 1024
DATA = hashlib.sha256(b"v1").digest() * (640 * 1024 // 32)  # 5 ranges of CHUNK
NEW_DATA = hashlib.sha256(b"v2").digest() * (640 * 1024 // 32)


@pytest.fixture(autouse=True)
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, "CHUNK", CHUNK)


@pytest.fixture
def container(azurite_server: AzuriteServer) -> str:
    return new_container(azurite_server, {"big.bin": DATA, "small.txt": b"small\n"})


Body = Callable[[AzureBlobConnector, FaultProxy], Awaitable[Any]]


def with_proxy(server: AzuriteServer, container: str, rules: list[Rule], body: Body, **settings: Any) -> Any:
    async def main() -> Any:
        async with FaultProxy(server.port) as proxy:
            for rule in rules:
                proxy.add(rule)
            async with via_proxy(server, proxy, container, **settings) as connector:
                return await body(connector, proxy)

    return run(main())


def fetch(identifier: str, workspace: Path) -> Body:
    async def body(connector: AzureBlobConnector, proxy: FaultProxy) -> str:
        return await connector.fetch_data(identifier, str(workspace))

    return body


def assert_nothing_left(workspace: Path) -> None:
    assert temporaries(workspace) == [] if workspace.exists() else True
    assert not workspace.exists() or files_under(workspace) == []


# --- row 9: connection reset mid-download ---------------------------------------------


def test_reset_mid_body_is_retried_and_the_file_is_byte_exact(
    azurite_server: AzuriteServer, container: str, tmp_path: Path
) -> None:
    rules = [Rule("reset", match=ranged_after_first, after_bytes=5000),
             Rule("reset", match=lambda r: blob_get(r) and r.range_start == 0, after_bytes=100)]
    path = with_proxy(azurite_server, container, rules, fetch("big.bin", tmp_path / "ws"))
    assert Path(path).read_bytes() == DATA
    assert read_provenance(path)["sha256"] == hashlib.sha256(DATA).hexdigest()
    assert all(rule.used == 1 for rule in rules)


def test_resets_beyond_the_budget_fail_cleanly_and_keep_the_previous_version(
    azurite_server: AzuriteServer, container: str, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    first = with_proxy(azurite_server, container, [], fetch("big.bin", workspace))
    before = read_provenance(first)
    started = time.monotonic()
    with pytest.raises(ConnectionError):
        with_proxy(azurite_server, container, [Rule("reset", match=ranged_after_first, times=None, after_bytes=1000)],
                   fetch("big.bin", workspace), retry_total=2)
    assert time.monotonic() - started < 15
    assert Path(first).read_bytes() == DATA and read_provenance(first) == before
    assert temporaries(workspace) == []


# --- row 10: truncated body ----------------------------------------------------------------


def test_truncated_body_is_an_integrity_error_with_nothing_left(
    azurite_server: AzuriteServer, container: str, tmp_path: Path
) -> None:
    with pytest.raises(IntegrityError, match="ended"):
        with_proxy(azurite_server, container, [Rule("truncate", match=blob_get, times=None, after_bytes=3)],
                   fetch("small.txt", tmp_path / "ws"), retry_total=1)
    assert_nothing_left(tmp_path / "ws")


def test_a_single_truncated_range_is_fetched_again(azurite_server: AzuriteServer, container: str,
                                                   tmp_path: Path) -> None:
    rule = Rule("truncate", match=ranged_after_first, after_bytes=CHUNK // 2)
    path = with_proxy(azurite_server, container, [rule], fetch("big.bin", tmp_path / "ws"))
    assert Path(path).read_bytes() == DATA and rule.used == 1


# --- row 11: the blob changes while it is downloaded ---------------------------------------


def overwrite(server: AzuriteServer, container: str, data: bytes) -> Callable[[], None]:
    def hook() -> None:
        with BlobServiceClient.from_connection_string(server.connection_string) as service:
            service.get_blob_client(container, "big.bin").upload_blob(data, overwrite=True)

    return hook


def test_blob_overwritten_between_ranges_is_downloaded_again_whole(
    azurite_server: AzuriteServer, container: str, tmp_path: Path
) -> None:
    rule = Rule("hook", match=lambda r: (r.range_start or 0) == 2 * CHUNK,
                hook=overwrite(azurite_server, container, NEW_DATA))

    async def body(connector: AzureBlobConnector, proxy: FaultProxy) -> tuple[str, dict[str, Any]]:
        path = await connector.fetch_data("big.bin", str(tmp_path / "ws"))
        return path, await connector.get_metadata("big.bin")

    path, meta = with_proxy(azurite_server, container, [rule], body)
    assert rule.used == 1
    assert Path(path).read_bytes() == NEW_DATA  # never a mix of the two versions
    assert read_provenance(path)["etag"] == meta["etag"]


def test_blob_that_keeps_changing_is_an_integrity_error(
    azurite_server: AzuriteServer, container: str, tmp_path: Path
) -> None:
    versions = iter([NEW_DATA, DATA] * 10)

    def flip() -> None:
        overwrite(azurite_server, container, next(versions))()

    rule = Rule("hook", match=lambda r: (r.range_start or 0) == 2 * CHUNK, times=None, hook=flip)
    with pytest.raises(IntegrityError, match="changed"):
        with_proxy(azurite_server, container, [rule], fetch("big.bin", tmp_path / "ws"))
    assert rule.used == 3
    assert_nothing_left(tmp_path / "ws")


# --- row 12: Content-MD5 mismatch ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["small.txt", "big.bin"])
def test_content_md5_mismatch_is_an_integrity_error(
    azurite_server: AzuriteServer, container: str, tmp_path: Path, name: str
) -> None:
    with BlobServiceClient.from_connection_string(azurite_server.connection_string) as service:
        service.get_blob_client(container, name).set_http_headers(
            ContentSettings(content_md5=bytearray(hashlib.md5(b"other").digest())))
    with pytest.raises(IntegrityError, match="Content-MD5"):
        with_proxy(azurite_server, container, [], fetch(name, tmp_path / "ws"))
    assert_nothing_left(tmp_path / "ws")


def test_matching_content_md5_of_a_large_blob_is_verified(
    azurite_server: AzuriteServer, container: str, tmp_path: Path
) -> None:
    md5 = hashlib.md5(DATA).digest()
    with BlobServiceClient.from_connection_string(azurite_server.connection_string) as service:
        service.get_blob_client(container, "big.bin").set_http_headers(ContentSettings(content_md5=bytearray(md5)))
    path = with_proxy(azurite_server, container, [], fetch("big.bin", tmp_path / "ws"))
    assert read_provenance(path)["content_md5"] == base64.b64encode(md5).decode()


# --- rows 13, 14: wrong key, missing blob: one request, no retries -------------------------------


def test_wrong_key_fails_fast_after_exactly_one_request(
    azurite_server: AzuriteServer, container: str, tmp_path: Path
) -> None:
    key = base64.b64encode(CANARY.encode() * 3).decode()

    async def main() -> list[int]:
        counts = []
        async with FaultProxy(azurite_server.port) as proxy:
            async with via_proxy(azurite_server, proxy, container, key=key) as connector:
                for call in (lambda: connector.fetch_data("big.bin", str(tmp_path / "ws")),
                             connector.list_items, lambda: connector.get_metadata("big.bin")):
                    before, started = len(proxy.requests), time.monotonic()
                    with pytest.raises(AuthenticationError) as caught:
                        await call()
                    assert time.monotonic() - started < 10  # one request (counted below), no retry
                    assert key not in str(caught.value) + repr(caught.value) and CANARY not in str(caught.value)
                    counts.append(len(proxy.requests) - before)
        return counts

    assert run(main()) == [1, 1, 1]
    assert_nothing_left(tmp_path / "ws")


def test_missing_blob_is_not_found_after_exactly_one_request(
    azurite_server: AzuriteServer, container: str, tmp_path: Path
) -> None:
    async def body(connector: AzureBlobConnector, proxy: FaultProxy) -> int:
        with pytest.raises(NotFoundError):
            await connector.fetch_data("nope/missing.bin", str(tmp_path / "ws"))
        return len(proxy.requests)

    assert with_proxy(azurite_server, container, [], body) == 1
    assert not (tmp_path / "ws").exists()


# --- row 15: 503 / 429 with Retry-After -----------------------------------------------------------


@pytest.mark.parametrize("status", [503, 429])
def test_retry_after_is_honoured_then_the_fetch_succeeds(
    azurite_server: AzuriteServer, container: str, tmp_path: Path, status: int
) -> None:
    rules = [Rule("status", status=status, match=blob_get, times=2, retry_after=0.5)]
    started = time.monotonic()
    path = with_proxy(azurite_server, container, rules, fetch("small.txt", tmp_path / "ws"))
    elapsed = time.monotonic() - started
    assert Path(path).read_bytes() == b"small\n" and rules[0].used == 2
    assert 1.0 <= elapsed < 15  # waited twice for Retry-After, not for an hour


def test_endless_503_gives_up_within_a_bounded_time(
    azurite_server: AzuriteServer, container: str, tmp_path: Path
) -> None:
    rule = Rule("status", match=blob_get, times=None, retry_after=0.3)
    started = time.monotonic()
    with pytest.raises(ConnectionError, match="503"):
        with_proxy(azurite_server, container, [rule], fetch("big.bin", tmp_path / "ws"), retry_total=3)
    assert time.monotonic() - started < 15 and rule.used == 4
    assert_nothing_left(tmp_path / "ws")


def test_retry_after_beyond_the_budget_is_not_waited_for(
    azurite_server: AzuriteServer, container: str, tmp_path: Path
) -> None:
    rule = Rule("status", match=blob_get, times=None, retry_after=3600)
    started = time.monotonic()
    with pytest.raises(ConnectionError):
        with_proxy(azurite_server, container, [rule], fetch("small.txt", tmp_path / "ws"))
    assert time.monotonic() - started < 30  # not the hour Retry-After asked for


# --- row 16: a server that never answers ------------------------------------------------------------


def test_a_stalled_answer_times_out_within_the_read_timeout(
    azurite_server: AzuriteServer, container: str, tmp_path: Path
) -> None:
    rules = [Rule("stall", match=blob_get, times=None, stall_seconds=20)]
    started = time.monotonic()
    with pytest.raises(ConnectionError, match="timed out"):
        with_proxy(azurite_server, container, rules, fetch("small.txt", tmp_path / "ws"),
                   read_timeout=0.5, retry_total=1)
    assert time.monotonic() - started < 12  # not the 20 s stall
    assert_nothing_left(tmp_path / "ws")


def test_a_body_stalled_mid_way_is_retried(azurite_server: AzuriteServer, container: str, tmp_path: Path) -> None:
    rules = [Rule("stall", match=ranged_after_first, after_bytes=1000, stall_seconds=20)]
    path = with_proxy(azurite_server, container, rules, fetch("big.bin", tmp_path / "ws"), read_timeout=0.5)
    assert Path(path).read_bytes() == DATA and rules[0].used == 1


# --- row 21: disk full -------------------------------------------------------------------------------


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB tmpfs (the tests run as root in the harness VM)."""
    with tmpfs(tmp_path / "tiny", "256k") as mount:
        yield mount


@pytest.mark.root
def test_disk_full_is_a_workspace_error_and_the_partial_is_removed(
    azurite_server: AzuriteServer, container: str, tiny_filesystem: Path
) -> None:
    workspace = tiny_filesystem / "ws"

    async def body(connector: AzureBlobConnector, proxy: FaultProxy) -> int:
        with pytest.raises(WorkspaceError, match="cannot reserve .* disk full"):
            await connector.fetch_data("big.bin", str(workspace))
        return len(proxy.blob_requests())

    # the space is reserved up front: the first answer's size is enough to know it will not fit
    assert with_proxy(azurite_server, container, [], body) == 1
    assert temporaries(workspace) == [] and not (workspace / "big.bin").exists()
    assert os.statvfs(tiny_filesystem).f_bfree > 0.9 * os.statvfs(tiny_filesystem).f_blocks


@pytest.mark.root
def test_fetch_many_on_a_full_disk_fails_the_files_that_do_not_fit_and_keeps_the_others(
    azurite_server: AzuriteServer, tiny_filesystem: Path
) -> None:
    blobs = {f"many/{i:02d}.bin": hashlib.sha256(str(i).encode()).digest() * 512 for i in range(24)}  # 16 KiB each
    container = new_container(azurite_server, blobs)
    workspace = tiny_filesystem / "ws"

    async def body(connector: AzureBlobConnector, proxy: FaultProxy) -> list[Any]:
        return await connector.fetch_many(list(blobs), str(workspace), concurrency=8)

    results = with_proxy(azurite_server, container, [], body)
    failed = [r for r in results if not r.ok]
    assert failed and all(isinstance(r.error, WorkspaceError) and "disk full" in str(r.error) for r in failed)
    for result in results:
        if result.ok:  # what fitted landed whole, with its record
            assert Path(result.path).read_bytes() == blobs[result.identifier]
            assert read_provenance(result.path)["sha256"] == hashlib.sha256(blobs[result.identifier]).hexdigest()
        else:
            assert not (workspace / result.identifier).exists()
    assert temporaries(workspace) == []


# --- row 22: killed mid-fetch, then run again ---------------------------------------------------------

KILLED_FETCH = """
import asyncio, sys
import connectors.azure_blob.ranged_download as t
from connectors import DataSourceConfig
from connectors.azure_blob import AzureBlobConnector
t.CHUNK = 128 * 1024
async def main():
    config = DataSourceConfig(id="azure-test", type="azure_blob", name="A",
                              config={"connection_string": sys.argv[1], "container_name": sys.argv[2]})
    async with AzureBlobConnector(config) as c:
        await c.fetch_data("big.bin", sys.argv[3])
asyncio.run(main())
"""


def test_killed_mid_fetch_then_rerun_gives_the_same_bytes_and_one_record(
    azurite_server: AzuriteServer, container: str, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"

    async def main() -> None:
        async with FaultProxy(azurite_server.port) as proxy:
            proxy.add(Rule("stall", match=ranged_after_first, times=None, after_bytes=1000, stall_seconds=30))
            cs = azurite_server.connection_string.replace(azurite_server.blob_endpoint,
                                                          proxy.endpoint(azurite_server.account_name))
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-c", KILLED_FETCH, cs, container, str(workspace), cwd=REPO)
            for _ in range(200):  # until the child has a temporary with bytes in it
                if any(p.stat().st_size > 0 for p in temporaries(workspace)) if workspace.exists() else False:
                    break
                await asyncio.sleep(0.05)
            child.send_signal(signal.SIGKILL)
            await child.wait()

    run(main())
    assert len(temporaries(workspace)) == 1  # the killed writer's leftover
    path = with_proxy(azurite_server, container, [], fetch("big.bin", workspace))
    assert Path(path).read_bytes() == DATA
    assert temporaries(workspace) == []
    assert len(list(find_provenance(workspace))) == 1


# --- row 23: two fetches of one item at once, through faults ---------------------------------------------


RACE_ROUNDS = 100
RACED = [b"version,1\n" * 800, b"version,2\n" * 900]  # small: downloads end, and landings commit, close together


def test_racing_fetches_of_two_versions_under_resets_leave_a_file_and_record_that_agree(
    azurite_server: AzuriteServer, tmp_path: Path
) -> None:
    # one source id, two containers: each connector lands its own version of item.csv at the same path
    # (racers that land the same bytes cannot show a missing lock: any record fits any file)
    versions = {new_container(azurite_server, {"item.csv": data}): data for data in RACED}
    workspace = tmp_path / "ws"
    resets = Rule("reset", match=blob_get, times=3, after_bytes=2000)  # the first three GETs, mid-body

    async def race() -> list[tuple[str, str, str, str]]:
        async with FaultProxy(azurite_server.port) as proxy, contextlib.AsyncExitStack() as stack:
            proxy.add(resets)
            connectors = [await stack.enter_async_context(via_proxy(azurite_server, proxy, c)) for c in versions]
            seen = []
            for _ in range(RACE_ROUNDS):
                paths = await asyncio.gather(*(c.fetch_data("item.csv", str(workspace)) for c in connectors * 2))
                assert len(set(paths)) == 1
                data, record = Path(paths[0]).read_bytes(), read_provenance(paths[0])
                [container] = [c for c, version in versions.items() if version == data]  # one version, whole
                seen.append((container, record["source_uri"], hashlib.sha256(data).hexdigest(), record["sha256"]))
            return seen

    seen = run(race())
    disagree = [n for n, (container, uri, sha, recorded) in enumerate(seen)
                if sha != recorded or f"/{container}/item.csv" not in uri]
    assert disagree == [], f"{len(disagree)} of {RACE_ROUNDS} rounds: a file with the record of the other version"
    assert {container for container, *_ in seen} == set(versions), "one version always won: the race proves little"
    assert resets.used == 3 and temporaries(workspace) == []
