"""The store's own checksums of an object (``x-amz-checksum-*``), and the digests that verify them.

S3 keeps a checksum of the algorithm the uploader chose: CRC32 (what the AWS SDKs send by
default since 2025), CRC32C, CRC64NVME, SHA1 or SHA256. A **full-object** value (base64 of the
digest of all the bytes) is verified against the bytes we download: SHA256 against the sha256
we compute anyway, the others by a digest computed beside it (:func:`digests_for`). A
**composite** value (``<base64>-<parts>``: a multipart upload's checksum of its parts'
checksums, ``x-amz-checksum-type: COMPOSITE``) is recorded in the lineage, not verified: it
needs the part boundaries, which a download does not learn.

CRC32 comes from :mod:`zlib`, SHA1 from :mod:`hashlib`, CRC32C and CRC64NVME from ``awscrt``
(the AWS common runtime botocore itself uses for them; the ``s3`` extra installs it), imported
only when an object carries one of them. Each releases the GIL on large buffers, so the
download engine's hashing threads run them beside the network.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from connectors.errors import ConfigurationError

VERIFIED = ("sha256", "sha1", "crc32", "crc32c", "crc64nvme")  # the algorithms S3 offers


class CrcDigest:
    """A CRC with hashlib's shape (``name``, ``update``, ``digest``), big-endian as S3 encodes it."""

    def __init__(self, name: str, step: Callable[[Any, int], int], width: int) -> None:
        self.name = name
        self._step = step
        self._width = width
        self._value = 0

    def update(self, data: Any) -> None:
        """Fold more bytes into the CRC.

        Args:
            data: The next bytes of the object (bytes or a memoryview), in order.
        """
        self._value = self._step(data, self._value)

    def digest(self) -> bytes:
        """The CRC as S3 stores it before base64.

        Returns:
            ``width`` bytes, big-endian.
        """
        return self._value.to_bytes(self._width, "big")


def new_digest(algorithm: str) -> Any:
    """A fresh digest object for an algorithm.

    Args:
        algorithm: One of :data:`VERIFIED`.

    Returns:
        A hashlib object, or a :class:`CrcDigest` for the CRCs.

    Raises:
        ConfigurationError: CRC32C or CRC64NVME without ``awscrt`` installed.
    """
    if algorithm in ("sha256", "sha1"):
        return hashlib.new(algorithm, usedforsecurity=False)
    if algorithm == "crc32":
        return CrcDigest("crc32", zlib.crc32, 4)
    try:
        from awscrt import checksums  # here: only an object with such a checksum pays for the import
    except ImportError:
        raise ConfigurationError(f"verifying an x-amz-checksum-{algorithm} needs awscrt: "
                                 "pip install 'da-sources[s3]'") from None
    if algorithm == "crc32c":
        return CrcDigest("crc32c", checksums.crc32c, 4)
    return CrcDigest("crc64nvme", checksums.crc64nvme, 8)


def full_object(checksums: Mapping[str, str]) -> dict[str, str]:
    """The verifiable full-object checksums among those an answer carried.

    Args:
        checksums: Algorithm (lower case) -> value, as the store sent them.

    Returns:
        Algorithm -> base64 value, composites (``...-<parts>``) and unknown algorithms left out.
    """
    return {name: value for name, value in checksums.items() if name in VERIFIED and value and "-" not in value}


def digests_for(checksums: Mapping[str, str], have: Iterable[str] = ("sha256",)) -> list[Any]:
    """New digests for the full-object checksums not computed anyway.

    Args:
        checksums: Algorithm -> value, as the store sent them.
        have: The algorithms already computed (by default sha256, the engine's own).

    Returns:
        One fresh digest object per full-object checksum not in ``have``.
    """
    skip = set(have)
    return [new_digest(name) for name in full_object(checksums) if name not in skip]


def mismatch(checksums: Mapping[str, str], computed: Mapping[str, bytes]) -> str | None:
    """Why the bytes do not match a full-object checksum of the object.

    Args:
        checksums: Algorithm -> value, as the store sent them.
        computed: Digest bytes of the downloaded bytes, by algorithm.

    Returns:
        The first mismatch, said in words; None when every full-object checksum matches.

    Raises:
        AssertionError: a full-object checksum has no computed digest: a caller's bug
            (:func:`missing` tells which to compute), never a pass.
    """
    for name, stored in full_object(checksums).items():
        if name not in computed:
            raise AssertionError(f"x-amz-checksum-{name} was not computed")
        actual = base64.b64encode(computed[name]).decode()
        if actual != stored:
            return f"x-amz-checksum-{name} mismatch (the object says {stored}, the bytes hash to {actual})"
    return None


def missing(checksums: Mapping[str, str], computed: Iterable[str]) -> list[str]:
    """The full-object checksums still to compute.

    Args:
        checksums: Algorithm -> value, as the store sent them.
        computed: The algorithms already computed.

    Returns:
        The algorithms of full-object checksums not among ``computed``.
    """
    done = set(computed)
    return [name for name in full_object(checksums) if name not in done]
