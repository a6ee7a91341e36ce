"""The connector conformance suite: one class of tests every connector passes.

A connector's test module subclasses :class:`ConnectorConformance` and supplies
one fixture, ``source``, returning a :class:`SourceUnderTest`: how to build an
unconnected connector, which items the source holds and the exact bytes each
must land as, where each lands, and an identifier that does not exist.

Example:
    class TestLocalFile(ConnectorConformance):
        @pytest.fixture
        def source(self, tmp_path):
            ...
            return SourceUnderTest(make_connector=..., items={"a.csv": b"x,y\\n"}, missing="nope.csv")
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from connectors import (
    ConfigurationError,
    ConnectionError,
    DataItem,
    DataSourceConfig,
    DataSourceConnector,
    DataSourceError,
    DataSourceType,
    NotFoundError,
    UnsafeNameError,
    read_provenance,
    run_context,
)
from connectors.landing import lineage
from connectors.landing.lineage import REQUIRED_KEYS, record_path
from connectors.landing.names import LINEAGE_DIR, LOCK_DIR, TEMP_PREFIX
from connectors.plugins import register_connector, unregister_connector

T = TypeVar("T")

UNSAFE_NAMES = [
    "../../etc/passwd",
    "a/../../x",
    "/etc/x",
    "C:/x",
    "C:\\x",
    "\\\\host\\share\\x",
    "a\\..\\..\\x",
    "a\x00b",
    "a\nb",
    ".",
    "..",
    "trailing.",
    "trailing ",
    "x" * 256,
    "a//b",
]


RACERS = 4  # the racing-versions test: racers per round, rounds, and when a stalled racer stops the race
RACING_ROUNDS = 50
RACE_STALL_SECONDS = 300


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine on a fresh event loop."""
    return asyncio.run(coro)


@dataclass
class SourceUnderTest:
    """What a connector's test module supplies to the conformance suite.

    Attributes:
        make_connector: builds a new, unconnected connector for the source.
        items: identifier -> the exact bytes it must land as.
        missing: an identifier the source does not have.
        landed_name: identifier -> path relative to the workspace where it lands.
        unsafe_names: identifiers that must be refused with UnsafeNameError.
        source_type: the type name expected in lineage records.
        modified_at_known: False when the source keeps no modification time (``modified_at`` is 0).
        secrets: the secret values the connector is configured with (keys, passwords); none may
            appear in its repr or str, before, while or after it is connected.
        exact_size: whether listing and metadata report the size of the bytes that land. False
            where the service only knows another size (PostgreSQL: the table's size on disk);
            listing and metadata must then still agree with each other.
        change: ``change(identifier, n)`` replaces the item at the source with a version of its own
            for each ``n`` (other bytes), whole, as a user's upload or update would; the racing test
            lands different versions at once with it.
    """

    make_connector: Callable[[], DataSourceConnector]
    items: dict[str, bytes]
    missing: str
    source_type: str
    landed_name: Callable[[str], str] = lambda identifier: identifier
    unsafe_names: list[str] = field(default_factory=lambda: list(UNSAFE_NAMES))
    modified_at_known: bool = True
    secrets: list[str] = field(default_factory=list)
    exact_size: bool = True
    change: Callable[[str, int], None] | None = None


def version_bytes(identifier: str, n: int) -> bytes:
    """Version ``n`` of an item, for :attr:`SourceUnderTest.change`: other bytes and size from one to the next."""
    return f"{identifier},version {n}\n".encode() * (1 + n % 7)


