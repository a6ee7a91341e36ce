"""Credentials of an ``s3`` source and the SigV4 signature of each request.

Requests are signed here (:func:`sign_v4`: AWS Signature Version 4 as S3 takes it, the path
signed as sent, never normalised; checked against botocore's signer in
``tests/unit/s3/test_s3_sigv4.py``). botocore (the library under boto3 and aiobotocore)
resolves a named profile and the default chain and is imported only for them: a source with
keys starts without it (botocore and the awscrt it loads cost ~0.12 s of CPU at start-up).
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
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from connectors.errors import AuthenticationError, ConfigurationError
from connectors.settings import S3Settings

# Internal to the package: its public surface is the connector.
__all__: list[str] = []

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_UNSIGNED = frozenset({"baggage", "connection", "expect", "keep-alive", "proxy-authenticate", "proxy-authorization",
                       "te", "traceparent", "tracestate", "trailer", "transfer-encoding", "upgrade", "user-agent",
                       "x-amzn-trace-id"})  # headers SigV4 signers leave out (botocore's list)


@dataclass(frozen=True)
class Keys:
    """Frozen credentials: what botocore's ``get_frozen_credentials()`` gives, for keys from a secret."""

    access_key: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:
        return "Keys(***)"


def sign_v4(method: str, url: str, headers: Mapping[str, str], keys: Any, region: str,
            now: datetime | None = None) -> dict[str, str]:
    """``headers`` plus ``X-Amz-Date``, the session token and the SigV4 ``Authorization`` of the request.

    Args:
        method: The HTTP method.
        url: The URL as it is sent (path and query already encoded; the path is signed as is).
        headers: The request's headers, ``X-Amz-Content-SHA256`` (the payload's hash) among them.
        keys: ``access_key``, ``secret_key`` and ``token`` (None without a session).
        region: The signing region.
        now: The signing time (default: now).

    Returns:
        The headers to send.
    """
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    sent = {**headers, "X-Amz-Date": stamp, **({"X-Amz-Security-Token": keys.token} if keys.token else {})}
    parts = urlsplit(url)
    signed = {k.lower(): " ".join(str(v).split()) for k, v in sent.items() if k.lower() not in _UNSIGNED}
    signed.setdefault("host", _host(parts))
    names = sorted(signed)
    pairs = sorted(tuple(p.partition("=")[::2]) for p in parts.query.split("&")) if parts.query else []
    canonical = "\n".join([method.upper(), parts.path or "/", "&".join(f"{k}={v}" for k, v in pairs),
                           "".join(f"{n}:{signed[n]}\n" for n in names), ";".join(names),
                           sent.get("X-Amz-Content-SHA256", EMPTY_SHA256)])
    scope = f"{stamp[:8]}/{region}/s3/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = f"AWS4{keys.secret_key}".encode()
    for part in (stamp[:8], region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    sent["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={keys.access_key}/{scope}, "
                             f"SignedHeaders={';'.join(names)}, Signature={signature}")
    return sent


def _host(parts: Any) -> str:
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return f"{host}:{parts.port}" if parts.port is not None and parts.port != default else host


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
        return sign_v4(method, url, sent, frozen, self._region)


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
        keys = Keys(settings.access_key_id.reveal(), settings.secret_access_key.reveal(), token)
        return Signer(keys, settings.region)
    return Signer(await asyncio.to_thread(_chain_credentials, settings.profile, source_id), settings.region)


def _chain_credentials(profile: str | None, source_id: str) -> Any:
    try:  # here: botocore is needed for a profile or the default chain only, never for keys
        import botocore.session
        from botocore.exceptions import BotoCoreError
    except ImportError:
        raise ConfigurationError("a profile or the default AWS chain needs botocore: pip install 'da-sources[s3]'",
                                 source_id=source_id) from None

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
