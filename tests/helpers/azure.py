"""Azure Blob test helpers: containers in Azurite, source configs, raw uploads, connectors through a fault proxy."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.storage.blob import (
    BlobServiceClient,
    ContainerSasPermissions,
    generate_container_sas,
)

from connectors import (
    DataSourceConfig,
)
from connectors.azure_blob import AzureBlobConnector
from connectors.azure_blob.upload import Uploaded
from tests.faults import FaultProxy
from tests.harness import AzuriteServer

CANARY = "CANARY-S3CRET-7f3a9"  # must never appear in any message, repr, log or record


def new_container(server: AzuriteServer, items: dict[str, bytes] | None = None, *, public: bool = False) -> str:
    """A fresh container holding ``items`` (none by default); its name."""
    name = f"t{uuid.uuid4().hex[:20]}"
    with BlobServiceClient.from_connection_string(server.connection_string) as service:
        container = service.create_container(name, public_access="container" if public else None)
        for blob, data in (items or {}).items():
            container.upload_blob(blob, data)
    return name


def azure_config(server: AzuriteServer, container: str, source_id: str = "azure-test",
                 **settings: Any) -> DataSourceConfig:
    config = {"container_name": container, **settings}
    if not any(k in config for k in ("account_url", "connection_string")):
        config["connection_string"] = server.connection_string
    return DataSourceConfig(id=source_id, type="azure_blob", name="Azure", config=config)


async def upload_raw(server: AzuriteServer, container: str, names: list[str]) -> None:
    """Upload names with '.' segments verbatim (the SDK's HTTP stack would fold them): %2E-escaped dots."""
    import aiohttp
    import yarl

    sas = generate_container_sas(server.account_name, container, account_key=server.account_key,
                                 permission=ContainerSasPermissions(write=True, create=True),
                                 expiry=datetime.now(UTC) + timedelta(hours=1))
    async with aiohttp.ClientSession() as session:
        for name in names:
            quoted = "/".join(p.replace(".", "%2E") if p in (".", "..") else p for p in name.split("/"))
            url = yarl.URL(f"{server.blob_endpoint}/{container}/{quoted}?{sas}", encoded=True)
            async with session.put(url, data=b"x", headers={"x-ms-blob-type": "BlockBlob"}) as response:
                assert response.status == 201, await response.text()


def via_proxy(server: AzuriteServer, proxy: FaultProxy, container: str, key: str | None = None,
              **settings: Any) -> AzureBlobConnector:
    cs = (f"DefaultEndpointsProtocol=http;AccountName={server.account_name};"
          f"AccountKey={key or server.account_key};BlobEndpoint={proxy.endpoint(server.account_name)};")
    settings.setdefault("retry_total", 3)
    return AzureBlobConnector(azure_config(server, container, connection_string=cs, **settings))


def connector_for(server: AzuriteServer, container: str, monkeypatch: pytest.MonkeyPatch,
                  **config: Any) -> AzureBlobConnector:
    monkeypatch.setenv("UP_AZURE", server.connection_string)
    return AzureBlobConnector(DataSourceConfig(id="lake", type="azure_blob", name="Lake", config={
        "connection_string": {"env": "UP_AZURE"}, "container_name": container, **config}))


def upload(connector: AzureBlobConnector, *args: Any, **kwargs: Any) -> Uploaded:
    async def run() -> Uploaded:
        async with connector:
            return await connector.upload(*args, **kwargs)

    return asyncio.run(run())


def read_back(server: AzuriteServer, container: str, name: str) -> tuple[bytes, dict[str, Any]]:
    with BlobServiceClient.from_connection_string(server.connection_string) as service:
        blob = service.get_blob_client(container, name)
        properties = blob.get_blob_properties()
        return blob.download_blob().readall(), {"metadata": properties.metadata,
                                                "md5": properties.content_settings.content_md5,
                                                "type": properties.content_settings.content_type,
                                                "blob_type": str(properties.blob_type)}


ENTRA_REPORT = b"region,amount\nnorth,10\n"  # report.csv in the https Azurite (azure_blob/conftest.py)