def race_versions(source: SourceUnderTest, identifier: str, workspace: Path) -> list[tuple[str, int, str, int]]:
    """Rounds of racers, each in a thread with its own event loop and connector (as separate runs are).

    Each round every racer changes ``identifier`` at the source to a version of its own, then
    fetches it; once all have landed, one of them reads what is on disk. Returns, per round, the
    landed file's (sha256, size) and its record's (sha256, size).
    """
    change = source.change
    assert change is not None, "give SourceUnderTest a change(identifier, n)"
    barrier = threading.Barrier(RACERS, timeout=RACE_STALL_SECONDS)
    seen: list[tuple[str, int, str, int]] = []

    async def racer(index: int) -> None:
        async with source.make_connector() as connector:
            for round_ in range(RACING_ROUNDS):
                await asyncio.to_thread(barrier.wait)
                await asyncio.to_thread(change, identifier, round_ * RACERS + index)
                path = Path(await connector.fetch_data(identifier, str(workspace)))
                if await asyncio.to_thread(barrier.wait) == 0:  # all landed: one racer looks, the rest wait
                    data, record = path.read_bytes(), read_provenance(path)
                    seen.append((hashlib.sha256(data).hexdigest(), len(data), record["sha256"], record["size"]))

    def thread(index: int) -> None:
        try:
            asyncio.run(racer(index))
        except BaseException:
            barrier.abort()  # the others stop at the next round rather than wait for this one
            raise

    with ThreadPoolExecutor(RACERS) as pool:
        for racing in [pool.submit(thread, index) for index in range(RACERS)]:
            racing.result()
    return seen


def fetch_in_own_loop(source: SourceUnderTest, identifier: str, workspace: Path) -> str:
    """One fetch with its own connector and event loop, as a separate run would make it."""
    return run(connected(source, lambda c: c.fetch_data(identifier, str(workspace))))


