"""S3Connector against a real S3-compatible server (moto, signatures checked): conformance, faults, upload.

docs/RELIABILITY.md rows 43-44, 62-64, 68-69.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest

from connectors import (
    AuthenticationError,
    ConnectionError,
    DataSourceConfig,
    IntegrityError,
    NotFoundError,
    UnsafeNameError,
    read_provenance,
)
from connectors.azure_blob.upload import BlobExistsError, FileChangedError
from connectors.s3 import S3Connector
from connectors.s3 import upload as s3_upload
from tests.conformance import ConnectorConformance, SourceUnderTest, files_under, run, version_bytes
from tests.faults import FaultProxy, Rule, ranged_after_first
from tests.harness import S3Server, start_s3

pytestmark = pytest.mark.integration

ITEMS = {
    "sales.csv": b"region,amount\nnorth,10\nsouth,20\n",
    "nested/deeper/data.json": b'{"a": 1}\n',
    "with space & unicode \u00e9 #1 %20 q+?.txt": "caf\u00e9\n".encode(),
    "empty.bin": b"",
    "medium.bin": bytes(range(256)) * 1200,
}
LARGE = 20 * 1024 * 1024 + 7  # over one 16 MiB range: a parallel ranged download


def new_bucket(server: S3Server, items: dict[str, bytes]) -> str:
    name = f"t{uuid.uuid4().hex[:20]}"
    client = server.client()
    client.create_bucket(Bucket=name)
    for key, data in items.items():
        client.put_object(Bucket=name, Key=key, Body=data)
    return name


def s3_config(server: S3Server, bucket: str, endpoint: str | None = None, **settings: Any) -> DataSourceConfig:
    config: dict[str, Any] = {"bucket": bucket, "endpoint_url": endpoint or server.endpoint_url, **settings}
    if not any(k in config for k in ("access_key_id", "profile", "credential")):
        config |= {"access_key_id": {"env": "DA_TEST_S3_KEY"}, "secret_access_key": {"env": "DA_TEST_S3_SECRET"}}
    return DataSourceConfig(id="s3-test", type="s3", name="S3", config=config)


@pytest.fixture(autouse=True)
def _keys(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DA_TEST_S3_KEY", s3_server.access_key)
    monkeypatch.setenv("DA_TEST_S3_SECRET", s3_server.secret_key)


class TestS3Conformance(ConnectorConformance):
    @pytest.fixture
    def source(self, s3_server: S3Server) -> SourceUnderTest:
        bucket = new_bucket(s3_server, ITEMS)
        return SourceUnderTest(
            make_connector=lambda: S3Connector(s3_config(s3_server, bucket)),
            items=dict(ITEMS), missing="no/such/object.csv", source_type="s3",
            secrets=[s3_server.secret_key],
            change=lambda key, n: s3_server.client().put_object(Bucket=bucket, Key=key, Body=version_bytes(key, n)),
        )


def test_a_large_object_lands_byte_exact_with_etag_version_and_sha256(s3_server: S3Server, tmp_path: Path) -> None:
    data = os.urandom(LARGE)
    bucket = new_bucket(s3_server, {"big/one.bin": data})

    async def body() -> str:
        async with S3Connector(s3_config(s3_server, bucket, max_concurrency=4)) as connector:
            return await connector.fetch_data("big/one.bin", str(tmp_path))

    landed = Path(run(body()))
    assert landed.read_bytes() == data
    record = read_provenance(landed)
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["source_version"] == f'"{hashlib.md5(data).hexdigest()}"'  # noqa: S324


def test_keys_with_odd_bytes_and_double_slashes_list_exactly(s3_server: S3Server) -> None:
    names = ["a b.txt", "p%20c.txt", "h#x", "q?y=1&z", "plus+sign", "uni \u00e9\u6f22.txt", "a//b", "x/y/z.bin"]
    bucket = new_bucket(s3_server, {n: n.encode() for n in names})

    async def body() -> list[str]:
        async with S3Connector(s3_config(s3_server, bucket)) as connector:
            return sorted(i.path for i in await connector.list_items())

    assert run(body()) == sorted(names)


def test_listing_pages_through_more_than_one_page(s3_server: S3Server) -> None:
    bucket = new_bucket(s3_server, {})
    client = s3_server.client()
    for i in range(1003):
        client.put_object(Bucket=bucket, Key=f"p/{i:05d}", Body=b"")

    async def body() -> tuple[int, list[str]]:
        async with S3Connector(s3_config(s3_server, bucket, prefix="p")) as connector:
            everything = await connector.list_items()
        async with S3Connector(s3_config(s3_server, bucket, prefix="p", pattern="p/0100*")) as connector:
            return len(everything), [i.path for i in await connector.list_items()]

    # the glob's matches are all on the second page (a page holds 1,000 keys)
    assert run(body()) == (1003, ["p/01000", "p/01001", "p/01002"])


def test_folder_placeholders_are_never_items(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = new_bucket(s3_server, {"dir/": b"", "dir/a.csv": b"x\n"})

    async def body() -> list[str]:
        async with S3Connector(s3_config(s3_server, bucket)) as connector:
            with pytest.raises(UnsafeNameError, match="folder"):
                await connector.fetch_data("dir/", str(tmp_path))
            return [i.path for i in await connector.list_items()]

    assert run(body()) == ["dir/a.csv"]


# --- credentials and typed errors -------------------------------------------------------


def test_a_wrong_secret_is_an_authentication_error_that_never_shows_it(s3_server: S3Server, canary: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = new_bucket(s3_server, {"a.csv": b"1"})
    monkeypatch.setenv("DA_TEST_S3_SECRET", canary)
    connector = S3Connector(s3_config(s3_server, bucket))

    async def body() -> None:
        async with connector:
            await connector.test_connection()

    with pytest.raises(AuthenticationError, match="check the access key id and secret") as caught:
        run(body())
    assert canary not in str(caught.value) and canary not in repr(caught.value) and canary not in repr(connector)
    assert "SAS" not in str(caught.value) and "account key" not in str(caught.value)  # S3's words, not Azure's
    assert caught.value.__cause__ is not caught.value  # not its own cause


def test_a_missing_bucket_is_not_found(s3_server: S3Server) -> None:
    async def body() -> None:
        async with S3Connector(s3_config(s3_server, "no-such-bucket-here")) as connector:
            await connector.test_connection()

    with pytest.raises(NotFoundError, match="the bucket does not exist .*NoSuchBucket"):
        run(body())


def test_a_named_profile_and_the_default_chain_authenticate(s3_server: S3Server, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = new_bucket(s3_server, {"a.csv": b"1"})
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[reader]\naws_access_key_id = {s3_server.access_key}\n"
                           f"aws_secret_access_key = {s3_server.secret_key}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)

    async def listed(**how: Any) -> list[str]:
        async with S3Connector(s3_config(s3_server, bucket, **how)) as connector:
            return [i.path for i in await connector.list_items()]

    assert run(listed(profile="reader")) == ["a.csv"]
    assert run(listed(credential="default")) == ["a.csv"]


def test_anonymous_reads_a_public_bucket_unsigned_and_a_private_object_is_denied(tmp_path: Path) -> None:
    with start_s3(check_signatures=False) as public:  # unsigned requests are anonymous; ACLs decide
        bucket = new_bucket(public, {})
        client = public.client()
        client.put_bucket_acl(Bucket=bucket, ACL="public-read")
        client.put_object(Bucket=bucket, Key="open/a.csv", Body=b"1,2\n", ACL="public-read")
        client.put_object(Bucket=bucket, Key="closed/b.csv", Body=b"3,4\n", ACL="private")

        async def body() -> tuple[list[str], str, list[Any]]:
            async with FaultProxy(public.port) as proxy:
                config = DataSourceConfig(id="anon", type="s3", name="Anon", config={
                    "bucket": bucket, "endpoint_url": f"http://127.0.0.1:{proxy.port}", "credential": "anonymous"})
                async with S3Connector(config) as connector:
                    listed = sorted(i.path for i in await connector.list_items())
                    landed = await connector.fetch_data("open/a.csv", str(tmp_path))
                    with pytest.raises(AuthenticationError, match=r"403.*anonymously .*not public"):
                        await connector.fetch_data("closed/b.csv", str(tmp_path))
                return listed, landed, proxy.requests

        listed, landed, requests = run(body())
    assert listed == ["closed/b.csv", "open/a.csv"]
    assert Path(landed).read_bytes() == b"1,2\n"
    assert not (tmp_path / "closed").exists()
    assert requests and all("authorization" not in r.headers and "X-Amz-Signature" not in r.target
                            for r in requests)  # nothing signed: no credential was looked up or sent


@pytest.mark.parametrize("wrong", ["secret", "key"])
def test_listing_with_a_wrong_key_is_an_authentication_error_never_an_empty_listing(
        s3_server: S3Server, canary: str, monkeypatch: pytest.MonkeyPatch, wrong: str) -> None:
    bucket = new_bucket(s3_server, {"a.csv": b"1"})  # moto checks every signature against its IAM user
    monkeypatch.setenv("DA_TEST_S3_SECRET" if wrong == "secret" else "DA_TEST_S3_KEY", canary)
    connector = S3Connector(s3_config(s3_server, bucket))

    async def body() -> list[str]:
        async with connector:
            return [i.path async for i in connector.iter_items()]

    code = "SignatureDoesNotMatch" if wrong == "secret" else "InvalidAccessKeyId"
    with pytest.raises(AuthenticationError, match=f"listing bucket .*403 {code}") as caught:
        run(body())
    assert canary not in str(caught.value) and canary not in repr(caught.value)


def test_anonymous_listing_of_a_private_bucket_is_an_authentication_error(tmp_path: Path) -> None:
    # moto lists any bucket to anyone and answers an unsigned request with 500 when it checks signatures;
    # S3 answers 403 AccessDenied to an unsigned listing of a private bucket: the proxy answers as S3 does
    with start_s3(check_signatures=False) as server:
        bucket = new_bucket(server, {"a.csv": b"1"})

        def unsigned_listing(request: Any) -> bool:
            listing = request.method == "GET" and "list-type=2" in request.target
            return listing and "authorization" not in request.headers

        async def body(call: str) -> Any:
            async with FaultProxy(server.port) as proxy:
                proxy.add(Rule("status", status=403, match=unsigned_listing, times=None))
                config = DataSourceConfig(id="anon", type="s3", name="Anon", config={
                    "bucket": bucket, "endpoint_url": f"http://127.0.0.1:{proxy.port}", "credential": "anonymous"})
                async with S3Connector(config) as connector:
                    return await (connector.test_connection() if call == "probe" else connector.list_items())

        for call in ("probe", "list"):
            with pytest.raises(AuthenticationError, match=r"403.*anonymously .*not let anyone list this bucket"):
                run(body(call))


# --- faults through a proxy -------------------------------------------------------------


def test_throttling_is_retried_then_a_retryable_error(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = new_bucket(s3_server, {"a.csv": b"1,2\n"})

    async def body() -> None:
        async with FaultProxy(s3_server.port) as proxy:
            config = s3_config(s3_server, bucket, endpoint=f"http://127.0.0.1:{proxy.port}", retry_total=2)
            async with S3Connector(config) as connector:
                proxy.add(Rule("status", status=503, retry_after=0.05, times=2))
                await connector.fetch_data("a.csv", str(tmp_path / "ok"))
                proxy.add(Rule("status", status=503, retry_after=0.05, times=None))
                with pytest.raises(ConnectionError) as caught:
                    await connector.fetch_data("a.csv", str(tmp_path / "fails"))
                assert caught.value.retryable

    run(body())
    assert (tmp_path / "ok" / "a.csv").read_bytes() == b"1,2\n"
    assert files_under(tmp_path / "fails") == []


def test_an_object_changed_mid_download_is_fetched_again_never_torn(s3_server: S3Server, tmp_path: Path) -> None:
    old, new = os.urandom(LARGE), os.urandom(LARGE)
    bucket = new_bucket(s3_server, {"c.bin": old})

    def overwrite() -> None:
        s3_server.client().put_object(Bucket=bucket, Key="c.bin", Body=new)

    async def body() -> str:
        async with FaultProxy(s3_server.port) as proxy:
            proxy.add(Rule("hook", match=ranged_after_first, hook=overwrite))
            config = s3_config(s3_server, bucket, endpoint=f"http://127.0.0.1:{proxy.port}")
            async with S3Connector(config) as connector:
                return await connector.fetch_data("c.bin", str(tmp_path))

    landed = Path(run(body()))
    assert landed.read_bytes() == new
    assert read_provenance(landed)["etag"] == f'"{hashlib.md5(new).hexdigest()}"'  # noqa: S324


# --- x-amz-checksum-* (moto keeps the sha256 of an object uploaded with ChecksumAlgorithm) --------------


def digests_hashed_in_threads(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The digests each ranged download hashes beside the network (a list per download)."""
    from connectors.azure_blob.hashing import OrderedHasher

    seen: list[list[str]] = []
    original = OrderedHasher.__init__

    def spy(self: Any, fd: int, digests: Any, start: int) -> None:
        digests = list(digests)
        seen.append([d.name for d in digests])
        original(self, fd, digests, start)

    monkeypatch.setattr(OrderedHasher, "__init__", spy)
    return seen


