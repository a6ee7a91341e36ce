"""The re-sync's lean paths: a version-only local listing, a one-match name check, unchanged items found by one query.

Each shortcut must give what the long way gives (the same listing, the same names accepted) and keep
what a re-sync must notice: an item marked for repair, an excluded chosen item, a landed file altered
in place (found by the check, re-fetched by the next sync).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import connectors.syncing.dataset_sync as dataset_sync
from connectors.base import DataSourceConfig
from connectors.landing import names
from connectors.landing.names import is_safe_name
from connectors.pipeline_settings import ItemSetSpec
from connectors.plugins import get_connector_class
from connectors.syncing.dataset_manifest import (
    ManifestEntry,
    iter_manifest_fields,
    manifest_path,
    read_manifest,
    write_manifest_sorted,
    write_repairs,
)
from connectors.syncing.dataset_store import DatasetStore
from connectors.syncing.dataset_sync import DatasetOutcome, SyncRun, sync_datasets
from connectors.syncing.datasets import set_datasets
from connectors.syncing.source_sync import ItemRequest, SyncOptions, _Spill, item_version
from da_pipelines.checks import verify_manifest
from tests.unit.local_sources import csv_source

N = 120


def _source(tmp_path: Path) -> tuple[Any, Path, Path]:
    return csv_source(tmp_path, N, 40)


def _sync(connector: Any, folder: Path, requested: list[ItemRequest] | None = None,
          options: SyncOptions | None = None) -> tuple[SyncRun, DatasetOutcome]:
    datasets = set_datasets("files", [ItemSetSpec.model_validate({"name": "all"})])
    run = asyncio.run(sync_datasets(connector, folder, datasets, requested, options=options))
    assert not run.errors
    return run, run.outcomes[0]


_ALPHABET = "ab_-.~/ :\\\x00\n\u00e9\u2028\udc80"
_EDGES = ["a" * 250, "a" * 251, "b" * 255 + "/a", "b" * 256 + "/a", ".lineage/a", "x/.lineage/a", ".locks/a",
          "x/.locks/a", ".~da-x", "x/.~da-y.part", "a./b", "a/b.", "a /b", "C:/x", "c:x", "/a", "a/", "a//b", "./a",
          "a/../b", "-", "_", "a.b.c", "0000/part-000000.bin"]


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=14) | st.sampled_from(_EDGES))
def test_a_name_the_one_match_accepts_is_one_every_rule_accepts(name: str) -> None:
    """The fast match (ASCII names in one regular expression) never accepts a name the rules refuse."""
    if names._PLAIN.fullmatch(name):
        assert names._unsafe_reason(name) is None, name
    assert is_safe_name(name) == (names._unsafe_reason(name) is None), name


def test_the_plain_names_of_a_listing_take_the_one_match() -> None:
    """The usual names are matched at once (a sync checks every listed name twice)."""
    for name in ("0000/part-000000.bin", "sales/2024-01.csv", "a_b/c-d/e.tar.gz", "a" * 250, "b" * 255 + "/a"):
        assert names._PLAIN.fullmatch(name), name


def test_the_version_listing_is_the_item_listing(tmp_path: Path) -> None:
    """``iter_versions`` lists what ``iter_items`` lists (nested folders, links, refusals, the pattern),
    with each item's version, in the same order."""
    root = tmp_path / "src"
    for relative in ("a.csv", "b/c.csv", "b/d/e.csv", "b/d.csv", "b-x.csv", "z/y.txt", "line\nbreak.csv",
                     "b/.hidden.csv", "\u00e9t\u00e9.csv"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(relative)
    (tmp_path / "outside.csv").write_text("secret")
    os.symlink(tmp_path / "outside.csv", root / "leak.csv")
    os.symlink(root / "a.csv", root / "b" / "inside.csv")
    seen = []
    for config in ({"root": str(root)}, {"root": str(root), "pattern": "b/*.csv"}, {"root": str(root),
                                                                                     "recursive": False}):
        source = DataSourceConfig(id="src", type="local_file", name="Src", config=config)

        async def both(cfg: DataSourceConfig = source) -> tuple[list[Any], list[Any], dict[str, str], dict[str, str]]:
            async with get_connector_class("local_file")(cfg) as items:
                listed = [(i.path, item_version(i)) async for i in items.iter_items()]
                refusals = dict(items.refusals)
            async with get_connector_class("local_file")(cfg) as versions:
                runs = [pair async for run in versions.iter_versions() for pair in run]
                return listed, runs, refusals, dict(versions.refusals)

        listed, runs, refusals, version_refusals = asyncio.run(both())
        assert runs == listed and listed, config
        assert version_refusals == refusals
        seen.append((dict(listed), refusals))
    assert "leak.csv" in seen[0][1] and "b/inside.csv" in seen[0][0] and "b/d/e.csv" in seen[0][0]
    assert set(seen[1][0]) == {"b/c.csv", "b/d.csv", "b/d/e.csv", "b/inside.csv", "b/.hidden.csv"}  # * takes /


def test_a_resync_with_nothing_changed_builds_no_request_per_item(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Failed before: every listed item became a request (N built), then a plan entry; now one query finds them."""
    connector, _, folder = _source(tmp_path)
    _sync(connector, folder)
    built = [0]
    real = ItemRequest.__init__

    def counted(self: ItemRequest, *args: Any, **kwargs: Any) -> None:
        built[0] += 1
        real(self, *args, **kwargs)

    monkeypatch.setattr(ItemRequest, "__init__", counted)
    _, again = _sync(connector, folder)
    assert (again.unchanged, again.landed_count, again.items) == (N, 0, N)
    assert built[0] == 0


def test_a_landed_file_altered_in_place_is_found_by_the_check_and_fetched_by_the_next_sync(tmp_path: Path) -> None:
    """Same size, same record: the sync's stat cannot see it (as before), the check's hash does and marks it;
    the next sync fetches it again although its version and size are the landed ones."""
    connector, _, folder = _source(tmp_path)
    _, first = _sync(connector, folder)
    landed = folder / "d1" / "f0050.csv"
    landed.write_bytes(landed.read_bytes().replace(b"x", b"y"))
    _, again = _sync(connector, folder)
    assert (again.unchanged, again.landed_count) == (N, 0)
    damaged, _ = verify_manifest(folder, first.dataset.file_name, count=again.items, full=True, sample_size=10,
                                 stat_checked=again.all_checked)
    assert damaged == ["d1/f0050.csv"]
    write_repairs(folder, first.dataset.file_name, damaged)
    _, third = _sync(connector, folder)
    assert (third.unchanged, third.landed_count, third.repaired) == (N - 1, 1, ["d1/f0050.csv"])
    assert landed.read_text() == "x\n50\n"


def test_a_chosen_item_at_its_landed_version_is_still_excluded_or_refetched_when_forced(tmp_path: Path) -> None:
    """Chosen items at their landed version go the short way too: an excluded one is skipped, one without a
    version is fetched, a plain one is unchanged; the others keep their entries."""
    connector, _, folder = _source(tmp_path)
    _, first = _sync(connector, folder)
    held = read_manifest(folder, first.dataset.file_name)
    requested = [ItemRequest("d0/f0001.csv", held["d0/f0001.csv"].version), ItemRequest("d1/f0041.csv", ""),
                 ItemRequest("d2/f0081.csv", held["d2/f0081.csv"].version)]
    run, again = _sync(connector, folder, requested, SyncOptions(exclude=["d0/*"]))
    assert [s[0] for s in run.skipped] == ["d0/f0001.csv"] and "excluded" in run.skipped[0][1]
    assert (again.unchanged, again.landed_count, again.items) == (1, 1, N)


def test_an_unsafe_name_at_its_landed_version_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name the listing shows at the version a (planted) prior row holds is still checked, and skipped."""
    connector, _, folder = _source(tmp_path)
    _sync(connector, folder)
    monkeypatch.setattr(dataset_sync, "is_safe_name", lambda name: name != "d0/f0002.csv")
    monkeypatch.setattr(dataset_sync, "safe_requests", _refusing("d0/f0002.csv", dataset_sync.safe_requests))
    run, again = _sync(connector, folder)
    assert [s[0] for s in run.skipped] == ["d0/f0002.csv"]
    assert (again.unchanged, again.items) == (N - 1, N - 1)


def _refusing(refused: str, real: Any) -> Any:
    def safe_requests(wanted: list[ItemRequest], options: SyncOptions, skipped: list[tuple[str, str]]) -> Any:
        kept = [r for r in wanted if r.identifier != refused]
        skipped.extend((r.identifier, "unsafe") for r in wanted if r.identifier == refused)
        return real(kept, options, skipped)
    return safe_requests


def _prior(store_path: Path, sql: bool) -> list[tuple[Any, ...]]:
    with _Spill() as spill:
        store = DatasetStore(spill.db)
        if sql:
            store.load_prior_manifest(3, store_path)
        else:
            store.load_prior_fields(3, iter_manifest_fields(store_path.parent.parent.parent, "m"))
        return spill.db.execute("SELECT * FROM prior ORDER BY id, ds").fetchall()


def test_the_manifest_parsed_by_sqlite_is_the_manifest_parsed_by_python(tmp_path: Path) -> None:
    """Odd names (escaped surrogates and pairs, accents, quotes, backslashes), duplicates and a big size give the
    same stored rows; a batch SQLite cannot take as it is goes to Python's parse, errors included."""
    folder = tmp_path / "ws"
    names = ["a", "z\udcff", "\u00e9/\U0001f600.csv", 'q"uo\\te', "dup", "dup", "n/" + "x" * 200]
    entries = [ManifestEntry(n, f"v{i}\u00e9", f"{i:064x}", 2**40 + i, f"p/{n}") for i, n in enumerate(names)]
    path = write_manifest_sorted(folder, "m", entries, len(entries), {"dataset": "m"})
    assert _prior(path, sql=True) == _prior(path, sql=False)
    ascii_entries = [e for e in entries if e.identifier.isascii()]  # no surrogate escape: SQLite parses them all
    plain = write_manifest_sorted(folder, "m", ascii_entries, len(ascii_entries), {"dataset": "m"})
    assert _prior(plain, sql=True) == _prior(plain, sql=False) and len(_prior(plain, sql=True)) == 4
    lines = plain.read_text().splitlines(keepends=True)
    for bad, error in (('{"identifier": "b", "version": "v", "sha256": "s", "size": 1}\n', KeyError),
                       ("not json\n", json.JSONDecodeError), ('{"a": 1}, {"b": 2}\n', json.JSONDecodeError)):
        plain.write_text("".join([lines[0], bad, *lines[1:]]))
        with pytest.raises(error):
            _prior(plain, sql=True)
    odd_size = '{"identifier": "b", "path": "b", "sha256": "s", "size": "12", "version": "v"}\n'
    plain.write_text("".join([*lines, odd_size]))  # stored as Python stores it (a text size)
    assert _prior(plain, sql=True) == _prior(plain, sql=False)


@pytest.mark.parametrize("removed", ["d0/f0000.csv", "d2/f0119.csv"])
def test_an_item_removed_first_or_last_in_key_order_leaves_the_manifest(tmp_path: Path, removed: str) -> None:
    """Batches that keep every prior row copy none; a prior row before the first or after the last listed item
    (no batch's range holds the last one) must still leave the dataset's entries and rewrite its manifest."""
    connector, root, folder = _source(tmp_path)
    _, first = _sync(connector, folder)
    (root / removed).unlink()
    run, again = _sync(connector, folder)
    held = read_manifest(folder, first.dataset.file_name)
    assert again.removed == [removed] and removed not in held and len(held) == again.items == N - 1
    assert again.unchanged == N - 1 and again.version != first.version
    _, third = _sync(connector, folder)
    assert (third.items, third.version, third.removed) == (N - 1, again.version, [removed])


def test_a_prior_manifest_that_cannot_be_read_fails_the_sync_while_the_listing_runs_beside_it(tmp_path: Path) -> None:
    """The earlier state loads in a thread while the source is listed: its error still comes out of the sync."""
    connector, _, folder = _source(tmp_path)
    _, first = _sync(connector, folder)
    path = manifest_path(folder, first.dataset.file_name)
    path.write_text(path.read_text() + "not json\n")
    with pytest.raises(json.JSONDecodeError):
        _sync(connector, folder)
