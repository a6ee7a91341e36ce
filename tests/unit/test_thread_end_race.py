"""A fetch that meets the removed thread folder before the watcher does still reports the thread's end.

DeepAnalyze removes an expired thread's folder; an attach under way must answer
"the thread ended" (409 over HTTP), not the raw "no such file" its fetch met first
(seen once as a 500 on a loaded machine), and leave nothing behind.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.base import DataSourceConfig, DataSourceConnector
from connectors.errors import WorkspaceError
from connectors.plugins import register_connector, unregister_connector
from connectors.testing import MemoryConnector, memory_store
from connectors.threads import ThreadEndedError, attach_to_thread


class FolderRemovedMidFetch(MemoryConnector):
    """Removes the thread's folder during the fetch, then fails the way a landing there does."""

    thread_folder: Path

    async def fetch_data(self, identifier: str, workspace: str) -> str:
        shutil.rmtree(self.thread_folder)
        raise WorkspaceError(f"cannot land {identifier!r} in the workspace: No such file or directory",
                             source_id=self.source_id)


@pytest.fixture(autouse=True)
def memory_type() -> Iterator[None]:
    register_connector("memory", MemoryConnector, replace=True)
    register_connector("memory_removing", FolderRemovedMidFetch, replace=True)
    yield
    unregister_connector("memory")
    unregister_connector("memory_removing")


def test_the_thread_end_is_the_cause_when_a_fetch_fails_first(tmp_path: Path) -> None:
    store = memory_store("thread-race")
    store.put("a.csv", b"x\n1\n", modified_at=1_700_000_000)
    connector = FolderRemovedMidFetch(DataSourceConfig(id="mem", type="memory_removing", name="Mem",
                                                       config={"store": "thread-race"}))
    connector.thread_folder = tmp_path / "t1"

    async def connector_for(source_id: str) -> DataSourceConnector:
        await connector.connect()
        return connector

    with pytest.raises(ThreadEndedError, match="thread 't1' ended while its data was being attached"):
        asyncio.run(attach_to_thread(connector_for, tmp_path, "t1", [{"source_id": "mem", "path": "a.csv"}],
                                     create=True))
    assert not (tmp_path / "t1").exists()


def test_a_failure_with_the_folder_still_there_keeps_its_own_cause(tmp_path: Path) -> None:
    store = memory_store("thread-race-2")
    store.put("a.csv", b"x\n1\n", modified_at=1_700_000_000)
    store.fail_next("a.csv", WorkspaceError("disk full", source_id="mem"))
    connector = MemoryConnector(DataSourceConfig(id="mem", type="memory", name="Mem",
                                                 config={"store": "thread-race-2"}))

    async def connector_for(source_id: str) -> DataSourceConnector:
        await connector.connect()
        return connector

    with pytest.raises(WorkspaceError, match="disk full") as caught:
        asyncio.run(attach_to_thread(connector_for, tmp_path, "t2", [{"source_id": "mem", "path": "a.csv"}],
                                     create=True))
    assert not isinstance(caught.value, ThreadEndedError)
