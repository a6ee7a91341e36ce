"""A sync's listing of local files: the usual file and the usual listing take the short way, with the same result."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from connectors.base import DataSourceConfig
from connectors.landing.names import is_plain_name, is_safe_name
from connectors.local_file import LocalFileConnector
from connectors.plugins import get_connector_class
from connectors.syncing.source_sync import _Spill, _spill_listing


def _connector(root: Path, **config: Any) -> LocalFileConnector:
    source = DataSourceConfig(id="files", type="local_file", name="Files", config={"root": str(root), **config})
    connector = get_connector_class("local_file")(source)
    assert isinstance(connector, LocalFileConnector)
    return connector


def _tree(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    for name in ("a/one.csv", "a/b/two.csv", "top.csv", "with space.csv", "caf\u00e9.csv", "a/.hidden"):
        (root / name).write_text(name)
    (root / "link.csv").symlink_to(root / "top.csv")
    os.mkfifo(root / "a" / "pipe")


async def _versions(connector: LocalFileConnector) -> list[tuple[str, str]]:
    async with connector:
        return [pair async for run in connector.iter_versions() for pair in run]


async def _items(connector: LocalFileConnector) -> list[str]:
    async with connector:
        return [item.path for item in await connector.list_items()]


@pytest.mark.parametrize("config", [{}, {"pattern": "*.csv"}, {"recursive": False}], ids=["all", "pattern", "flat"])
def test_only_unusual_files_take_the_long_way_and_the_listing_is_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: dict[str, Any]) -> None:
    """Failed before: every file went through ``_walk_entry`` (four calls and the full name check each)."""
    root = tmp_path / "src"
    _tree(root)
    long_way: list[str] = []
    real = LocalFileConnector._walk_entry

    def counted(self: LocalFileConnector, root_fd: int, entry: os.DirEntry[str], relative: str,
                *args: Any) -> None:
        long_way.append(relative)
        real(self, root_fd, entry, relative, *args)

    monkeypatch.setattr(LocalFileConnector, "_walk_entry", counted)
    versions = asyncio.run(_versions(_connector(root, **config)))
    assert [path for path, _ in versions] == asyncio.run(_items(_connector(root, **config)))
    if not config:  # every file in scope: plain names at once, the others as before
        assert sorted(long_way) == ["a/.hidden", "a/pipe", "caf\u00e9.csv", "link.csv", "with space.csv"]
        assert [p for p, _ in versions] == ["a/.hidden", "a/b/two.csv", "a/one.csv", "caf\u00e9.csv", "link.csv",
                                            "top.csv", "with space.csv"]
    else:  # a scope to test: every file the long way
        assert "top.csv" in long_way


@pytest.mark.parametrize("name", ["plain.csv", "a/b-c_d.e", ".hidden", "a/.x", "a..b", "x.", "caf\u00e9", "a b",
                                  "a//b", "../x", "a/./b", "", "\udcff"])
def test_a_plain_name_is_a_safe_one(name: str) -> None:
    assert not is_plain_name(name) or is_safe_name(name)


def test_the_usual_listing_is_spilled_as_the_item_by_item_one(tmp_path: Path) -> None:
    """Failed before: no such path (each identifier and version were encoded by Python, item by item)."""
    pairs = [("a\x00b", "1-1"), ("caf\u00e9/\U0001f600", "2-2"), ("plain.csv", "3-3")]
    odd = [("\udcff.csv", "4-4"), ("z", "5-5")]  # a lone surrogate: SQLite's text cannot hold it
    with _Spill(tmp_path) as short, _Spill(tmp_path) as long:
        short.add_wanted(pairs)
        short.add_wanted(odd)
        long.add([(i, v, True) for i, v in pairs + odd])
        rows = "SELECT id, version, wanted, typeof(id), typeof(version) FROM listed ORDER BY id"
        assert short.db.execute(rows).fetchall() == long.db.execute(rows).fetchall()
        assert (short.count, short.wanted_count) == (long.count, long.wanted_count) == (5, 5)


def test_a_listing_with_exclusions_still_tests_each_item(tmp_path: Path) -> None:
    root = tmp_path / "src"
    _tree(root)
    with _Spill(tmp_path) as spill:
        asyncio.run(_spill_all(_connector(root), spill, ["a/*"]))
        wanted = dict(spill.db.execute("SELECT CAST(id AS TEXT), wanted FROM listed").fetchall())
    assert wanted["a/one.csv"] == 0 and wanted["top.csv"] == 1 and spill.seen == 7


async def _spill_all(connector: LocalFileConnector, spill: _Spill, exclude: list[str]) -> None:
    async with connector:
        await _spill_listing(connector, exclude, spill)
