"""AzureBlobConnector against a real Azurite: the conformance suite, listing, metadata, credentials, errors."""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import logging
import os
import re
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import (
    BlobServiceClient,
    ContainerSasPermissions,
    ContentSettings,
    generate_container_sas,
)

from connectors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionError,
    DataFetchError,
    IntegrityError,
    NotFoundError,
    UnsafeNameError,
    WorkspaceError,
    read_provenance,
)
from connectors.azure_blob import AzureBlobConnector
from connectors.base import FetchResult
from connectors.landing.lineage import run_context
from connectors.landing.progress import on_progress
from tests.conformance import ConnectorConformance, SourceUnderTest, run, temporaries, version_bytes
from tests.harness import AzuriteServer
from tests.helpers.azure import CANARY, azure_config, new_container, upload_raw

pytestmark = pytest.mark.integration


ITEMS = {
    "sales.csv": b"region,amount\nnorth,10\nsouth,20\n",
    "nested/deeper/data.json": b'{"a": 1}\n',
    "with space & unicode \u00e9 #1 %20 q?.txt": "caf\u00e9\n".encode(),
    "empty.bin": b"",
    "medium.bin": bytes(range(256)) * 1200,
}


def azure_connector(server: AzuriteServer, container: str, **settings: Any) -> AzureBlobConnector:
    return AzureBlobConnector(azure_config(server, container, **settings))


class TestAzureBlobConformance(ConnectorConformance):
    @pytest.fixture
    def source(self, azurite_server: AzuriteServer, monkeypatch: pytest.MonkeyPatch) -> SourceUnderTest:
        container = new_container(azurite_server, ITEMS)
        monkeypatch.setenv("DA_TEST_AZURE_CS", azurite_server.connection_string)
        return SourceUnderTest(
            make_connector=lambda: azure_connector(
                azurite_server, container, connection_string={"env": "DA_TEST_AZURE_CS"}
            ),
            items=dict(ITEMS),
            missing="no/such/blob.csv",
            source_type="azure_blob",
            secrets=[azurite_server.account_key, azurite_server.connection_string],
            change=lambda identifier, n: replace_blob(azurite_server, container, identifier, n),
        )


def replace_blob(server: AzuriteServer, container: str, name: str, n: int) -> None:
    with BlobServiceClient.from_connection_string(server.connection_string) as service:
        service.get_blob_client(container, name).upload_blob(version_bytes(name, n), overwrite=True)


# --- listing -------------------------------------------------------------------

ODD_NAMES = ["a b.txt", "p%20c.txt", "h#x", "q?y=1&z", "uni \u00e9\u6f22.txt", "dir/", "a//b", "x/y/z.bin"]


@pytest.fixture
def odd_container(azurite_server: AzuriteServer) -> str:
    return new_container(azurite_server, {n: n.encode() for n in ODD_NAMES})


async def listed(connector: AzureBlobConnector, path: str | None = None) -> list[str]:
    async with connector:
        return sorted(item.path for item in await connector.list_items(path))


def test_odd_blob_names_round_trip_exactly_in_the_listing(azurite_server: AzuriteServer, odd_container: str) -> None:
    assert run(listed(azure_connector(azurite_server, odd_container))) == sorted(ODD_NAMES)


def test_dot_dot_names_are_listed_exactly_but_refused_on_fetch(azurite_server: AzuriteServer, tmp_path: Path) -> None:
    container = new_container(azurite_server, {})
    names = ["a/../x", "./y", "../up"]
    asyncio.run(upload_raw(azurite_server, container, names))
    connector = azure_connector(azurite_server, container)

    async def body() -> list[str]:
        async with connector:
            found = sorted(item.path for item in await connector.list_items())
            for name in names:
                with pytest.raises(UnsafeNameError):
                    await connector.fetch_data(name, str(tmp_path / "ws"))
            return found

    assert run(body()) == sorted(names)
    assert not (tmp_path / "ws").exists()


