"""The requests of an ``s3`` source, on one aiohttp session, in the shape the shared download engine takes.

:class:`S3DataPath` offers what :class:`~connectors.azure_blob.ranged_download.BlobDownload`
needs (``get`` of a byte range pinned with ``If-Match``), so S3 objects download
with the same engine as blobs: parallel ranged GETs written in place, hashed as
they land, restarted when the object changes. Failures are raised as
:class:`~connectors.azure_blob.errors.HttpStatusError` with S3's error code and
translated by :func:`connectors.s3.errors.translate`.

Integrity facts (:func:`s3_facts`): the ETag of a single-part object is the MD5
of its bytes (checked unless ``verify_etag_md5`` is off); ``x-amz-checksum-*``
are read where the store sends them and every full-object one is verified
(:mod:`connectors.s3.checksums`, :func:`checksum_problem`).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import yarl

from connectors.azure_blob.data_path import BlobFacts, facts_of
from connectors.azure_blob.errors import HttpStatusError
from connectors.s3.auth import EMPTY_SHA256, Signer, key_url, query_string
from connectors.s3.checksums import full_object, mismatch

_ETAG_MD5 = re.compile(r'^"?([0-9a-fA-F]{32})"?$')  # a multipart ETag ends in -<parts>: not an MD5
_CODE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")

# Internal to the package: its public surface is the connector.
__all__: list[str] = []


class S3StatusError(HttpStatusError):
    """A non-success answer from an S3-compatible store, translated in S3's words."""

    credentials = "the access key id and secret (and session token), the profile or the credential chain"
    missing = {"NoSuchBucket": "the bucket", "NoSuchKey": "the object", "NoSuchVersion": "the object's version",
               "NoSuchUpload": "the multipart upload"}


@dataclass(frozen=True)
class S3Facts(BlobFacts):
    """What the first response told about the object, S3's extras included."""

    version_id: str | None = None
    checksums: dict[str, str] = field(default_factory=dict)  # algorithm -> base64 value, as the store sent it
    refined: bool = False  # the checksums come from a HEAD pinned to the etag (:meth:`S3DataPath.refine_facts`)


class S3DataPath:
    """Signed requests for one bucket on the connector's shared aiohttp session."""

    noun = "object"

    def __init__(self, session: aiohttp.ClientSession, base: str, signer: Signer, source_id: str | None,
                 *, bucket: str = "", verify_etag_md5: bool = True) -> None:
        self.session = session
        self.bucket = bucket
        self.base = base
        self.signer = signer
        self.source_id = source_id
        self.verify_etag_md5 = verify_etag_md5

    @property
    def container(self) -> str:
        """The bucket's name (what an upload result calls its container)."""
        return self.bucket

    def blob_uri(self, key: str) -> str:
        """The object's address without any query or credential: safe for lineage records."""
        return key_url(self.base, key)

    def read_facts(self, response: aiohttp.ClientResponse) -> S3Facts:
        """The facts the download engine pins to, from a 200/206 answer."""
        return s3_facts(response, verify_etag_md5=self.verify_etag_md5)

    async def refine_facts(self, name: str, facts: BlobFacts) -> S3Facts:
        """``facts`` with the object's stored checksums (one HEAD, ``If-Match`` the etag).

        A full-object checksum of the store's (``x-amz-checksum-*``) is verified,
        so the ETag's MD5 is then not computed: it costs more CPU than the sha256
        or any CRC (about 1.4 s per GiB here) and proves no more.
        """
        headers = await self.head(name, facts.etag)
        checksums = checksums_of(headers)
        md5 = None if full_object(checksums) else facts.content_md5
        extra = facts if isinstance(facts, S3Facts) else S3Facts(**vars(facts))
        return replace(extra, content_md5=md5, checksums=checksums, refined=True)

    async def get(self, name: str, start: int, end: int | None, etag: str | None) -> aiohttp.ClientResponse:
        """One GET of bytes ``start``..``end`` (inclusive; None: all), ``If-Match`` ``etag`` when given."""
        headers = {"Range": f"bytes={start}-{end}"} if end is not None else {}
        if etag is not None:
            headers["If-Match"] = etag
        else:  # the first GET: where it covers the whole object, the store may send its checksums
            headers["x-amz-checksum-mode"] = "ENABLED"
        return await self.send("GET", self.blob_uri(name), headers)

    async def head(self, name: str, etag: str | None = None) -> Mapping[str, str]:
        """The object's headers (HeadObject, with its checksums when the store keeps them)."""
        headers = {"x-amz-checksum-mode": "ENABLED", **({"If-Match": etag} if etag else {})}
        async with await self.send("HEAD", self.blob_uri(name), headers) as response:
            return response.headers

    async def get_bucket(self, params: Mapping[str, str]) -> bytes:
        """The body of a bucket-level GET, e.g. one ListObjectsV2 page."""
        async with await self.send("GET", f"{self.base}/?{query_string(params)}", {}) as response:
            return await response.read()

    async def put(self, key: str, body: Any, headers: Mapping[str, str], payload_sha256: str) -> Mapping[str, str]:
        """PutObject: ``body`` (bytes or an async iterator of bytes) with its headers; the answer's headers."""
        url = self.blob_uri(key)
        signed = await self.signer.headers("PUT", url, headers, payload_sha256)
        async with self.session.put(yarl.URL(url, encoded=True), data=body, headers=signed,
                                    allow_redirects=False) as response:
            if response.status != 200:
                raise S3StatusError(response.status, _code_of(await _body(response)), _retry_after(response))
            await response.read()
            return response.headers

    async def send(self, method: str, url: str, headers: Mapping[str, str]) -> aiohttp.ClientResponse:
        """Send a body-less signed request; raises :class:`HttpStatusError` on a non-2xx answer."""
        signed = await self.signer.headers(method, url, headers, EMPTY_SHA256)
        response = await self.session.request(method, yarl.URL(url, encoded=True), headers=signed,
                                              allow_redirects=False)
        if response.status in (200, 206):
            return response
        body = await _body(response)
        response.release()
        raise S3StatusError(response.status, _code_of(body), _retry_after(response))


