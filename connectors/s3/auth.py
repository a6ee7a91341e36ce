"""Credentials of an ``s3`` source and the SigV4 signature of each request.

botocore (the library under boto3 and aiobotocore) resolves the credentials and
signs; it never sends a request here, so it adds no event-loop or pool of its own.
Ways to authenticate, exactly one per source (:class:`~connectors.settings.S3Settings`):

* ``access_key_id`` + ``secret_access_key`` (+ ``session_token``): secrets, given as
  ``{"env": ...}`` / ``{"secret": ...}`` references in the sources file;
* ``profile``: a named profile of the shared AWS config files (``~/.aws/config``);
* ``credential: default``: the default AWS chain (environment, config files, web
  identity, SSO, container and instance metadata), as the AWS CLI finds them;
* ``credential: anonymous``: unsigned requests, for public buckets.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from connectors.errors import AuthenticationError, ConfigurationError
from connectors.settings import S3Settings

# Internal to the package: its public surface is the connector.
__all__: list[str] = []

try:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from botocore.exceptions import BotoCoreError
except ImportError as exc:  # pragma: no cover - the registry turns this into an install hint
    raise ImportError("the s3 connector needs botocore: pip install 'da-sources[s3]'") from exc

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class _S3Signature(SigV4Auth):  # type: ignore[misc]
    """SigV4 as S3 wants it: the path is signed as sent, never normalised ('a//b' and '%2F' stay)."""

    def _normalize_url_path(self, path: str) -> str:
        return path


class Signer:
    """Signs requests with the source's credentials (None: anonymous, requests go unsigned)."""

    def __init__(self, credentials: Any, region: str) -> None:
        self._credentials = credentials
        self._region = region

    def __repr__(self) -> str:
        return f"Signer(region={self._region!r}, signed={self._credentials is not None})"

    async def headers(self, method: str, url: str, headers: Mapping[str, str],
                      payload_sha256: str = EMPTY_SHA256) -> dict[str, str]:
        """``headers`` plus the signature of ``method url`` (the url already encoded, as it is sent)."""
        sent = {**headers, "X-Amz-Content-SHA256": payload_sha256}
        if self._credentials is None:
            return sent
        credentials = self._credentials
        if getattr(credentials, "refresh_needed", lambda: False)():  # a refresh may ask the network: off the loop
            frozen = await asyncio.to_thread(credentials.get_frozen_credentials)
        else:
            frozen = credentials.get_frozen_credentials() if hasattr(credentials, "get_frozen_credentials") \
                else credentials
        request = AWSRequest(method=method, url=url, headers=sent)
        _S3Signature(frozen, "s3", self._region).add_auth(request)
        return dict(request.headers.items())


async def signer_for(settings: S3Settings, source_id: str) -> Signer:
    """The signer of a source's requests, its credentials resolved (profile and chain in a thread).

    Raises:
        ConfigurationError: the named profile does not exist.
        AuthenticationError: the default chain or the profile yields no credentials.
    """
    if settings.credential == "anonymous":
        return Signer(None, settings.region)
    if settings.access_key_id is not None and settings.secret_access_key is not None:
        token = settings.session_token.reveal() if settings.session_token else None
        keys = Credentials(settings.access_key_id.reveal(), settings.secret_access_key.reveal(), token)
        return Signer(keys, settings.region)
    return Signer(await asyncio.to_thread(_chain_credentials, settings.profile, source_id), settings.region)


def _chain_credentials(profile: str | None, source_id: str) -> Any:
    import botocore.session  # here: it brings botocore's client machinery, which keys and anonymous never need

    where = f"profile {profile!r}" if profile else "the default AWS credential chain"
    try:
        credentials = botocore.session.Session(profile=profile).get_credentials()
    except BotoCoreError as exc:  # botocore's text names files and profiles, never a key; still not copied
        raise ConfigurationError(f"{where}: cannot read credentials ({type(exc).__name__})",
                                 source_id=source_id) from None
    if credentials is None:
        raise AuthenticationError(f"{where} found no credentials (environment, config files, web identity, "
                                  "instance metadata)", source_id=source_id)
    return credentials


def bucket_url(settings: S3Settings) -> str:
    """The bucket's base address, without a trailing '/': path-style or virtual-hosted."""
    endpoint = settings.endpoint_url or f"https://s3.{settings.region}.amazonaws.com"
    path_style = settings.path_style if settings.path_style is not None else settings.endpoint_url is not None
    parts = urlsplit(endpoint.rstrip("/"))
    bucket = quote(settings.bucket, safe="")
    if path_style:
        return urlunsplit((parts.scheme, parts.netloc, f"{parts.path}/{bucket}", "", ""))
    return urlunsplit((parts.scheme, f"{bucket}.{parts.netloc}", parts.path, "", ""))


def key_url(base: str, key: str) -> str:
    """The object's address: each byte of the key encoded once, '/' kept (S3's own rule)."""
    return f"{base}/{quote(key, safe='/~')}"


def query_string(params: Mapping[str, str]) -> str:
    """Query parameters encoded as SigV4 signs them (sorted, RFC 3986)."""
    return "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(params.items()))