def test_path_prefix_and_pattern_filter_the_listing(azurite_server: AzuriteServer, odd_container: str) -> None:
    assert run(listed(azure_connector(azurite_server, odd_container), "x")) == ["x/y/z.bin"]
    assert run(listed(azure_connector(azurite_server, odd_container), "x/y/")) == ["x/y/z.bin"]
    # folders are full blob names, as listed (not relative to the prefix)
    assert run(listed(azure_connector(azurite_server, odd_container, prefix="x"), "x/y")) == ["x/y/z.bin"]
    assert run(listed(azure_connector(azurite_server, odd_container, pattern="*.txt"))) == sorted(
        n for n in ODD_NAMES if n.endswith(".txt"))
    assert run(listed(azure_connector(azurite_server, odd_container), "nothing-here")) == []


def test_listing_is_paged_and_carries_blob_facts(
    azurite_server: AzuriteServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import connectors.azure_blob.connector as module

    monkeypatch.setattr(module, "LIST_PAGE", 2)
    container = new_container(azurite_server, {f"f{i}.csv": b"a,b\n" for i in range(5)})
    with BlobServiceClient.from_connection_string(azurite_server.connection_string) as service:
        service.get_blob_client(container, "f0.csv").upload_blob(
            b"a,b\n", overwrite=True, metadata={"owner": "team-x"},
            content_settings=ContentSettings(content_type="text/csv"))

    async def body() -> list[Any]:
        async with azure_connector(azurite_server, container) as connector:
            return [item async for item in connector.iter_items()]

    items = run(body())
    assert [i.path for i in items] == [f"f{i}.csv" for i in range(5)]
    first = items[0].metadata
    assert first["version"] == first["etag"] and first["etag"].startswith('"')
    assert first["content_type"] == "text/csv" and first["metadata"] == {"owner": "team-x"}
    assert first["content_md5"] == base64.b64encode(hashlib.md5(b"a,b\n").digest()).decode()
    assert first["last_modified"].endswith("Z") and first["access_tier"]
    assert items[0].size == 4 and items[0].modified_at > 1_700_000_000


def test_missing_container_is_not_found_in_listing_and_fetch(azurite_server: AzuriteServer, tmp_path: Path) -> None:
    connector = azure_connector(azurite_server, "no-such-container")

    async def body() -> None:
        async with connector:
            with pytest.raises(NotFoundError, match="container"):
                await connector.list_items()
            with pytest.raises(NotFoundError):
                await connector.fetch_data("a.csv", str(tmp_path / "ws"))
            with pytest.raises(NotFoundError):
                await connector.get_metadata("a.csv")
            with pytest.raises(NotFoundError, match="container"):  # the cause, not just False
                await connector.test_connection()

    run(body())


# --- metadata and lineage ------------------------------------------------------------


def test_get_metadata_has_the_blob_properties(azurite_server: AzuriteServer) -> None:
    container = new_container(azurite_server, {"m.csv": b"1,2\n"})

    async def body() -> dict[str, Any]:
        async with azure_connector(azurite_server, container) as connector:
            return await connector.get_metadata("m.csv")

    meta = run(body())
    assert meta["size"] == 4 and meta["version"] == meta["etag"]
    assert meta["content_md5"] == base64.b64encode(hashlib.md5(b"1,2\n").digest()).decode()
    assert meta["lease_state"] == "available" and meta["last_modified"].endswith("Z")
    assert "content_encoding" in meta and "version_id" in meta and meta["access_tier"]
    assert meta["source_uri"] == f"{azurite_server.blob_endpoint}/{container}/m.csv"


def test_lineage_has_etag_md5_and_a_clean_uri(azurite_server: AzuriteServer, tmp_path: Path) -> None:
    name = "dir/with space #.csv"
    container = new_container(azurite_server, {name: b"x,y\n"})

    async def body() -> tuple[str, dict[str, Any]]:
        async with azure_connector(azurite_server, container) as connector:
            return await connector.fetch_data(name, str(tmp_path / "ws")), await connector.get_metadata(name)

    path, meta = run(body())
    record = read_provenance(path)
    assert record["source_uri"] == f"{azurite_server.blob_endpoint}/{container}/dir/with%20space%20%23.csv"
    assert record["source_version"] == record["etag"] == meta["etag"]
    assert record["content_md5"] == meta["content_md5"] and record["last_modified"].endswith("Z")
    assert record["size"] == 4 and record["sha256"] == hashlib.sha256(b"x,y\n").hexdigest()
    assert "?" not in record["source_uri"] and "sig=" not in str(record)
    assert azurite_server.account_key not in Path(tmp_path / "ws" / ".lineage").joinpath(f"{name}.json").read_text()


# --- credentials ----------------------------------------------------------------------


def sas_for(server: AzuriteServer, container: str, *, expired: bool = False) -> str:
    now = datetime.now(UTC)
    return generate_container_sas(
        server.account_name, container, account_key=server.account_key,
        permission=ContainerSasPermissions(read=True, list=True),
        start=now - timedelta(hours=2), expiry=now - timedelta(hours=1) if expired else now + timedelta(hours=1))


@pytest.mark.parametrize("way", ["account_key", "sas_token", "anonymous", "connection_string_sas"])
def test_every_way_to_authenticate_lists_and_fetches(azurite_server: AzuriteServer, tmp_path: Path, way: str) -> None:
    container = new_container(azurite_server, {"k/a.csv": b"a\n"}, public=way == "anonymous")
    settings: dict[str, Any] = {"account_url": azurite_server.blob_endpoint}
    if way == "account_key":
        settings["account_key"] = azurite_server.account_key
    elif way == "sas_token":
        settings["sas_token"] = "?" + sas_for(azurite_server, container)
    elif way == "connection_string_sas":
        settings = {"connection_string": f"BlobEndpoint={azurite_server.blob_endpoint};"
                                         f"SharedAccessSignature={sas_for(azurite_server, container)}"}
    connector = azure_connector(azurite_server, container, **settings)

    async def body() -> tuple[list[str], str, bool]:
        async with connector:
            names = [i.path for i in await connector.list_items()]
            return names, await connector.fetch_data("k/a.csv", str(tmp_path / "ws")), await connector.test_connection()

    names, path, ok = run(body())
    assert names == ["k/a.csv"] and Path(path).read_bytes() == b"a\n" and ok


def test_default_credential_without_azure_identity_is_a_clear_configuration_error(
    azurite_server: AzuriteServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "azure.identity.aio", None)  # as if the extra were not installed
    https_url = azurite_server.blob_endpoint.replace("http://", "https://")  # nothing is sent: it fails first
    connector = azure_connector(azurite_server, "c", account_url=https_url, credential="default")
    with pytest.raises(ConfigurationError, match=r"da-sources\[identity\]"):
        run(connector.connect())


def test_default_credential_over_http_is_a_configuration_error_naming_https(azurite_server: AzuriteServer) -> None:
    # the original interface: a config builds; its settings are checked when the connector connects
    connector = azure_connector(azurite_server, "c", account_url=azurite_server.blob_endpoint, credential="default")
    with pytest.raises(ConfigurationError, match="account_url must start with https://"):
        asyncio.run(connector.connect())


def canary_key(server: AzuriteServer) -> str:
    """A well-formed but wrong account key that carries the canary."""
    return base64.b64encode(CANARY.encode() * 3).decode()


def assert_no_secret(texts: list[str], *secrets: str) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text
        # the SDK's own logging policy masks signatures as REDACTED, ours as **********
        assert set(re.findall(r"sig=([^&'\"\s]+)", text)) <= {"REDACTED", "**********"}


def test_wrong_key_is_an_authentication_error_without_the_key(
    azurite_server: AzuriteServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    container = new_container(azurite_server, {"a.csv": b"a\n"})
    key = canary_key(azurite_server)
    cs = azurite_server.connection_string.replace(azurite_server.account_key, key)
    errors: list[BaseException] = []

    async def body() -> None:
        async with azure_connector(azurite_server, container, connection_string=cs) as connector:
            for call in (connector.list_items(), connector.fetch_data("a.csv", str(tmp_path / "ws")),
                         connector.get_metadata("a.csv")):
                with pytest.raises(AuthenticationError) as caught:
                    await call
                errors.append(caught.value)

    run(body())
    texts = [t for e in errors for t in (str(e), repr(e), e.message)] + [caplog.text]
    assert_no_secret(texts, key, CANARY, cs)
    assert not (tmp_path / "ws").exists() or not any(p.is_file() for p in (tmp_path / "ws").rglob("*"))


def test_expired_sas_is_an_authentication_error_without_the_signature(
    azurite_server: AzuriteServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    container = new_container(azurite_server, {"a.csv": b"a\n"})
    sas = sas_for(azurite_server, container, expired=True)
    signature = dict(p.split("=", 1) for p in sas.split("&"))["sig"]
    connector = azure_connector(azurite_server, container, account_url=azurite_server.blob_endpoint, sas_token=sas)
    errors: list[BaseException] = []

    async def body() -> None:
        async with connector:
            for call in (connector.list_items(), connector.fetch_data("a.csv", str(tmp_path / "ws"))):
                with pytest.raises(AuthenticationError) as caught:
                    await call
                errors.append(caught.value)

    run(body())
    texts = [t for e in errors for t in (str(e), repr(e))] + [caplog.text, repr(connector)]
    assert_no_secret(texts, signature, sas)


def test_secret_reference_is_resolved_and_never_shown(
    azurite_server: AzuriteServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DA_TEST_KEY", azurite_server.account_key)
    container = new_container(azurite_server, {"a.csv": b"a\n"})
    connector = azure_connector(azurite_server, container, account_url=azurite_server.blob_endpoint,
                                account_key={"env": "DA_TEST_KEY"})
    assert run(listed(connector)) == ["a.csv"]
    assert azurite_server.account_key not in repr(connector) + repr(connector.config)


# --- resources ------------------------------------------------------------------------


def test_one_pool_reused_and_disconnect_leaves_no_unclosed_session(
    azurite_server: AzuriteServer, tmp_path: Path
) -> None:
    container = new_container(azurite_server, {f"s{i}.csv": b"1\n" for i in range(6)})

    async def body() -> None:
        connector = azure_connector(azurite_server, container)
        await connector.connect()
        session = connector._clients.session  # type: ignore[union-attr]
        await connector.list_items()
        await connector.fetch_many([f"s{i}.csv" for i in range(6)], str(tmp_path / "ws"))
        await connector.get_metadata("s0.csv")
        assert connector._clients.session is session  # type: ignore[union-attr]
        connector_pool = session.connector
        assert connector_pool is not None and len(connector_pool._conns) >= 1  # keep-alive connections reused
        await connector.disconnect()
        await connector.disconnect()
        assert session.closed

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run(body())
        gc.collect()


def test_unclosed_session_warning_absent_under_gc(azurite_server: AzuriteServer, recwarn: pytest.WarningsRecorder,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    container = new_container(azurite_server, {"a.csv": b"a\n"})
    run(listed(azure_connector(azurite_server, container)))
    gc.collect()
    assert not [w for w in recwarn if "nclosed" in str(w.message)]
    assert "nclosed" not in caplog.text


@pytest.fixture
def big_container(azurite_server: AzuriteServer) -> Iterator[tuple[str, bytes]]:
    data = hashlib.sha256(b"seed").digest() * (3 * 1024 * 1024 // 32 + 1000)
    yield new_container(azurite_server, {"big.bin": data}), data


def test_large_blob_is_fetched_in_parallel_ranges_with_progress(
    azurite_server: AzuriteServer, big_container: tuple[str, bytes], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    import connectors.azure_blob.ranged_download as transfer
    from connectors import on_progress

    monkeypatch.setattr(transfer, "CHUNK", 256 * 1024)
    container, data = big_container
    seen: list[tuple[int, int | None]] = []

    async def body() -> str:
        async with azure_connector(azurite_server, container, max_concurrency=4) as connector:
            with on_progress(lambda ident, done, total: seen.append((done, total))):
                return await connector.fetch_data("big.bin", str(tmp_path / "ws"))

    path = Path(run(body()))
    assert path.read_bytes() == data
    assert read_provenance(path)["sha256"] == hashlib.sha256(data).hexdigest()
    assert seen[-1] == (len(data), len(data)) and len(seen) > 10


def test_sas_in_the_account_url_is_used_and_never_shown(azurite_server: AzuriteServer, tmp_path: Path) -> None:
    container = new_container(azurite_server, {"a.csv": b"a\n"})
    sas = sas_for(azurite_server, container)
    connector = azure_connector(azurite_server, container, account_url=f"{azurite_server.blob_endpoint}?{sas}")

    async def body() -> str:
        async with connector:
            return await connector.fetch_data("a.csv", str(tmp_path / "ws"))

    record = read_provenance(run(body()))
    assert "sig=" not in str(record) and record["source_uri"].endswith(f"/{container}/a.csv")


def test_sdk_and_http_error_text_is_never_copied_into_messages() -> None:
    import aiohttp
    from azure.core import exceptions as az

    from connectors.azure_blob.errors import HttpStatusError, translate

    leaky = f"https://acct.blob.core.windows.net/c/b?sv=2024&sig={CANARY} AccountKey={CANARY}"
    cases: list[tuple[BaseException, type[Exception]]] = [
        (az.ClientAuthenticationError(message=leaky), AuthenticationError),
        (az.ResourceNotFoundError(message=leaky), NotFoundError),
        (az.ServiceRequestError(leaky), ConnectionError),
        (az.HttpResponseError(message=leaky), DataFetchError),
        (aiohttp.ClientPayloadError(leaky), IntegrityError),
        (aiohttp.ClientConnectionError(leaky), ConnectionError),
        (HttpStatusError(503, "ServerBusy"), ConnectionError),
        (HttpStatusError(412, "ConditionNotMet"), IntegrityError),
        (TimeoutError(leaky), ConnectionError),
        (OSError(28, "No space left on device"), WorkspaceError),
    ]
    for raw, expected in cases:
        error = translate(raw, "reading blob 'b'", "src")
        assert isinstance(error, expected), (raw, error)
        assert CANARY not in str(error) + repr(error) and "sig=" not in str(error)


def test_a_stalled_listing_times_out(azurite_server: AzuriteServer) -> None:
    from tests.faults import FaultProxy, Rule

    container = new_container(azurite_server, {"a.csv": b"a\n"})

    async def body() -> float:
        async with FaultProxy(azurite_server.port) as proxy:
            proxy.add(Rule("stall", match=lambda r: "comp=list" in r.target, times=None, stall_seconds=20))
            cs = azurite_server.connection_string.replace(azurite_server.blob_endpoint,
                                                          proxy.endpoint(azurite_server.account_name))
            async with azure_connector(azurite_server, container, connection_string=cs, read_timeout=0.5,
                                       retry_total=1) as connector:
                started = time.monotonic()
                with pytest.raises(ConnectionError, match="timed out"):
                    await connector.list_items()
                return time.monotonic() - started

    assert run(body()) < 4


def test_stopping_a_paged_listing_early_leaves_nothing_pending(
    azurite_server: AzuriteServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import connectors.azure_blob.connector as module

    monkeypatch.setattr(module, "LIST_PAGE", 2)
    container = new_container(azurite_server, {f"f{i}.csv": b"1\n" for i in range(7)})

    async def body() -> list[str]:
        async with azure_connector(azurite_server, container) as connector:
            seen = []
            pages = connector.iter_items()
            async for item in pages:
                seen.append(item.path)
                if len(seen) == 3:
                    break
            await pages.aclose()  # type: ignore[attr-defined]
            return seen

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run(body()) == ["f0.csv", "f1.csv", "f2.csv"]
        gc.collect()
    assert "destroyed" not in caplog.text and "never retrieved" not in caplog.text


@pytest.mark.parametrize("small_blob", [0, 1 << 20])
def test_every_item_lands_exactly_whether_streamed_or_landed_from_memory(
    azurite_server: AzuriteServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_blob: int
) -> None:
    import connectors.azure_blob.ranged_download as transfer

    monkeypatch.setattr(transfer, "SMALL_BLOB", small_blob)  # 0: even tiny blobs take the streamed path
    container = new_container(azurite_server, ITEMS)

    async def body() -> dict[str, str]:
        async with azure_connector(azurite_server, container) as connector:
            return {name: await connector.fetch_data(name, str(tmp_path / "ws")) for name in ITEMS}

    for name, path in run(body()).items():
        assert Path(path).read_bytes() == ITEMS[name]
        record = read_provenance(path)
        assert record["sha256"] == hashlib.sha256(ITEMS[name]).hexdigest() and record["size"] == len(ITEMS[name])
        assert record["content_md5"] == base64.b64encode(hashlib.md5(ITEMS[name]).digest()).decode()


def test_fetch_many_lands_small_blobs_in_groups_without_an_fsync_per_file(
    azurite_server: AzuriteServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import connectors.landing.group_commit as group_commit

    blobs = {f"small/{i:03d}.bin": os.urandom(2048 + i) for i in range(300)}
    container = new_container(azurite_server, blobs)
    calls = {"fsync": 0, "sync": 0}
    real_fsync, real_sync = os.fsync, group_commit.sync_filesystem

    def counted_fsync(fd: int) -> None:
        calls["fsync"] += 1
        real_fsync(fd)

    def counted_sync(fd: int) -> None:
        calls["sync"] += 1
        real_sync(fd)

    monkeypatch.setattr(os, "fsync", counted_fsync)
    monkeypatch.setattr(group_commit, "sync_filesystem", counted_sync)

    progress: dict[str, int] = {}

    async def body() -> list[FetchResult]:
        async with azure_connector(azurite_server, container) as connector:
            with run_context("run-many"), on_progress(lambda name, done, total: progress.__setitem__(name, done)):
                return await connector.fetch_many(list(blobs), str(tmp_path / "ws"), concurrency=16)

    results = run(body())
    assert [r.identifier for r in results] == list(blobs) and all(r.ok for r in results)
    assert progress == {name: len(data) for name, data in blobs.items()}
    for result in results:
        assert result.path is not None and Path(result.path).read_bytes() == blobs[result.identifier]
        record = read_provenance(result.path)
        assert record["sha256"] == hashlib.sha256(blobs[result.identifier]).hexdigest()
        assert record["run_id"] == "run-many" and record["source_version"].startswith('"')
    assert calls["fsync"] == 0 and 0 < calls["sync"] < len(blobs)
    assert temporaries(tmp_path / "ws") == []


def landed_names(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if not p.name.startswith(".~da-")] if folder.exists() else []


def test_cancelling_fetch_many_leaves_whole_files_with_records_and_no_temporaries(
    azurite_server: AzuriteServer, tmp_path: Path
) -> None:
    blobs = {f"c/{i:03d}.bin": os.urandom(4096) for i in range(400)}
    container = new_container(azurite_server, blobs)
    workspace = tmp_path / "ws"

    async def body() -> None:
        async with azure_connector(azurite_server, container) as connector:
            task = asyncio.ensure_future(connector.fetch_many(list(blobs), str(workspace), concurrency=16))
            while len(landed_names(workspace / "c")) < 20:  # whole files, not temporaries
                await asyncio.sleep(0.005)  # until some have landed and others are under way
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    run(body())
    landed = landed_names(workspace / "c")
    assert 0 < len(landed) < len(blobs) and temporaries(workspace) == []
    for path in landed:
        assert path.read_bytes() == blobs[f"c/{path.name}"]
        assert read_provenance(path)["size"] == 4096