class LandingWindow:
    """Holds the first landing after its file's rename, before its record's publication.

    The held landing goes on once :meth:`release` is called (the second landing finished) or
    another landing would have to wait for a target lock (``target_lock``'s ``flock``).
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.held = threading.Event()
        self._go = threading.Event()
        self._real_staged = lineage.staged_record
        self._real_flock = fcntl.flock
        monkeypatch.setattr(lineage, "staged_record", self._staged_record)
        monkeypatch.setattr(fcntl, "flock", self._flock)

    def release(self) -> None:
        """Let the held landing go on."""
        self._go.set()

    def wait_until_held(self, first: Future[str]) -> None:
        """Wait until the first landing is held; raise what it raised if it ended first."""
        while not self.held.wait(0.05):
            if first.done():
                first.result()
                raise AssertionError("the first fetch finished without publishing a record")

    @contextlib.contextmanager
    def _staged_record(self, *args: Any, **kwargs: Any) -> Iterator[Callable[[], Path]]:
        with self._real_staged(*args, **kwargs) as publish:
            yield lambda: self._publish(publish)

    def _publish(self, publish: Callable[[], Path]) -> Path:
        if not self.held.is_set():
            self.held.set()
            if not self._go.wait(RACE_STALL_SECONDS):
                raise AssertionError("the second landing neither finished nor waited for the lock")
        return publish()

    def _flock(self, fd: int, operation: int) -> None:
        if operation != fcntl.LOCK_EX or not self.held.is_set() or f"/{LINEAGE_DIR}/{LOCK_DIR}/" not in _fd_path(fd):
            return self._real_flock(fd, operation)
        try:
            return self._real_flock(fd, operation | fcntl.LOCK_NB)
        except BlockingIOError:
            self._go.set()  # a second landing waits for the held one: let that one finish
            return self._real_flock(fd, operation)


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


async def connected(source: SourceUnderTest, body: Callable[[DataSourceConnector], Awaitable[T]]) -> T:
    async with source.make_connector() as connector:
        return await body(connector)


def temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX)]


def outside_workspace(root: Path, workspace: Path) -> set[Path]:
    """Every path under ``root`` that is not the workspace or inside it."""
    return {p for p in root.rglob("*") if p != workspace and workspace not in p.parents}


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and ".lineage" not in p.relative_to(root).parts]


class ConnectorConformance:
    """Tests every connector must pass; subclasses supply the ``source`` fixture."""

    @pytest.fixture
    def workspace(self, tmp_path: Path) -> Path:
        # a folder inside tmp_path, so anything written beside it shows up as an escape
        return tmp_path / "ws"

    def test_lists_every_item_with_size_and_version(self, source: SourceUnderTest) -> None:
        items = run(connected(source, lambda c: c.list_items()))
        listed = {item.path: item for item in items}
        assert set(source.items) <= set(listed)
        for identifier, expected in source.items.items():
            item = listed[identifier]
            assert item.size >= 0 and (item.modified_at > 0 if source.modified_at_known else item.modified_at == 0)
            assert item.metadata.get("version"), f"{identifier} has no version in its metadata"
            if source.exact_size:
                assert item.size == len(expected), f"{identifier}: listed {item.size} bytes, lands {len(expected)}"

    def test_fetch_lands_exact_bytes_at_the_documented_path(
        self, source: SourceUnderTest, workspace: Path
    ) -> None:
        async def fetch_all(connector: DataSourceConnector) -> dict[str, str]:
            return {i: await connector.fetch_data(i, str(workspace)) for i in source.items}

        paths = run(connected(source, fetch_all))
        for identifier, expected in source.items.items():
            path = Path(paths[identifier])
            assert path.is_absolute()
            assert path == workspace.absolute() / source.landed_name(identifier)
            assert path.read_bytes() == expected

    def test_lineage_record_is_present_and_correct(self, source: SourceUnderTest, workspace: Path) -> None:
        identifier = next(iter(source.items))

        async def fetch(connector: DataSourceConnector) -> str:
            with run_context("run-1234"):
                return await connector.fetch_data(identifier, str(workspace))

        path = Path(run(connected(source, fetch)))
        record = read_provenance(path)
        assert set(REQUIRED_KEYS) <= set(record)
        data = path.read_bytes()
        assert record["sha256"] == hashlib.sha256(data).hexdigest()
        assert record["size"] == len(data)
        assert record["identifier"] == identifier
        assert record["source_type"] == source.source_type
        assert record["run_id"] == "run-1234"
        assert record["local_path"] == str(path)
        assert record["source_uri"] and record["source_version"]
        assert record["fetched_at"].endswith("Z")

    def test_get_metadata_reports_size_and_version(self, source: SourceUnderTest) -> None:
        async def both(connector: DataSourceConnector) -> tuple[dict[str, Any], dict[str, Any]]:
            listed = {item.path: item for item in await connector.list_items()}
            return listed, {i: await connector.get_metadata(i) for i in source.items}

        listed, metadata = run(connected(source, both))
        for identifier, expected in source.items.items():
            assert metadata[identifier].get("version") == listed[identifier].metadata["version"]
            assert metadata[identifier]["size"] == listed[identifier].size
            if source.exact_size:
                assert metadata[identifier]["size"] == len(expected)

    def test_missing_item_is_not_found_and_leaves_nothing(self, source: SourceUnderTest, workspace: Path) -> None:
        with pytest.raises(NotFoundError):
            run(connected(source, lambda c: c.fetch_data(source.missing, str(workspace))))
        with pytest.raises(NotFoundError):
            run(connected(source, lambda c: c.get_metadata(source.missing)))
        assert not workspace.exists() or files_under(workspace) == []

    def test_unsafe_names_are_refused_and_nothing_escapes(
        self, source: SourceUnderTest, workspace: Path, tmp_path: Path
    ) -> None:
        async def try_all(connector: DataSourceConnector) -> list[str]:
            accepted = []
            for name in source.unsafe_names:
                try:
                    await connector.fetch_data(name, str(workspace))
                    accepted.append(name)
                except UnsafeNameError:
                    pass
            return accepted

        before = outside_workspace(tmp_path, workspace)
        assert run(connected(source, try_all)) == []
        assert outside_workspace(tmp_path, workspace) == before
        assert not workspace.exists() or files_under(workspace) == []

    def test_failures_leave_no_temporary_files(self, source: SourceUnderTest, workspace: Path) -> None:
        async def fetch_mixed(connector: DataSourceConnector) -> None:
            await connector.fetch_data(next(iter(source.items)), str(workspace))
            for name in [source.missing, *source.unsafe_names[:3]]:
                with pytest.raises(DataSourceError):
                    await connector.fetch_data(name, str(workspace))

        run(connected(source, fetch_mixed))
        assert temporaries(workspace) == []

    def test_refetch_replaces_the_file_and_keeps_one_record(self, source: SourceUnderTest, workspace: Path) -> None:
        identifier = next(iter(source.items))

        async def twice(connector: DataSourceConnector) -> tuple[str, str]:
            return (await connector.fetch_data(identifier, str(workspace)),
                    await connector.fetch_data(identifier, str(workspace)))

        first, second = run(connected(source, twice))
        assert first == second
        assert Path(second).read_bytes() == source.items[identifier]
        records = list((workspace / ".lineage").rglob("*.json"))
        assert len(records) == 1

    def test_concurrent_fetches_of_one_item_leave_one_consistent_file(
        self, source: SourceUnderTest, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A second version landed while the first is between its rename and its record.

        The first fetch is held once its file is in place and its record not yet; the item
        changes at the source and a second fetch lands it. The first goes on once the second has
        finished or waits for the target's lock. With the lock, the second lands after the first,
        file and record together; without it, the first's record ends up beside the second's file.
        docs/RELIABILITY.md row 23.
        """
        identifier = next(iter(source.items))
        change = source.change
        assert change is not None, "give SourceUnderTest a change(identifier, n)"
        window = LandingWindow(monkeypatch)
        change(identifier, 1)
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(fetch_in_own_loop, source, identifier, workspace)
            try:
                window.wait_until_held(first)
                change(identifier, 2)
                second = pool.submit(fetch_in_own_loop, source, identifier, workspace)
            except BaseException:
                window.release()  # the first fetch must not wait for a second that never comes
                raise
            second.add_done_callback(lambda _: window.release())
            paths = [first.result(), second.result()]
        path = Path(paths[0])
        assert set(paths) == {str(path)}
        assert files_under(workspace) == [path]  # one file, nothing beside it
        records = list((workspace / ".lineage").rglob("*.json"))
        assert len(records) == 1 and records[0] == record_path(workspace.absolute(), source.landed_name(identifier))
        expected = Path(run(connected(source, lambda c: c.fetch_data(identifier, str(tmp_path / "expected")))))
        record, expected_record = read_provenance(path), read_provenance(expected)
        data = path.read_bytes()
        assert data == expected.read_bytes(), "the second version did not land last"
        assert (record["sha256"], record["size"]) == (hashlib.sha256(data).hexdigest(), len(data))
        assert record["source_version"] == expected_record["source_version"]
        assert temporaries(workspace) == []

    def test_racing_fetches_of_an_item_that_changes_leave_a_file_and_record_that_agree(
        self, source: SourceUnderTest, workspace: Path
    ) -> None:
        """Racers that land the same bytes cannot show a missing lock; racers of different versions can.

        Each round, every racer changes the item at the source to a version of its own and fetches
        it, all at once: whichever version lands last, its record must be the record of those bytes.
        """
        seen = race_versions(source, next(iter(source.items)), workspace)
        assert len({sha for sha, _, _, _ in seen}) > 1, "the source did not change: the race proves nothing"
        disagreements = [(index, *facts) for index, facts in enumerate(seen) if facts[:2] != facts[2:]]
        assert disagreements == [], f"{len(disagreements)} of {len(seen)} rounds: a record of other bytes"
        assert temporaries(workspace) == []

    def test_fetch_many_reports_each_item(self, source: SourceUnderTest, workspace: Path) -> None:
        wanted = [*source.items, source.missing]
        results = run(connected(source, lambda c: c.fetch_many(wanted, str(workspace), concurrency=3)))
        assert [r.identifier for r in results] == wanted
        assert all(r.ok and r.path for r in results[:-1])
        assert isinstance(results[-1].error, NotFoundError)
        for result in results[:-1]:
            assert Path(str(result.path)).read_bytes() == source.items[result.identifier]

    def test_symlink_planted_at_the_target_is_not_followed(
        self, source: SourceUnderTest, workspace: Path, tmp_path: Path
    ) -> None:
        identifier = next(iter(source.items))
        victim = tmp_path / "victim.txt"
        victim.write_bytes(b"do not touch")
        target = workspace / source.landed_name(identifier)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(victim)
        path = Path(run(connected(source, lambda c: c.fetch_data(identifier, str(workspace)))))
        assert victim.read_bytes() == b"do not touch"
        assert not path.is_symlink() and path.read_bytes() == source.items[identifier]

    def test_symlinked_folder_in_the_workspace_is_not_followed(
        self, source: SourceUnderTest, workspace: Path, tmp_path: Path
    ) -> None:
        nested = next((i for i in source.items if "/" in source.landed_name(i)), None)
        identifier = nested or next(iter(source.items))
        # with no nested item, plant the symlink over the lineage tree instead
        planted = source.landed_name(identifier).split("/")[0] if nested else ".lineage"
        outside = tmp_path / "outside"
        outside.mkdir()
        workspace.mkdir(parents=True)
        (workspace / planted).symlink_to(outside, target_is_directory=True)
        with pytest.raises(UnsafeNameError):
            run(connected(source, lambda c: c.fetch_data(identifier, str(workspace))))
        assert list(outside.iterdir()) == []

    def test_context_manager_connects_and_closes(self, source: SourceUnderTest) -> None:
        shown: list[str] = []

        def show(connector: DataSourceConnector) -> None:
            shown.extend([repr(connector), str(connector), repr(connector.config), str(connector.config)])

        async def use() -> DataSourceConnector:
            connector = source.make_connector()
            show(connector)
            async with connector:
                assert connector.is_connected
                await connector.list_items()
                show(connector)  # connected: the secrets are resolved now
            return connector

        connector = run(use())
        assert not connector.is_connected
        with pytest.raises(ConnectionError):
            run(connector.list_items())
        show(connector)
        leaked = [secret for secret in source.secrets for text in shown if secret in text]
        assert leaked == [], "a secret appears in a repr or str"

    def test_errors_survive_pickling(self, source: SourceUnderTest, workspace: Path) -> None:
        import pickle

        with pytest.raises(NotFoundError) as caught:
            run(connected(source, lambda c: c.fetch_data(source.missing, str(workspace))))
        copy = pickle.loads(pickle.dumps(caught.value))
        assert type(copy) is type(caught.value) and str(copy) == str(caught.value)
        assert copy.retryable is caught.value.retryable


    # --- DeepAnalyze's original interface (binzhango/DeepAnalyze API/datasources/test_base.py) ----------------

    def test_is_connected_reads_as_the_seed_calls_it(self, source: SourceUnderTest) -> None:
        async def use() -> list[object]:
            connector = source.make_connector()
            seen: list[object] = [connector.is_connected(), bool(connector.is_connected)]
            assert await connector.connect() is True
            seen += [connector.is_connected(), bool(connector.is_connected)]
            await connector.disconnect()
            return [*seen, connector.is_connected(), connector.is_connected == False]  # noqa: E712

        assert run(use()) == [False, False, True, True, False, True]

    def test_config_and_items_round_trip_through_dicts_with_secrets_masked(self, source: SourceUnderTest) -> None:
        config = source.make_connector().config
        as_dict = config.to_dict()
        assert as_dict["id"] == config.id and as_dict["type"] == config.type_name
        assert DataSourceConfig.from_dict(as_dict) == config
        shown = [repr(as_dict), str(as_dict), json.dumps(as_dict, default=str)]
        assert [s for s in source.secrets for text in shown if s in text] == []
        items = run(connected(source, lambda c: c.list_items()))
        assert [DataItem.from_dict(item.to_dict()) for item in items] == items
        assert {"name", "path", "size", "modified_at", "metadata"} == set(items[0].to_dict())


