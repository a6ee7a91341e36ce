"""Attaching data to a DeepAnalyze thread, against real Azurite and PostgreSQL.

What the agent would see is the top-level files of the thread's folder (DeepAnalyze's prompt
builder lists exactly those), so the tests look at that listing.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from connectors.errors import ConfigurationError, NotFoundError
from connectors.registry import SourceRegistry
from connectors.threads import (
    Attachment,
    ItemTooLargeError,
    ThreadRecords,
    attach_to_thread,
    check_thread_id,
    default_state_dir,
)

pytestmark = pytest.mark.integration


def top_level_files(folder: Path) -> dict[str, int]:
    """What DeepAnalyze lists into the prompt: the thread folder's top-level files and sizes."""
    return {e.name: e.stat().st_size for e in os.scandir(folder) if e.is_file(follow_symlinks=False)}


def everything_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def attach(registry: SourceRegistry, base: Path, thread_id: Any, references: list[dict[str, Any]],
           **options: Any) -> Attachment:
    """attach_to_thread on a loop of its own, the registry's connections closed after."""

    async def run() -> Attachment:
        async with registry:
            return await attach_to_thread(registry, base, thread_id, references, **{"create": True, **options})

    return asyncio.run(run())


def test_glob_table_and_query_land_at_the_top_level_with_a_manifest(
    registry: SourceRegistry, warehouse: dict[str, Any], tmp_path: Path
) -> None:
    schema = warehouse["schema"]
    base = tmp_path / "workspace"
    attachment = attach(registry, base, "thread-1", [
        {"source_id": "lake", "glob": "exports/2026-*.csv"},
        {"source_id": "warehouse", "table": f"{schema}.customers"},
        {"source_id": "warehouse", "query": f"select * from {schema}.orders where total > 100", "name": "big_orders"},
    ])
    folder = base / "thread-1"
    names = [f.name for f in attachment.files]
    assert names == ["2026-01.csv", "2026-02.csv", f"{schema}.customers.csv", "big_orders.csv"]
    assert set(top_level_files(folder)) == set(names)
    assert (folder / "2026-02.csv").read_bytes() == b"a,b\n3,4\n5,6\n"
    assert everything_under(folder) == sorted(names)  # data only: our records are in the state folder
    by_name = {f.name: f for f in attachment.files}
    assert by_name[f"{schema}.customers.csv"].row_count == 25
    assert by_name["big_orders.csv"].row_count == 30
    assert by_name["2026-01.csv"].item == "exports/2026-01.csv" and by_name["2026-01.csv"].size == 8
    record = ThreadRecords(default_state_dir(), "thread-1").read("2026-01.csv") or {}
    assert record["identifier"] == "exports/2026-01.csv" and record["source_id"] == "lake"
    assert record["local_path"] == str(folder / "2026-01.csv") and record["attached_as"] == "2026-01.csv"
    manifest = attachment.manifest()
    assert "- 2026-02.csv: exports/2026-02.csv from source lake, version " in manifest
    assert f"- {schema}.customers.csv: {schema}.customers from source warehouse, version " in manifest
    assert f"- big_orders.csv: select * from {schema}.orders where total > 100 from source warehouse" in manifest
    assert "25 rows" in manifest and "8 bytes" in manifest


def test_same_file_name_from_two_places_gets_two_readable_names(registry: SourceRegistry, tmp_path: Path) -> None:
    base = tmp_path / "workspace"
    (base / "t2").mkdir(parents=True)
    (base / "t2" / "2026-01.csv").write_text("the agent's own file")
    attachment = attach(registry, base, "t2", [
        {"source_id": "lake", "path": "exports/2026-01.csv"},
        {"source_id": "lake", "path": "archive/2026-01.csv"},
        {"source_id": "lake", "path": "exports/2026-01.csv"},
    ])
    names = [(f.name, f.status) for f in attachment.files]  # the same item twice: one file
    assert names == [("2026-01-lake.csv", "attached"), ("2026-01-lake-2.csv", "attached"),
                     ("2026-01-lake.csv", "unchanged")]
    assert (base / "t2" / "2026-01.csv").read_text() == "the agent's own file"
    assert (base / "t2" / "2026-01-lake-2.csv").read_bytes() == b"other\n"
    record = ThreadRecords(default_state_dir(), "t2").read("2026-01-lake-2.csv") or {}
    assert record["identifier"] == "archive/2026-01.csv"


