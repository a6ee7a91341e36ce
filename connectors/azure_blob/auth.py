"""How the Azure Blob connector authenticates: the SDK's credential and the data path's.

Each way in gives two things: a credential for the SDK's client (properties,
the connection test) and an authorizer for the plain GETs of
:mod:`connectors.azure_blob.data_path` (a SAS in the query, or a bearer token).
An account key never leaves the process: the data path gets a read-only
container SAS signed locally from it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.core.exceptions import ClientAuthenticationError
from azure.storage.blob import ContainerSasPermissions, generate_container_sas

from connectors.errors import AuthenticationError, ConfigurationError, ConnectionError
from connectors.settings import AzureBlobSettings

# Internal to the package: its public surface is the connector.
__all__: list[str] = []

SAS_LIFETIME = timedelta(hours=2)  # the data path's self-signed read-only SAS; renewed at half-life
STORAGE_SCOPE = "https://storage.azure.com/.default"


class _Anonymous:
    """No authentication: public containers."""

    async def query(self) -> str:
        return ""

    async def headers(self) -> dict[str, str]:
        return {}


class _GivenSas(_Anonymous):
    """A SAS token from the configuration, sent as the query string."""

    def __init__(self, token: str) -> None:
        self._token = token.lstrip("?")

    async def query(self) -> str:
        return self._token


class _KeySignedSas(_Anonymous):
    """A read-only container SAS signed locally with the account key, renewed at half-life.

    Signing one SAS is cheaper than signing every request with SharedKey, and
    the key itself never leaves the process.
    """

    def __init__(self, account_name: str, container: str, key: str,
                 permission: ContainerSasPermissions | None = None) -> None:
        self._account, self._container, self._key = account_name, container, key
        self._permission = permission or ContainerSasPermissions(read=True, list=True)
        self._token = ""
        self._renew_at = datetime.min.replace(tzinfo=UTC)

    async def query(self) -> str:
        now = datetime.now(UTC)
        if now >= self._renew_at:
            self._token = generate_container_sas(
                self._account, self._container, account_key=self._key,
                permission=self._permission,
                start=now - timedelta(minutes=5), expiry=now + SAS_LIFETIME,  # tolerate clock skew
            )
            self._renew_at = now + SAS_LIFETIME / 2
        return self._token

    def for_writing(self) -> _KeySignedSas:
        """A SAS that may also create and write blobs, for uploads only: reads keep the read-only one."""
        write = ContainerSasPermissions(read=True, write=True, create=True)
        return _KeySignedSas(self._account, self._container, self._key, write)


class _BearerToken(_Anonymous):
    """An Entra ID token from an azure-identity credential, refreshed five minutes before expiry."""

    def __init__(self, credential: Any) -> None:
        self._credential = credential
        self._token: Any = None

    async def headers(self) -> dict[str, str]:
        if self._token is None or self._token.expires_on - 300 < time.time():
            self._token = await self._credential.get_token(STORAGE_SCOPE)
        return {"Authorization": f"Bearer {self._token.token}"}


@dataclass(frozen=True)
class Endpoint:
    """Where the account is and which secret (if any) authenticates to it."""

    account_url: str
    account_key: str | None = None
    sas_token: str | None = None


def endpoint_of(settings: AzureBlobSettings, source_id: str) -> Endpoint:
    """The account URL, key and SAS the settings name, secrets revealed for use (never shown)."""
    if settings.connection_string is not None:
        return _parse_connection_string(settings.connection_string.reveal(), source_id)
    assert settings.account_url is not None
    # a SAS pasted into the URL is used as the SAS, and kept out of every URI we show
    url, _, query = settings.account_url.partition("?")
    return Endpoint(
        url,
        settings.account_key.reveal() if settings.account_key else None,
        settings.sas_token.reveal() if settings.sas_token else (query or None),
    )


def _parse_connection_string(text: str, source_id: str) -> Endpoint:
    """Account URL, key and SAS from a connection string; errors never quote it."""
    parts = {k.strip().lower(): v.strip() for k, _, v in (p.partition("=") for p in text.split(";")) if k.strip()}
    url = parts.get("blobendpoint")
    if not url and parts.get("accountname"):
        protocol = parts.get("defaultendpointsprotocol", "https")
        url = f"{protocol}://{parts['accountname']}.blob.{parts.get('endpointsuffix', 'core.windows.net')}"
    if not url:
        raise ConfigurationError(
            "config.connection_string: has neither BlobEndpoint nor AccountName", source_id=source_id
        )
    return Endpoint(url, parts.get("accountkey"), parts.get("sharedaccesssignature"))


def credentials_for(settings: AzureBlobSettings, endpoint: Endpoint, source_id: str) -> tuple[Any, Any, Any]:
    """(SDK credential, data-path authorizer, credential to close) for the configured way in."""
    if endpoint.account_key:
        name = _account_name(endpoint.account_url)
        authorizer = _KeySignedSas(name, settings.container_name, endpoint.account_key)
        return AzureNamedKeyCredential(name, endpoint.account_key), authorizer, None
    if endpoint.sas_token:
        token = endpoint.sas_token.lstrip("?")
        return AzureSasCredential(token), _GivenSas(token), None
    if settings.credential == "default":
        # a token may take several calls (identity endpoints, a CLI): one bound for all of them
        credential = _default_credential(source_id, settings.connect_timeout + settings.read_timeout)
        return credential, _BearerToken(credential), credential
    return None, _Anonymous(), None


def _default_credential(source_id: str, timeout: float) -> Any:
    try:
        from azure.identity.aio import DefaultAzureCredential
    except ImportError:
        raise ConfigurationError(
            "config.credential: 'default' needs azure-identity; install it with "
            "pip install 'da-sources[identity]'",
            source_id=source_id,
        ) from None
    return _FailFastCredential(DefaultAzureCredential(), source_id, timeout)


class _FailFastCredential:
    """An azure-identity credential whose failure to find an identity is an AuthenticationError at once,
    and which gives up after ``timeout`` seconds (connect_timeout + read_timeout) with a ConnectionError.

    The SDK's retry policy would retry a failed token request like a network
    error (over a minute with the default budget) before giving up.
    """

    def __init__(self, inner: Any, source_id: str, timeout: float) -> None:
        self._inner, self._source_id, self._timeout = inner, source_id, timeout

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._inner.get_token(*scopes, **kwargs)
        except TimeoutError:
            raise ConnectionError(
                f"credential 'default' got no token within {self._timeout:g} s (connect_timeout + read_timeout)",
                source_id=self._source_id,
            ) from None
        except ClientAuthenticationError:  # its text lists every way it tried; none of them is a secret, but
            raise AuthenticationError(  # it is long, so name the usual fixes instead
                "credential 'default' found no identity to use: set AZURE_TENANT_ID, AZURE_CLIENT_ID and "
                "AZURE_CLIENT_SECRET, sign in with 'az login', or run where a managed identity is assigned",
                source_id=self._source_id,
            ) from None

    async def close(self) -> None:
        await self._inner.close()


def _account_name(account_url: str) -> str:
    """``acct`` of https://acct.blob.core.windows.net, or of http://127.0.0.1:10000/acct (emulator style)."""
    parts = urlsplit(account_url)
    host = parts.hostname or ""
    try:
        ip_address(host)
        is_ip = True
    except ValueError:
        is_ip = host == "localhost"
    if is_ip:
        return parts.path.strip("/").split("/", 1)[0]
    return host.split(".", 1)[0]
