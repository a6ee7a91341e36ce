"""The configured scope (``prefix``, ``pattern``) is a boundary for every operation, against a real Azurite.

One rule for identifiers: full blob names everywhere, exactly as ``list_items``
prints them; ``list_items(path)`` takes a full blob-name folder. A name outside
the scope is an ``OutOfScopeError`` (a ``NotFoundError``) before any request,
with the same message whether or not the blob exists. The requests are
counted through ``tests.faults.FaultProxy`` (no faults injected).
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors import DataSourceError, NotFoundError, UnsafeNameError
from connectors.azure_blob import AzureBlobConnector
from connectors.azure_blob.scope import BlobScope
from connectors.errors import OutOfScopeError
from tests.conformance import files_under, run
from tests.faults import FaultProxy
from tests.harness import AzuriteServer
from tests.helpers.azure import azure_config, new_container, upload_raw

pytestmark = pytest.mark.integration

BLOBS = {
    "raw/2025/a.csv": b"a\n",
    "raw/2025/b.txt": b"b\n",  # under the prefix, not matching the pattern
    "raw/top.csv": b"top\n",
    "raw2/x.csv": b"beside the prefix\n",  # 'raw' is a folder, not a bare string prefix
    "rawfile.csv": b"also beside it\n",
    "other/secret.csv": b"secret\n",
}
IN_SCOPE = ["raw/2025/a.csv", "raw/top.csv"]
# every kind of name outside prefix 'raw' + pattern '*.csv'; each exists in the container
OUTSIDE = ["raw2/x.csv", "rawfile.csv", "other/secret.csv", "raw/2025/b.txt"]
# dot-segment forms that would reach other/secret.csv if a client or server folded them
DOTTED = ["raw/../other/secret.csv", "raw/2025/../../other/secret.csv", "../other/secret.csv",
          "raw/./top.csv", "./raw/top.csv"]


@pytest.fixture
def container(azurite_server: AzuriteServer) -> str:
    return new_container(azurite_server, BLOBS)


Body = Callable[[AzureBlobConnector, FaultProxy], Awaitable[Any]]


def scoped(server: AzuriteServer, container: str, body: Body, **settings: Any) -> Any:
    """Run ``body`` with a connector whose requests all pass through a counting proxy."""
    settings = {"prefix": "raw", "pattern": "*.csv", **settings}

    async def main() -> Any:
        async with FaultProxy(server.port) as proxy:
            cs = server.connection_string.replace(server.blob_endpoint, proxy.endpoint(server.account_name))
            async with AzureBlobConnector(azure_config(server, container, connection_string=cs, **settings)) as c:
                return await body(c, proxy)

    return run(main())


def test_every_listed_path_and_folder_works_in_list_fetch_and_metadata(
    azurite_server: AzuriteServer, container: str, tmp_path: Path
) -> None:
    async def body(connector: AzureBlobConnector, proxy: FaultProxy) -> dict[str, Any]:
        listed = [item.path for item in await connector.list_items()]
        folders = {p.rsplit("/", 1)[0] for p in listed} | {p.rsplit("/", 1)[0] + "/" for p in listed}
        return {
            "listed": listed,
            # ls printed raw/2025/a.csv, so `ls pre raw/2025/` finds it (the example)
            "by_folder": {f: [i.path for i in await connector.list_items(f)] for f in sorted(folders)},
            "fetched": [await connector.fetch_data(p, str(tmp_path / "ws")) for p in listed],
            "sizes": [(await connector.get_metadata(p))["size"] for p in listed],
        }

    out = scoped(azurite_server, container, body)
    assert out["listed"] == IN_SCOPE
    assert out["by_folder"] == {"raw": IN_SCOPE, "raw/": IN_SCOPE,
                                "raw/2025": ["raw/2025/a.csv"], "raw/2025/": ["raw/2025/a.csv"]}
    assert [Path(p).read_bytes() for p in out["fetched"]] == [BLOBS[p] for p in IN_SCOPE]
    assert out["sizes"] == [len(BLOBS[p]) for p in IN_SCOPE]


@pytest.mark.parametrize("name", OUTSIDE)
def test_a_name_outside_the_scope_is_refused_by_every_operation_before_any_request(
    azurite_server: AzuriteServer, container: str, tmp_path: Path, name: str
) -> None:
    async def body(connector: AzureBlobConnector, proxy: FaultProxy) -> list[BaseException | None]:
        errors: list[BaseException | None] = []
        for call in (lambda: connector.fetch_data(name, str(tmp_path / "ws")), lambda: connector.get_metadata(name)):
            with pytest.raises(OutOfScopeError) as caught:
                await call()
            errors.append(caught.value)
        [result] = await connector.fetch_many([name], str(tmp_path / "ws"))
        errors.append(result.error)
        assert proxy.requests == []  # decided from the settings alone
        return errors

    errors = scoped(azurite_server, container, body)
    assert all(isinstance(e, NotFoundError) for e in errors)
    assert not (tmp_path / "ws").exists()


def test_the_refusal_is_the_same_whether_or_not_the_blob_exists(azurite_server: AzuriteServer, container: str) -> None:
    async def body(connector: AzureBlobConnector, proxy: FaultProxy) -> list[str]:
        texts = []
        for name in ("other/secret.csv", "other/nothing.csv"):
            with pytest.raises(OutOfScopeError) as caught:
                await connector.get_metadata(name)
            texts.append(str(caught.value).replace(name, "NAME"))
        return texts

    exists, missing = scoped(azurite_server, container, body)
    assert exists == missing


@pytest.mark.parametrize("name", DOTTED)
def test_dot_segment_forms_never_reach_another_blob(
    azurite_server: AzuriteServer, container: str, tmp_path: Path, name: str
) -> None:
    async def body(connector: AzureBlobConnector, proxy: FaultProxy) -> None:
        for call in (lambda: connector.fetch_data(name, str(tmp_path / "ws")), lambda: connector.get_metadata(name)):
            with pytest.raises((OutOfScopeError, UnsafeNameError)):
                await call()
        assert proxy.requests == []

    scoped(azurite_server, container, body)
    scoped(azurite_server, container, body, prefix="", pattern=None)  # no scope at all: still refused
    assert not (tmp_path / "ws").exists()


def test_a_blob_literally_named_with_dot_segments_is_listed_but_never_read_as_another(
    azurite_server: AzuriteServer, container: str
) -> None:
    asyncio.run(upload_raw(azurite_server, container, ["raw/../other/secret.csv"]))

    async def body(connector: AzureBlobConnector, proxy: FaultProxy) -> list[str]:
        with pytest.raises(UnsafeNameError):
            await connector.get_metadata("raw/../other/secret.csv")
        return [item.path for item in await connector.list_items("raw/../")]

    assert scoped(azurite_server, container, body) == ["raw/../other/secret.csv"]  # the literal name, in scope


@pytest.mark.parametrize("path", ["raw2", "raw2/", "r", "other/", "rawfile.csv", "2025/", "2025"])
def test_listing_a_folder_outside_the_prefix_is_refused_before_any_request(
    azurite_server: AzuriteServer, container: str, path: str
) -> None:
    async def body(connector: AzureBlobConnector, proxy: FaultProxy) -> None:
        with pytest.raises(OutOfScopeError, match="full blob names"):
            await connector.list_items(path)
        assert proxy.requests == []

    scoped(azurite_server, container, body)


def test_a_folder_above_the_prefix_lists_only_the_scope(azurite_server: AzuriteServer, container: str) -> None:
    async def body(connector: AzureBlobConnector, proxy: FaultProxy) -> list[str]:
        return [item.path for item in await connector.list_items("raw/")]

    assert scoped(azurite_server, container, body, prefix="raw/2025/", pattern=None) == ["raw/2025/a.csv",
                                                                                         "raw/2025/b.txt"]


def test_the_pattern_alone_is_a_boundary_too(azurite_server: AzuriteServer, container: str, tmp_path: Path) -> None:
    async def body(connector: AzureBlobConnector, proxy: FaultProxy) -> list[str]:
        with pytest.raises(OutOfScopeError, match=r"matching '\*\.csv'"):
            await connector.fetch_data("raw/2025/b.txt", str(tmp_path / "ws"))
        return [item.path for item in await connector.list_items()]

    listed = scoped(azurite_server, container, body, prefix="")
    assert listed == sorted(n for n in BLOBS if n.endswith(".csv"))
    assert not (tmp_path / "ws").exists() or files_under(tmp_path / "ws") == []


def test_an_overlong_name_is_out_of_scope_with_a_bounded_message(
    azurite_server: AzuriteServer, container: str, tmp_path: Path
) -> None:
    name = "raw/" + "a/" * 50_000 + "x.csv"  # 100,009 characters; the service allows 1,024

    async def body(connector: AzureBlobConnector, proxy: FaultProxy) -> list[DataSourceError]:
        errors = []
        for call in (lambda: connector.fetch_data(name, str(tmp_path / "ws")), lambda: connector.get_metadata(name),
                     lambda: connector.list_items(name)):
            with pytest.raises(DataSourceError) as caught:
                await call()
            errors.append(caught.value)
        return errors

    for error in scoped(azurite_server, container, body):
        assert isinstance(error, NotFoundError) and len(str(error)) < 600, str(error)[:300]
        assert "…" in str(error) and "100,009 characters" in str(error)


# --- the rule itself, for any name (pure: no service needed) -------------------------------------

NAMES = st.text(alphabet=st.sampled_from("raw2/._x*?[] \\é"), max_size=40)


@settings(max_examples=400, deadline=None)
@given(prefix=NAMES, pattern=st.none() | NAMES, name=NAMES)
def test_a_name_is_served_only_if_it_is_under_the_prefix_folder_and_matches(
    prefix: str, pattern: str | None, name: str
) -> None:
    scope = BlobScope(prefix, pattern)
    folder = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    expected = bool(name) and name.startswith(folder) and (pattern is None or fnmatch.fnmatchcase(name, pattern))
    try:
        served = scope.check(name, "reading") == name
    except OutOfScopeError as exc:
        served = False
        assert "not in this source" in str(exc)
    assert served is expected is scope.matches(name)


@settings(max_examples=400, deadline=None)
@given(prefix=NAMES, path=st.none() | NAMES)
def test_a_listing_never_asks_for_more_than_the_prefix_folder(prefix: str, path: str | None) -> None:
    scope = BlobScope(prefix, None)
    try:
        asked = scope.listing_prefix(path)
    except OutOfScopeError:
        return
    assert asked.startswith(scope.folder)
    assert not path or asked in (scope.folder, path if path.endswith("/") else path + "/")
