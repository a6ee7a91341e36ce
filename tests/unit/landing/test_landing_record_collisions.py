"""A record place that is another item's record folder (real file system).

``d`` and ``d.json/e`` can both be data, but ``.lineage/d.json`` cannot be
both ``d``'s record and the folder of ``d.json/e``'s record. Whichever comes
second is refused with NameCollisionError before its data moves: no file ever
lands without its record, and reading lineage never meets a raw OS error.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from connectors import DataSourceError, NameCollisionError, NotFoundError, read_provenance
from connectors.landing import landing, workspace_root
from connectors.landing.names import LINEAGE_DIR
from tests.conformance import run
from tests.unit.landing.landing_support import PROVENANCE, local_connector, temporaries

PAIRS = [
    ("d.json/e", "d"),
    ("a/d.json/x/y", "a/d"),
    ("d.json.json/e", "d.json"),
    ("x.json/y.json/z", "x"),
    ("x.json/y.json/z", "x.json/y"),
]


def land(workspace: Path, name: str, data: bytes) -> Path:
    with landing(workspace, name, source_id="s") as target:
        target.write(data)
        return target.commit(provenance=PROVENANCE).path


def assert_every_file_has_its_record(workspace: Path) -> int:
    """Every landed data file has a record that is a file and describes it; returns how many."""
    files = [p for p in workspace.rglob("*") if p.is_file() and LINEAGE_DIR not in p.relative_to(workspace).parts]
    for path in files:
        record = read_provenance(path, workspace)
        assert record["size"] == path.stat().st_size, path
    return len(files)


@pytest.mark.parametrize("first_is_folder", [True, False])
@pytest.mark.parametrize(("folder_item", "file_item"), PAIRS)
def test_the_second_of_two_colliding_records_is_refused_before_its_data_lands(
    tmp_path: Path, folder_item: str, file_item: str, first_is_folder: bool
) -> None:
    ws = tmp_path / "ws"
    first, second = (folder_item, file_item) if first_is_folder else (file_item, folder_item)
    land(ws, first, b"first")
    with pytest.raises(NameCollisionError):
        land(ws, second, b"second")
    assert not (ws / second).is_file()  # the refused item's data did not land
    assert read_provenance(ws / first)["size"] == 5
    with pytest.raises(NotFoundError):  # typed, never IsADirectoryError
        read_provenance(ws / second, ws)
    assert assert_every_file_has_its_record(ws) == 1 and temporaries(ws) == []


def test_the_collision_through_the_local_connector_and_the_lineage_cli_reader(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "d.json").mkdir(parents=True)
    (root / "d.json" / "e").write_text("e")
    (root / "d").write_text("d")

    async def body() -> list[object]:
        async with local_connector(root) as connector:
            await connector.fetch_data("d.json/e", str(tmp_path / "ws"))
            return [r.error for r in await connector.fetch_many(["d"], str(tmp_path / "ws"))] + [
                await _error(connector.fetch_data("d", str(tmp_path / "ws")))]

    errors = run(body())
    assert all(isinstance(error, NameCollisionError) for error in errors)
    assert not (tmp_path / "ws" / "d").exists()
    assert assert_every_file_has_its_record(tmp_path / "ws") == 1


async def _error(awaitable: object) -> object:
    try:
        await awaitable  # type: ignore[misc]
    except DataSourceError as exc:
        return exc
    return None


def test_an_empty_record_folder_left_behind_does_not_block_the_file(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    land(ws, "d.json/e", b"e")
    (ws / "d.json" / "e").unlink()
    (ws / LINEAGE_DIR / "d.json" / "e.json").unlink()  # the folder item is gone; its record folder is empty
    land(ws, "d", b"d")
    assert read_provenance(ws / "d")["size"] == 1


@pytest.mark.parametrize(("folder_item", "file_item"), PAIRS[:3])
def test_racing_landings_of_colliding_names_never_leave_a_file_without_its_record(
    tmp_path: Path, folder_item: str, file_item: str
) -> None:
    untyped: list[BaseException] = []
    for round_ in range(40):
        ws = tmp_path / f"ws{round_}"
        barrier = threading.Barrier(2)

        def one(name: str, workspace: Path = ws, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                with workspace_root(workspace):
                    land(workspace, name, b"x" * 10)
            except DataSourceError:
                pass
            except BaseException as exc:  # noqa: BLE001 - collected and reported
                untyped.append(exc)

        threads = [threading.Thread(target=one, args=(name,)) for name in (folder_item, file_item)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert assert_every_file_has_its_record(ws) == 1  # exactly one of the two won
    assert untyped == []
