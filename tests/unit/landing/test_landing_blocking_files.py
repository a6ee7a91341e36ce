"""FIFOs, sockets and devices never block or get read (real file system, real FIFOs).

In a local source: at the identifier, as a folder on the way, behind a link
inside root; for fetch_data, fetch_many, get_metadata and list_items. In the
workspace: at the target, its record, the lock file, a record folder, a
temporary's name (the sweep). Every operation returns within seconds, with a
typed error or by replacing (never opening) the thing in the way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors import DataSourceError, NotFoundError, read_provenance
from connectors.landing import landing, sweep_workspace, workspace_root
from connectors.landing.lineage import _lock_name, find_provenance, read_record
from tests.conformance import run
from tests.unit.landing.landing_support import BLOCKING_KINDS, PROVENANCE, local_connector, temporaries, within

SOURCE_POSITIONS = ["thing", "sub/thing", "link-to-thing", "folder-thing/x.csv"]


def source_root(tmp_path: Path, kind: str) -> Path:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "good.csv").write_text("a\n1\n")
    for position in ("thing", "sub/thing", "folder-thing"):
        BLOCKING_KINDS[kind](root / position)
    (root / "link-to-thing").symlink_to("thing")
    return root


@pytest.mark.parametrize("kind", list(BLOCKING_KINDS))
@pytest.mark.parametrize("position", SOURCE_POSITIONS)
@pytest.mark.parametrize("operation", ["fetch_data", "fetch_many", "get_metadata"])
def test_a_special_file_in_the_source_is_refused_without_blocking(
    tmp_path: Path, kind: str, position: str, operation: str
) -> None:
    root = source_root(tmp_path, kind)

    async def body() -> object:
        async with local_connector(root) as connector:
            if operation == "fetch_many":
                result = (await connector.fetch_many([position], str(tmp_path / "ws")))[0]
                if result.error is not None:
                    raise result.error
                return result.path
            if operation == "get_metadata":
                return await connector.get_metadata(position)
            return await connector.fetch_data(position, str(tmp_path / "ws"))

    fifos = [root / p for p in ("thing", "sub/thing", "folder-thing")]
    outcome = within(10, lambda: run(body()), unblock=fifos)
    assert isinstance(outcome, NotFoundError), outcome
    assert temporaries(tmp_path) == []


@pytest.mark.parametrize("kind", list(BLOCKING_KINDS))
def test_listing_skips_special_files_without_blocking(tmp_path: Path, kind: str) -> None:
    root = source_root(tmp_path, kind)

    async def body() -> list[str]:
        async with local_connector(root) as connector:
            return [item.path for item in await connector.list_items()]

    fifos = [root / p for p in ("thing", "sub/thing", "folder-thing")]
    assert within(10, lambda: run(body()), unblock=fifos) == ["good.csv"]


NAME = "sub/f.csv"
WORKSPACE_POSITIONS = {
    "target": "src/sub/f.csv",
    "record": "src/.lineage/sub/f.csv.json",
    "lock file": "src/.lineage/.locks/{lock}",
    "record folder": "src/.lineage/sub",
    "data folder": "src/sub",
    "lineage folder": "src/.lineage",
    "temporary": "src/sub/.~da-0123456789abcdef.part",
    "record temporary": "src/.lineage/sub/.~da-0123456789abcdef.part",
}


@pytest.mark.parametrize("kind", list(BLOCKING_KINDS))
@pytest.mark.parametrize("position", list(WORKSPACE_POSITIONS))
def test_a_special_file_planted_in_the_workspace_never_blocks_the_landing(
    tmp_path: Path, kind: str, position: str
) -> None:
    root = tmp_path / "ws"
    planted = root / WORKSPACE_POSITIONS[position].format(lock=_lock_name(NAME))
    BLOCKING_KINDS[kind](planted)

    def land() -> object:
        with workspace_root(root):
            sweep_workspace(root / "src")
            with landing(root / "src", NAME, source_id="s") as target:
                target.write(b"data")
                return target.commit(provenance=PROVENANCE).path

    def read() -> object:
        with workspace_root(root):
            return read_record(root / "src", NAME), list(find_provenance(root / "src"))

    within(10, read, unblock=[planted])
    outcome = within(10, land, unblock=[planted])
    if position in ("target", "record", "temporary", "record temporary"):
        assert not isinstance(outcome, DataSourceError), outcome  # replaced or swept, never opened
        assert (root / "src" / NAME).read_bytes() == b"data"
        assert within(10, lambda: read_provenance(root / "src" / NAME))["size"] == 4
    else:
        assert isinstance(outcome, DataSourceError)  # a folder or a lock file that is not one: refused


@pytest.mark.parametrize("openat2", [True, False], ids=["openat2", "walk"])
def test_a_huge_file_planted_as_a_record_is_not_read_into_memory(
    tmp_path: Path, openat2: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.landing import syscalls

    if not openat2:
        monkeypatch.setattr(syscalls, "_openat2_works", False)
    record = tmp_path / "ws" / ".lineage" / "f.csv.json"
    record.parent.mkdir(parents=True)
    with open(record, "wb") as planted:
        planted.truncate(64 * 1024 * 1024 * 1024)  # sparse: 64 GiB that costs no disk
    assert read_record(tmp_path / "ws", "f.csv") is None
    assert list(find_provenance(tmp_path / "ws")) == []
    with landing(tmp_path / "ws", "f.csv", source_id="s") as target:
        target.write(b"data")
        target.commit(provenance=PROVENANCE)
    assert read_provenance(tmp_path / "ws" / "f.csv")["size"] == 4
