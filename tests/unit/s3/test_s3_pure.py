"""The pure parts of the s3 connector: settings, addresses, ETag MD5s, checksums, listing pages.

docs/RELIABILITY.md row 68 (composite checksums).
"""

from __future__ import annotations

import base64
import hashlib
import pickle

import pytest

from connectors import ConfigurationError, DataSourceConfig
from connectors.s3.auth import bucket_url, key_url
from connectors.s3.checksums import digests_for, full_object
from connectors.s3.data_path import checksum_problem, etag_md5
from connectors.s3.listing import parse_page
from connectors.settings import S3Settings

KEYS = {"access_key_id": {"env": "K"}, "secret_access_key": {"env": "S"}}


def config(**values: object) -> DataSourceConfig:
    return DataSourceConfig(id="lake", type="s3", name="Lake", config={"bucket": "b", **values})


@pytest.mark.parametrize("values", [{}, {**KEYS, "profile": "p"}, {"access_key_id": {"env": "K"}},
                                    {"session_token": {"env": "T"}, "credential": "default"},
                                    {"credential": "sometimes"}, {**KEYS, "endpoint_url": "ftp://x"}])
def test_exactly_one_way_to_authenticate(values: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match="config"):
        config(**values)


def test_a_literal_secret_is_masked_everywhere(canary: str) -> None:
    source = config(access_key_id="AKIAEXAMPLE", secret_access_key=canary)
    for text in (repr(source), str(source.config), repr(pickle.loads(pickle.dumps(source)))):
        assert canary not in text
    settings = S3Settings.model_validate({"bucket": "b", "access_key_id": "a", "secret_access_key": canary})
    assert canary not in repr(settings)


def test_addresses_path_style_and_virtual_hosted() -> None:
    minio = S3Settings.model_validate({"bucket": "data", "endpoint_url": "http://127.0.0.1:9000/",
                                      "access_key_id": "a", "secret_access_key": "s"})
    assert bucket_url(minio) == "http://127.0.0.1:9000/data"
    aws = S3Settings.model_validate({"bucket": "data", "region": "eu-west-1", "credential": "default"})
    assert bucket_url(aws) == "https://data.s3.eu-west-1.amazonaws.com"
    forced = S3Settings.model_validate({"bucket": "data", "endpoint_url": "https://r2.example", "path_style": False,
                                        "credential": "anonymous"})
    assert bucket_url(forced) == "https://data.r2.example"
    assert key_url("http://h/b", "a b/c+d%/é//x") == "http://h/b/a%20b/c%2Bd%25/%C3%A9//x"


def test_etag_md5_only_for_single_part_etags() -> None:
    digest = hashlib.md5(b"x").hexdigest()  # noqa: S324
    assert etag_md5(f'"{digest}"') == base64.b64encode(bytes.fromhex(digest)).decode()
    assert etag_md5(f'"{digest}-3"') is None
    assert etag_md5("") is None


def test_checksum_sha256_is_compared_when_full_object() -> None:
    sha = hashlib.sha256(b"x").hexdigest()
    good = base64.b64encode(bytes.fromhex(sha)).decode()
    assert checksum_problem({"sha256": good}, sha) is None
    assert "mismatch" in (checksum_problem({"sha256": good}, hashlib.sha256(b"y").hexdigest()) or "")
    assert checksum_problem({"sha256": good + "-2"}, hashlib.sha256(b"y").hexdigest()) is None  # composite


CHECK = b"123456789"  # the standard CRC check input, with each algorithm's published check value
CHECK_VALUES = {"crc32": "cbf43926", "crc32c": "e3069283", "crc64nvme": "ae8b14860a799888",
                "sha1": hashlib.sha1(CHECK).hexdigest(), "sha256": hashlib.sha256(CHECK).hexdigest()}


@pytest.mark.parametrize("algorithm", sorted(CHECK_VALUES))
def test_every_full_object_checksum_is_computed_and_compared(algorithm: str) -> None:
    stored = {algorithm: base64.b64encode(bytes.fromhex(CHECK_VALUES[algorithm])).decode()}
    digests = digests_for(stored)
    assert [d.name for d in digests] == ([] if algorithm == "sha256" else [algorithm])
    for digest in digests:  # in two pieces, as the engine feeds ranges
        digest.update(memoryview(CHECK)[:4])
        digest.update(memoryview(CHECK)[4:])
    computed = {d.name: d.digest() for d in digests}
    sha = hashlib.sha256(CHECK).hexdigest()
    assert checksum_problem(stored, sha, computed) is None
    wrong = {algorithm: base64.b64encode(bytes(len(bytes.fromhex(CHECK_VALUES[algorithm])))).decode()}
    assert f"x-amz-checksum-{algorithm} mismatch" in (checksum_problem(wrong, sha, computed) or "")


def test_a_composite_checksum_is_recorded_not_verified() -> None:
    composite = {"crc32": "AAAAAA==-3", "crc64nvme": "AAAAAAAAAAA=-2", "sha1": "x-2"}
    assert full_object(composite) == {} and digests_for(composite) == []
    assert checksum_problem(composite, hashlib.sha256(b"y").hexdigest(), {}) is None


def test_a_listing_page_decodes_keys_and_drops_folder_placeholders() -> None:
    page = b"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><EncodingType>url</EncodingType>
<IsTruncated>true</IsTruncated><NextContinuationToken>tok</NextContinuationToken>
<Contents><Key>a+b%2Bc%20d</Key><Size>3</Size><ETag>&quot;abc&quot;</ETag><LastModified>2026-01-02T03:04:05.000Z</LastModified></Contents>
<Contents><Key>dir/</Key><Size>0</Size><ETag>&quot;d41d&quot;</ETag></Contents>
</ListBucketResult>"""
    items, token = parse_page(page)
    assert token == "tok"
    assert [(i.path, i.size, i.metadata["etag"]) for i in items] == [("a b+c d", 3, '"abc"')]
    assert items[0].metadata["last_modified"] == "2026-01-02T03:04:05Z"