class SeedMockConnector(DataSourceConnector):
    """A connector written to the original interface, as its own tests write it: ``self._connection``."""

    async def connect(self) -> bool:
        self._connection = "mock_connection"
        self.connects = getattr(self, "connects", 0) + 1
        return True

    async def disconnect(self) -> None:
        self._connection = None

    async def test_connection(self) -> bool:
        return self._connection is not None

    async def list_items(self, path: str | None = None) -> list[DataItem]:
        return [DataItem(name="test_file.csv", path="/data/test_file.csv", size=1024, modified_at=1234567890,
                         metadata={"type": "csv"})]

    async def fetch_data(self, identifier: str, workspace: str) -> str:
        return f"{workspace}/{identifier}"

    async def get_metadata(self, identifier: str) -> dict[str, Any]:
        return {"name": identifier, "size": 1024, "type": "file"}


class SeedInterfaceConformance:
    """DeepAnalyze's original interface as its README and tests use it: what a module of tests subclasses and runs."""

    def test_an_azure_config_as_the_seed_writes_it_builds_and_fails_clearly_at_connect(self, canary: str) -> None:
        from connectors.azure_blob import AzureBlobConnector

        key = base64.b64encode(canary.encode()).decode()  # a key of the right form, holding the canary
        for config in ({"connection_string": f"DefaultEndpointsProtocol=https;AccountName=a;AccountKey={key}"}, {}):
            source = DataSourceConfig(id="ds-123", type=DataSourceType.AZURE_BLOB, name="Test Azure Blob",
                                      config=config, metadata={"region": "us-east-1"})
            assert DataSourceConfig.from_dict(source.to_dict()) == source
            assert key not in json.dumps(source.to_dict(), default=str) and key not in repr(source.to_dict())
            with pytest.raises(ConfigurationError, match="container_name") as caught:
                run(AzureBlobConnector(source).connect())
            assert key not in str(caught.value)
            with pytest.raises(ConfigurationError, match="container_name"):
                source.check_complete()  # what a sources file or the API stores is whole
        seed = DataSourceConfig(id="ds-123", type=DataSourceType.AZURE_BLOB, name="x",
                                config={"connection_string": "t"})
        assert seed.config["connection_string"] == "t" and seed.to_dict()["type"] == "azure_blob"

    def test_a_connector_written_to_the_seed_contract_works_as_the_seed_tests_it(self) -> None:
        config = DataSourceConfig(id="ds-test", type=DataSourceType.AZURE_BLOB, name="Test Connector", config={})

        async def use() -> None:
            connector = SeedMockConnector(config)
            assert not connector.is_connected()
            assert await connector.connect() is True and connector.is_connected() and connector.is_connected
            assert await connector.test_connection() is True
            assert (await connector.list_items())[0].name == "test_file.csv"
            assert await connector.fetch_data("test.csv", "/workspace") == "/workspace/test.csv"
            await connector.disconnect()
            assert not connector.is_connected()
            async with SeedMockConnector(config) as managed:
                assert managed.is_connected()
            assert not managed.is_connected()

        run(use())
        item = DataItem(name="test.csv", path="/data/test.csv", size=2048, modified_at=1234567890,
                        metadata={"encoding": "utf-8"})
        assert item.to_dict()["size"] == 2048 and DataItem.from_dict(item.to_dict()) == item

    def test_the_api_pool_keeps_a_seed_contract_connector_connected(self) -> None:
        from connectors.api.app_state import ConnectorPool
        from connectors.plugins import get_connector_class

        register_connector("seed_mock", SeedMockConnector, replace=True)
        try:
            source = DataSourceConfig(id="seed", type="seed_mock", name="Seed", config={})

            async def five_requests() -> int:
                pool = ConnectorPool(lambda config: get_connector_class(config.type_name)(config))
                connectors = [await pool.get(source) for _ in range(5)]
                assert len({id(c) for c in connectors}) == 1
                await pool.aclose()
                return connectors[0].connects  # type: ignore[attr-defined, no-any-return]

            assert run(five_requests()) == 1
        finally:
            unregister_connector("seed_mock")