def test_one_failed_reference_fails_the_call_and_leaves_nothing(
    registry: SourceRegistry, warehouse: dict[str, Any], tmp_path: Path
) -> None:
    base = tmp_path / "workspace"
    (base / "t3").mkdir(parents=True)
    (base / "t3" / "earlier.csv").write_text("kept")
    before = everything_under(base / "t3")
    with pytest.raises(NotFoundError, match=r"source 'warehouse': table '.*\.missing'"):
        attach(registry, base, "t3", [
            {"source_id": "lake", "glob": "exports/*.csv"},
            {"source_id": "warehouse", "table": f"{warehouse['schema']}.customers"},
            {"source_id": "warehouse", "table": f"{warehouse['schema']}.missing"},
        ])
    assert everything_under(base / "t3") == before
    with pytest.raises(NotFoundError, match="source 'lake': glob 'nothing/\\*': no item matches"):
        attach(registry, base, "t3", [{"source_id": "lake", "glob": "nothing/*"}])
    with pytest.raises(NotFoundError, match="no source 'nope'"):
        attach(registry, base, "t3", [{"source_id": "nope", "path": "x"}])
    with pytest.raises(ConfigurationError, match="no tables and runs no queries"):
        attach(registry, base, "t3", [{"source_id": "lake", "query": "select 1", "name": "x"}])
    assert everything_under(base / "t3") == before


@pytest.mark.parametrize("thread_id", ["..", ".", "../x", "a/b", "/etc", "", "-x", "_x", "a" * 129, "a\x00b",
                                       "é", "a b", "a.b", "a\\b", "C:x", None, 5])
def test_a_thread_id_never_leads_outside_the_base(registry: SourceRegistry, tmp_path: Path,
                                                        thread_id: Any) -> None:
    base = tmp_path / "workspace"
    with pytest.raises(ConfigurationError, match="invalid thread id"):
        attach(registry, base, thread_id, [{"source_id": "lake", "path": "readme.txt"}])
    assert everything_under(tmp_path) == ["sources.yaml", "sources.yaml.lock"] or not base.exists()


def test_thread_id_rule() -> None:
    assert check_thread_id("a" * 128) == "a" * 128
    assert check_thread_id("thread-0123_abc") == "thread-0123_abc"
    assert check_thread_id("9") == "9"


def test_a_link_planted_as_the_thread_folder_is_not_followed(registry: SourceRegistry, tmp_path: Path) -> None:
    base, outside = tmp_path / "workspace", tmp_path / "outside"
    base.mkdir()
    outside.mkdir()
    (base / "t4").symlink_to(outside)
    with pytest.raises(Exception, match="symlink"):
        attach(registry, base, "t4", [{"source_id": "lake", "path": "readme.txt"}])
    assert list(outside.iterdir()) == []


def test_a_table_over_the_size_limit_fails_while_streaming_and_leaves_nothing(
    registry: SourceRegistry, warehouse: dict[str, Any], tmp_path: Path
) -> None:
    base = tmp_path / "workspace"
    with pytest.raises(ItemTooLargeError, match=r"table '.*\.customers': it is over the limit of 100 bytes"):
        attach(registry, base, "t5", [{"source_id": "lake", "path": "readme.txt"},
                                      {"source_id": "warehouse", "table": f"{warehouse['schema']}.customers"}],
               max_item_bytes=100)
    assert everything_under(base / "t5") == []


def test_an_attach_sweeps_the_hidden_temporaries_a_killed_attach_left(registry: SourceRegistry,
                                                                       tmp_path: Path) -> None:
    # docs/RELIABILITY.md row 71
    from connectors.landing.names import TEMP_PREFIX, TEMP_SUFFIX

    base = tmp_path / "workspace"
    thread = base / "t9"
    thread.mkdir(parents=True)
    dead_folder = thread / f"{TEMP_PREFIX}0123456789abcdef{TEMP_SUFFIX}"  # a dataset folder half placed
    dead_folder.mkdir()
    (dead_folder / "part-00000.parquet").write_bytes(b"PAR1")
    dead_file = thread / f"{TEMP_PREFIX}fedcba9876543210{TEMP_SUFFIX}"  # a file not yet renamed
    dead_file.write_bytes(b"half")
    mine = thread / f"{TEMP_PREFIX}notes"  # the agent's own hidden file: not one of our temporaries
    mine.write_text("kept")
    attachment = attach(registry, base, "t9", [{"source_id": "lake", "path": "exports/2026-01.csv"}])
    assert sorted(p.name for p in thread.iterdir()) == sorted([attachment.files[0].name, mine.name])
    assert mine.read_text() == "kept"
