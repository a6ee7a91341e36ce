"""Uploads under faults Azurite cannot produce itself (tests/faults.py): retried, or nothing visible."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobServiceClient, ContentSettings

from connectors.azure_blob.upload import BLOCK
from connectors.errors import ConnectionError
from tests.faults import FaultProxy, Request, Rule
from tests.harness import AzuriteServer
from tests.helpers.azure import new_container, via_proxy

pytestmark = pytest.mark.integration


def put_block(request: Request) -> bool:
    return request.method == "PUT" and "comp=block&" in request.target


def put_block_list(request: Request) -> bool:
    return request.method == "PUT" and "comp=blocklist" in request.target


def upload_via_proxy(server: AzuriteServer, container: str, rules: list[Rule], local: Path) -> FaultProxy:
    async def main() -> FaultProxy:
        async with FaultProxy(server.port) as proxy:
            for rule in rules:
                proxy.add(rule)
            async with via_proxy(server, proxy, container) as connector:
                await connector.upload(local, "out.bin")
            return proxy

    return asyncio.run(main())


def blob_bytes(server: AzuriteServer, container: str) -> bytes:
    with BlobServiceClient.from_connection_string(server.connection_string) as service:
        return service.get_blob_client(container, "out.bin").download_blob().readall()


def test_a_refused_block_and_a_refused_commit_are_retried(azurite_server: AzuriteServer, tmp_path: Path) -> None:
    container = new_container(azurite_server)
    local = tmp_path / "in.bin"
    local.write_bytes(os.urandom(2 * BLOCK + 100))
    proxy = upload_via_proxy(azurite_server, container, [Rule("status", match=put_block, status=503),
                                                         Rule("status", match=put_block_list, status=500)], local)
    assert blob_bytes(azurite_server, container) == local.read_bytes()
    assert sum(map(put_block, proxy.requests)) == 4 and sum(map(put_block_list, proxy.requests)) == 2


def test_a_commit_that_keeps_failing_leaves_nothing_visible(azurite_server: AzuriteServer, tmp_path: Path) -> None:
    container = new_container(azurite_server)
    local = tmp_path / "in.bin"
    local.write_bytes(os.urandom(BLOCK + 1))
    with pytest.raises(ConnectionError, match=r"uploading blob 'out.bin': the service is unavailable \(HTTP 503"):
        upload_via_proxy(azurite_server, container, [Rule("status", match=put_block_list, times=None)], local)
    with pytest.raises(ResourceNotFoundError):
        blob_bytes(azurite_server, container)


def test_a_commit_whose_answer_is_lost_is_not_mistaken_for_a_taken_name(
    azurite_server: AzuriteServer, tmp_path: Path
) -> None:
    container = new_container(azurite_server)
    local = tmp_path / "in.bin"
    local.write_bytes(os.urandom(1000))
    data = local.read_bytes()

    def commit_then_lose_the_answer(request: Request) -> bool:
        # what the service does with our first commit, done here; the proxy then answers 503 instead
        if not put_block_list(request):
            return False
        with BlobServiceClient.from_connection_string(azurite_server.connection_string) as service:
            blob = service.get_blob_client(container, "out.bin")
            blocks = blob.get_block_list("uncommitted")[1]
            md5 = bytearray(hashlib.md5(data).digest())  # noqa: S324
            blob.commit_block_list([BlobBlock(b.id) for b in blocks], content_settings=ContentSettings(content_md5=md5),
                                   metadata={"sha256": hashlib.sha256(data).hexdigest()})
        return True

    proxy = upload_via_proxy(azurite_server, container, [Rule("status", match=commit_then_lose_the_answer)], local)
    assert sum(map(put_block_list, proxy.requests)) == 2
    assert blob_bytes(azurite_server, container) == data