async def _body(response: aiohttp.ClientResponse) -> bytes:
    # an error body is a small XML document; reading it lets the connection go back to the pool
    try:
        return await response.content.read(64 * 1024)
    except aiohttp.ClientError:
        return b""


def _code_of(body: bytes) -> str | None:
    match = _CODE.search(body)
    return match.group(1).decode() if match else None


def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


def s3_facts(response: aiohttp.ClientResponse, *, verify_etag_md5: bool = True) -> S3Facts:
    """Etag, size, MD5 (from a single-part ETag), version id and checksums of a 200/206 answer."""
    base = facts_of(response)
    headers = response.headers
    md5 = etag_md5(base.etag) if verify_etag_md5 else None
    checksums = checksums_of(headers)
    return S3Facts(base.etag, base.size, md5, base.last_modified, base.content_type,
                   version_id=headers.get("x-amz-version-id"), checksums=checksums)


def checksums_of(headers: Mapping[str, str]) -> dict[str, str]:
    """The ``x-amz-checksum-<algorithm>`` values of an answer, keyed by algorithm."""
    return {k.lower()[len(_CHECKSUM):]: v for k, v in headers.items()
            if k.lower().startswith(_CHECKSUM) and k.lower() != "x-amz-checksum-type"}


def etag_md5(etag: str) -> str | None:
    """The base64 MD5 a single-part object's ETag carries; None for a multipart (or opaque) ETag."""
    match = _ETAG_MD5.match(etag or "")
    return base64.b64encode(bytes.fromhex(match.group(1))).decode() if match else None


def checksum_problem(checksums: Mapping[str, str], sha256_hex: str,
                     computed: Mapping[str, bytes] | None = None) -> str | None:
    """Why the bytes do not match one of the object's full-object ``x-amz-checksum-*``.

    A composite checksum (of parts, ``...-<parts>``) is recorded, not checked.

    Args:
        checksums: The object's checksums (algorithm -> value).
        sha256_hex: Our sha256 of the bytes.
        computed: The other digests by algorithm (every full-object checksum the object has).

    Returns:
        The mismatch in words, or None.
    """
    return mismatch(checksums, {**(computed or {}), "sha256": bytes.fromhex(sha256_hex)})


_CHECKSUM = "x-amz-checksum-"
