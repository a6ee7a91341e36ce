"""Every error message bounds the names it echoes (connectors.errors.bound_message), for every connector.

A 100,000-character identifier used to come back in a 100 KB error line. Now
a quoted name keeps its first 200 characters, an ellipsis and its length, and
a whole message is at most ~1,300 characters, whichever connector raised it:
checked against the real file system, Azurite and PostgreSQL.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from connectors import DataSourceConfig, DataSourceError, NotFoundError
from connectors.azure_blob import AzureBlobConnector
from connectors.errors import MESSAGE_LIMIT, NAME_LIMIT, bound_message
from connectors.local_file import LocalFileConnector
from connectors.postgresql import PostgreSQLConnector
from tests.conformance import run
from tests.harness import AzuriteServer, PostgresServer
from tests.helpers.azure import azure_config, new_container

pytestmark = pytest.mark.integration

LONG = "n" * 100_000
LONG_PATH = "d/" * 50_000 + "x.csv"  # short components, 100,005 characters
MOST = 2 * NAME_LIMIT + 300  # a message may echo the name twice (as given, as resolved), each bounded


def errors_of(connector: Any, calls: list[Any]) -> list[DataSourceError]:
    async def body() -> list[DataSourceError]:
        caught = []
        async with connector:
            for call in calls:
                try:
                    await call(connector)
                except DataSourceError as exc:
                    caught.append(exc)
                else:
                    pytest.fail(f"{call} did not raise")
        return caught

    return run(body())


def assert_bounded(errors: list[DataSourceError]) -> None:
    assert errors
    for error in errors:
        text = str(error)
        assert len(text) < MOST, (type(error).__name__, len(text), text[:300])
        assert "…" in text or "..." in text, text[:300]  # shortened, visibly
        copy = pickle.loads(pickle.dumps(error))  # and stays the same across processes
        assert str(copy) == text and type(copy) is type(error)


def test_local_file_errors_bound_the_names_they_echo(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    config = DataSourceConfig(id="loc", type="local_file", name="L", config={"root": str(tmp_path / "root")})
    errors = errors_of(LocalFileConnector(config), [
        lambda c: c.list_items(LONG),
        lambda c: c.get_metadata(LONG_PATH),
        lambda c: c.fetch_data(LONG_PATH, str(tmp_path / "ws")),
    ])
    assert_bounded(errors)


def test_azure_errors_bound_the_names_they_echo(azurite_server: AzuriteServer, tmp_path: Path) -> None:
    container = new_container(azurite_server, {"a.csv": b"a\n"})
    long_container = "c" * 63  # the longest valid name: the message quotes it whole
    errors = errors_of(AzureBlobConnector(azure_config(azurite_server, container)), [
        lambda c: c.list_items(LONG),
        lambda c: c.get_metadata(LONG_PATH),
        lambda c: c.fetch_data(LONG_PATH, str(tmp_path / "ws")),
        lambda c: c.fetch_data("a/" * 400 + "x.csv", str(tmp_path / "ws")),  # 805 characters: asked for, a 404
        lambda c: c.get_metadata("a/" * 400 + "x.csv"),
    ])
    assert_bounded(errors)
    assert isinstance(errors[-1], NotFoundError) and "HTTP 404" in str(errors[-1])  # the cause survives
    assert long_container in str(NotFoundError(f"container {long_container!r} is missing"))


def test_postgresql_errors_bound_the_names_they_echo(postgres_server: PostgresServer, tmp_path: Path) -> None:
    config = DataSourceConfig(id="pg", type="postgresql", name="P", config={
        "host": postgres_server.host, "port": postgres_server.port, "user": postgres_server.user,
        "password": {"env": "DA_TEST_PG_PASSWORD"}, "dbname": postgres_server.dbname})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DA_TEST_PG_PASSWORD", postgres_server.password)
        errors = errors_of(PostgreSQLConnector(config), [
            lambda c: c.list_items(LONG),
            lambda c: c.get_metadata(f"public.{LONG}"),
            lambda c: c.fetch_data(f"public.{LONG}", str(tmp_path / "ws")),
            lambda c: c.get_metadata(LONG),
        ])
    assert_bounded(errors)


def test_bound_message_shortens_names_caps_the_whole_and_is_stable() -> None:
    name_error = bound_message(f"fetching blob {LONG!r}: the blob does not exist (HTTP 404 BlobNotFound)")
    assert name_error == f"fetching blob '{'n' * (NAME_LIMIT - 1)}…' (100,000 characters): " \
                         "the blob does not exist (HTTP 404 BlobNotFound)"
    spaced = bound_message(f"cannot read {'a b ' * 25_000}: disk on fire")  # not quoted: the cap applies
    assert len(spaced) <= MESSAGE_LIMIT and spaced.startswith("cannot read a b") and spaced.endswith("disk on fire")
    for text in (name_error, spaced, f"two {LONG!r} and {LONG + chr(34)!r}", "short 'one' stays as it is"):
        once = bound_message(text)
        assert bound_message(once) == once
    assert bound_message("short 'one' stays as it is") == "short 'one' stays as it is"
    assert str(DataSourceError(f"x {LONG!r}", source_id="s")).startswith("source 's': x 'nnn")