def without_checksum(server: S3Server) -> Any:
    """A boto3 client that sends no checksum (boto3 adds a CRC32 to every upload by default)."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=server.endpoint_url, region_name=server.region,
                        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
                        config=Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required"))


def test_a_stored_sha256_checksum_is_verified_instead_of_the_etag_md5(
        s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(LARGE)
    bucket = new_bucket(s3_server, {})
    s3_server.client().put_object(Bucket=bucket, Key="summed.bin", Body=data, ChecksumAlgorithm="SHA256")
    without_checksum(s3_server).put_object(Bucket=bucket, Key="plain.bin", Body=data)
    hashed = digests_hashed_in_threads(monkeypatch)

    async def body() -> list[str]:
        async with S3Connector(s3_config(s3_server, bucket)) as connector:
            return [await connector.fetch_data(k, str(tmp_path)) for k in ("summed.bin", "plain.bin")]

    summed, plain = (Path(p) for p in run(body()))
    assert summed.read_bytes() == plain.read_bytes() == data
    stored = read_provenance(summed)["checksums"]["sha256"]
    assert base64.b64decode(stored) == hashlib.sha256(data).digest()  # what moto keeps, verified and recorded
    assert hashed == [["sha256"], ["sha256", "md5"]]  # the MD5 only where no stronger checksum exists


def test_bytes_corrupted_in_transit_fail_the_stored_checksum_and_nothing_lands(
        s3_server: S3Server, tmp_path: Path) -> None:
    data = os.urandom(LARGE)
    bucket = new_bucket(s3_server, {})
    s3_server.client().put_object(Bucket=bucket, Key="summed.bin", Body=data, ChecksumAlgorithm="SHA256")

    async def body() -> None:
        async with FaultProxy(s3_server.port) as proxy:
            proxy.add(Rule("flip", match=ranged_after_first, after_bytes=12345))
            config = s3_config(s3_server, bucket, endpoint=f"http://127.0.0.1:{proxy.port}")
            async with S3Connector(config) as connector:
                await connector.fetch_data("summed.bin", str(tmp_path))

    with pytest.raises(IntegrityError, match="x-amz-checksum-sha256 mismatch"):
        run(body())
    assert files_under(tmp_path) == []


# --- upload -------------------------------------------------------------------------------


def test_upload_never_overwrites_unless_asked(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = new_bucket(s3_server, {"out/taken.csv": b"theirs"})
    local = tmp_path / "r.csv"
    local.write_bytes(b"ours\n")

    async def body() -> None:
        async with S3Connector(s3_config(s3_server, bucket)) as connector:
            with pytest.raises(BlobExistsError):
                await connector.upload(local, "out/taken.csv")
            done = await connector.upload(local, "out/new.csv")
            assert done.sha256 == hashlib.sha256(b"ours\n").hexdigest()
            await connector.upload(local, "out/taken.csv", overwrite=True)

    run(body())
    client = s3_server.client()
    assert client.get_object(Bucket=bucket, Key="out/new.csv")["Body"].read() == b"ours\n"
    assert client.get_object(Bucket=bucket, Key="out/taken.csv")["Body"].read() == b"ours\n"


def test_a_local_file_changed_while_read_is_refused_and_nothing_stored(
        s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = new_bucket(s3_server, {})
    local = tmp_path / "r.csv"
    local.write_bytes(b"a,b\n1,2\n")
    real = s3_upload._read_and_hash

    def read_then_append(fd: int, size: int, what: str, source_id: str | None) -> Any:
        result = real(fd, size, what, source_id)
        with local.open("ab") as handle:  # a writer still at work
            handle.write(b"3,4\n")
        return result

    monkeypatch.setattr(s3_upload, "_read_and_hash", read_then_append)

    async def body() -> None:
        async with S3Connector(s3_config(s3_server, bucket)) as connector:
            await connector.upload(local, "out/r.csv")

    with pytest.raises(FileChangedError):
        run(body())
    assert s3_server.client().list_objects_v2(Bucket=bucket)["KeyCount"] == 0


# --- multipart upload (moto: parts of 5 MiB at least, but the last) ----------------------------------

MULTI = 13 * 1024 * 1024 + 11  # three parts of 5 MiB once the thresholds are lowered


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    from connectors.s3 import multipart

    monkeypatch.setattr(s3_upload, "IN_MEMORY", 6 * 1024 * 1024)  # over this: multipart
    monkeypatch.setattr(multipart, "PART", 5 * 1024 * 1024)


def open_uploads(server: S3Server, bucket: str) -> list[Any]:
    return list(server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def test_a_large_upload_goes_in_parts_and_never_overwrites_unless_asked(
        s3_server: S3Server, tmp_path: Path, small_parts: None) -> None:
    bucket = new_bucket(s3_server, {})
    data = os.urandom(MULTI)
    local = tmp_path / "big.bin"
    local.write_bytes(data)

    async def body() -> Any:
        async with S3Connector(s3_config(s3_server, bucket)) as connector:
            done = await connector.upload(local, "out/big.bin")
            with pytest.raises(BlobExistsError):
                await connector.upload(local, "out/big.bin")
            await connector.upload(local, "out/big.bin", overwrite=True)
            return done

    done = run(body())
    stored = s3_server.client().get_object(Bucket=bucket, Key="out/big.bin")
    assert stored["Body"].read() == data
    assert stored["ETag"].endswith('-3"') and done.etag == stored["ETag"]  # three parts, one object
    assert stored["Metadata"]["sha256"] == done.sha256 == hashlib.sha256(data).hexdigest()
    assert open_uploads(s3_server, bucket) == []  # the refused one was aborted: no parts left behind


def test_a_failing_multipart_upload_is_aborted_and_leaves_no_parts(
        s3_server: S3Server, tmp_path: Path, small_parts: None) -> None:
    bucket = new_bucket(s3_server, {})
    local = tmp_path / "big.bin"
    local.write_bytes(os.urandom(MULTI))

    def second_part(request: Any) -> bool:
        return request.method == "PUT" and "partNumber=2&" in request.target

    async def body() -> None:
        async with FaultProxy(s3_server.port) as proxy:
            proxy.add(Rule("status", match=second_part, status=500, retry_after=0.01, times=None))
            config = s3_config(s3_server, bucket, endpoint=f"http://127.0.0.1:{proxy.port}", retry_total=1)
            async with S3Connector(config) as connector:
                await connector.upload(local, "out/big.bin")

    with pytest.raises(ConnectionError):
        run(body())
    assert open_uploads(s3_server, bucket) == []
    assert s3_server.client().list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_a_file_rewritten_during_a_multipart_upload_is_refused_and_aborted(
        s3_server: S3Server, tmp_path: Path, small_parts: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from connectors.s3 import multipart

    bucket = new_bucket(s3_server, {})
    local = tmp_path / "big.bin"
    local.write_bytes(os.urandom(MULTI))
    real = multipart.digest_file

    def digest_then_rewrite(fd: int, size: int, part: int, what: str) -> Any:
        digests = real(fd, size, part, what)
        with local.open("r+b") as handle:  # same size, new bytes in the second part: only the part MD5 sees it
            handle.seek(part + 7)
            handle.write(b"rewritten")
        return digests

    monkeypatch.setattr(s3_upload, "digest_file", digest_then_rewrite)

    async def body() -> None:
        async with S3Connector(s3_config(s3_server, bucket)) as connector:
            await connector.upload(local, "out/big.bin")

    with pytest.raises(FileChangedError):
        run(body())
    assert open_uploads(s3_server, bucket) == []
    assert s3_server.client().list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_a_lost_answer_to_the_commit_is_recognised_as_our_own_upload(
        s3_server: S3Server, tmp_path: Path, small_parts: None) -> None:
    bucket = new_bucket(s3_server, {})
    data = os.urandom(MULTI)
    local = tmp_path / "big.bin"
    local.write_bytes(data)

    def complete(request: Any) -> bool:
        return request.method == "POST" and "uploadId=" in request.target

    lost = Rule("reset", match=complete, after_bytes=0)  # committed, then the answer is lost

    async def body() -> Any:
        async with FaultProxy(s3_server.port) as proxy:
            proxy.add(lost)
            config = s3_config(s3_server, bucket, endpoint=f"http://127.0.0.1:{proxy.port}")
            async with S3Connector(config) as connector:
                return await connector.upload(local, "out/big.bin")

    done = run(body())
    assert lost.used == 1 and done.etag.endswith('-3"')
    assert s3_server.client().get_object(Bucket=bucket, Key="out/big.bin")["Body"].read() == data
    assert done.sha256 == hashlib.sha256(data).hexdigest()
    assert open_uploads(s3_server, bucket) == []


def test_concurrent_fetch_many_lands_every_small_object(s3_server: S3Server, tmp_path: Path) -> None:
    items = {f"many/{i:03d}.txt": f"{i}\n".encode() for i in range(60)}
    bucket = new_bucket(s3_server, items)

    async def body() -> list[Any]:
        async with S3Connector(s3_config(s3_server, bucket)) as connector:
            return await connector.fetch_many(list(items), str(tmp_path), concurrency=8)

    results = run(body())
    assert all(r.error is None for r in results)
    assert {k: (tmp_path / k).read_bytes() for k in items} == items
    assert asyncio.iscoroutinefunction(S3Connector.fetch_many)


def test_a_versioned_bucket_records_the_version_id(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = new_bucket(s3_server, {})
    client = s3_server.client()
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    client.put_object(Bucket=bucket, Key="v.csv", Body=b"old\n")
    newest = client.put_object(Bucket=bucket, Key="v.csv", Body=b"new\n")["VersionId"]

    async def body() -> tuple[str, dict[str, Any]]:
        async with S3Connector(s3_config(s3_server, bucket)) as connector:
            return await connector.fetch_data("v.csv", str(tmp_path)), await connector.get_metadata("v.csv")

    landed, metadata = run(body())
    assert Path(landed).read_bytes() == b"new\n"
    assert read_provenance(landed)["version_id"] == metadata["version_id"] == newest


def test_the_dagster_sensor_lists_an_s3_source(s3_server: S3Server) -> None:
    from da_pipelines.resources import S3Resource
    from da_pipelines.sensors import _list_items

    bucket = new_bucket(s3_server, {"a.csv": b"1", "dir/": b"", "dir/b.csv": b"2"})
    resource = S3Resource(source_id="lake", source_name="Lake", bucket=bucket, endpoint_url=s3_server.endpoint_url,
                          access_key_id=s3_server.access_key, secret_access_key=s3_server.secret_key)
    assert sorted(i.path for i in run(_list_items(resource, 100))) == ["a.csv", "dir/b.csv"]


# --- every x-amz-checksum-* algorithm S3 offers ------------------------------------------------

ALGORITHMS = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]


def reference_checksum(algorithm: str, data: bytes) -> str:
    """The base64 value S3 keeps, computed here with the libraries botocore uses (not ours)."""
    from awscrt import checksums

    value = {"CRC32": lambda: zlib.crc32(data).to_bytes(4, "big"),
             "CRC32C": lambda: checksums.crc32c(data).to_bytes(4, "big"),
             "CRC64NVME": lambda: checksums.crc64nvme(data).to_bytes(8, "big"),
             "SHA1": lambda: hashlib.sha1(data).digest(),  # noqa: S324 - S3's checksum
             "SHA256": lambda: hashlib.sha256(data).digest()}[algorithm]()
    return base64.b64encode(value).decode()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_stored_checksum_algorithm_is_verified_and_recorded(
        s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, algorithm: str) -> None:
    objects = {"large.bin": os.urandom(LARGE), "small.bin": os.urandom(5000)}
    bucket = new_bucket(s3_server, {})
    for key, data in objects.items():
        s3_server.client().put_object(Bucket=bucket, Key=key, Body=data, ChecksumAlgorithm=algorithm)
    hashed = digests_hashed_in_threads(monkeypatch)

    async def body() -> list[str]:
        async with S3Connector(s3_config(s3_server, bucket)) as connector:
            return [await connector.fetch_data(key, str(tmp_path)) for key in objects]

    for landed, data in zip(run(body()), objects.values(), strict=True):
        assert Path(landed).read_bytes() == data
        assert read_provenance(Path(landed))["checksums"][algorithm.lower()] == reference_checksum(algorithm, data)
    # the large one: sha256 beside the ranges (no MD5: the stored checksum is checked), the other from byte 0
    assert hashed == [["sha256"]] + ([] if algorithm == "SHA256" else [[algorithm.lower()]])


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("size", ["small", "large"])
def test_bytes_that_do_not_match_a_stored_checksum_fail_and_nothing_lands(
        s3_server: S3Server, tmp_path: Path, algorithm: str, size: str) -> None:
    data = os.urandom(LARGE if size == "large" else 5000)
    bucket = new_bucket(s3_server, {})
    s3_server.client().put_object(Bucket=bucket, Key="summed.bin", Body=data, ChecksumAlgorithm=algorithm)
    corrupted = ranged_after_first if size == "large" else lambda request: request.method == "GET"

    async def body() -> None:
        async with FaultProxy(s3_server.port) as proxy:
            proxy.add(Rule("flip", match=corrupted, after_bytes=1234))
            # no ETag MD5: the stored checksum alone must catch it
            config = s3_config(s3_server, bucket, endpoint=f"http://127.0.0.1:{proxy.port}", verify_etag_md5=False)
            async with S3Connector(config) as connector:
                await connector.fetch_data("summed.bin", str(tmp_path))

    with pytest.raises(IntegrityError, match=f"x-amz-checksum-{algorithm.lower()} mismatch"):
        run(body())
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("flip", [False, True])
def test_a_checksum_only_the_head_tells_is_computed_from_the_landed_bytes(
        s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flip: bool) -> None:
    # AWS sends no checksum with a ranged GET: an object the first range covers learns it from the HEAD
    from connectors.s3.data_path import S3DataPath

    original = S3DataPath.send

    async def no_checksums_on_gets(self: S3DataPath, method: str, url: str, headers: Any) -> Any:
        headers = {k: v for k, v in headers.items() if method != "GET" or k != "x-amz-checksum-mode"}
        return await original(self, method, url, headers)

    monkeypatch.setattr(S3DataPath, "send", no_checksums_on_gets)
    data = os.urandom(5 * 1024 * 1024)  # over the in-memory size, under one range
    bucket = new_bucket(s3_server, {})
    s3_server.client().put_object(Bucket=bucket, Key="mid.bin", Body=data, ChecksumAlgorithm="CRC32C")

    async def body() -> str:
        async with FaultProxy(s3_server.port) as proxy:
            if flip:
                proxy.add(Rule("flip", match=lambda request: request.method == "GET", after_bytes=4321))
            config = s3_config(s3_server, bucket, endpoint=f"http://127.0.0.1:{proxy.port}", verify_etag_md5=False)
            async with S3Connector(config) as connector:
                return await connector.fetch_data("mid.bin", str(tmp_path))

    if flip:
        with pytest.raises(IntegrityError, match="x-amz-checksum-crc32c mismatch"):
            run(body())
        assert files_under(tmp_path) == []
    else:
        landed = Path(run(body()))
        assert landed.read_bytes() == data
        assert read_provenance(landed)["checksums"]["crc32c"] == reference_checksum("CRC32C", data)


def test_a_missing_object_is_not_found_in_s3_words(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = new_bucket(s3_server, {"a.csv": b"1"})

    async def body() -> None:
        async with S3Connector(s3_config(s3_server, bucket)) as connector:
            await connector.fetch_data("no-such.csv", str(tmp_path))

    with pytest.raises(NotFoundError) as caught:
        run(body())
    assert "blob" not in str(caught.value) and "container" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # nothing landed


@pytest.mark.parametrize("size", ["small", "large"])
def test_corrupted_bytes_fail_in_s3_words_and_nothing_lands(
        s3_server: S3Server, tmp_path: Path, size: str) -> None:
    data = os.urandom(LARGE if size == "large" else 5000)
    bucket = new_bucket(s3_server, {"plain.bin": data})  # boto3 may store a CRC32 too: either check may fire
    corrupted = ranged_after_first if size == "large" else lambda request: request.method == "GET"

    async def body() -> None:
        async with FaultProxy(s3_server.port) as proxy:
            proxy.add(Rule("flip", match=corrupted, after_bytes=1234))
            config = s3_config(s3_server, bucket, endpoint=f"http://127.0.0.1:{proxy.port}")
            async with S3Connector(config) as connector:
                await connector.fetch_data("plain.bin", str(tmp_path))

    with pytest.raises(IntegrityError, match=r"reading object 'plain.bin': (ETag MD5|x-amz-checksum-crc32) mismatch "
                                             r"\(the object says"):
        run(body())
    assert files_under(tmp_path) == []
