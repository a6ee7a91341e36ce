"""The re-sync's fast path (nothing changed at the source): what it skips, and what it must still notice.

A re-sync with nothing changed decides from the prior manifest's stored rows (no entry built per
item), compares this sync's entries with the prior ones in SQL (no second digest) and parses only
the check's sampled manifest lines. These tests count that work (never time it) and check that a
changed file among unchanged ones, a landed file deleted or altered, a deleted record and an item
removed at the source are all still handled as before.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import random
import sys
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import connectors.syncing.dataset_manifest as dataset_manifest
from connectors.landing.names import LINEAGE_DIR, unsafe_text_reason
from connectors.local_file import _content_type, _iso
from connectors.pipeline_settings import ItemSetSpec
from connectors.syncing.dataset_manifest import ManifestEntry, data_version, manifest_path, read_manifest
from connectors.syncing.dataset_store import DatasetStore
from connectors.syncing.dataset_sync import DatasetOutcome, SyncRun, sync_datasets
from connectors.syncing.datasets import set_datasets
from connectors.syncing.source_sync import _Spill
from da_pipelines.checks import verify_entries, verify_manifest
from tests.unit.local_sources import csv_source

N = 200
SAMPLE = 10


def _source(tmp_path: Path) -> tuple[Any, Path, Path]:
    return csv_source(tmp_path, N, 50)


def _sync(connector: Any, folder: Path) -> tuple[SyncRun, DatasetOutcome]:
    datasets = set_datasets("files", [ItemSetSpec.model_validate({"name": "all"})])
    run = asyncio.run(sync_datasets(connector, folder, datasets))
    assert not run.errors
    return run, run.outcomes[0]


def _entries_built(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count manifest entries built (each one a Python object per item)."""
    built = [0]
    real = ManifestEntry.__init__

    def counted(self: ManifestEntry, *args: Any, **kwargs: Any) -> None:
        built[0] += 1
        real(self, *args, **kwargs)

    monkeypatch.setattr(ManifestEntry, "__init__", counted)
    return built


def test_a_resync_with_nothing_changed_builds_no_entry_per_item(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Failed before: the prior manifest was loaded as entries, re-read per batch and digested twice (4N entries)."""
    connector, _, folder = _source(tmp_path)
    _, first = _sync(connector, folder)
    written = manifest_path(folder, first.dataset.file_name).stat()
    built = _entries_built(monkeypatch)
    _, again = _sync(connector, folder)
    damaged, facts = verify_manifest(folder, again.dataset.file_name, count=again.items, full=False,
                                     sample_size=SAMPLE, stat_checked=again.all_checked)
    assert (again.unchanged, again.landed_count, again.items, damaged) == (N, 0, N, [])
    assert facts["hashed"].value == SAMPLE
    assert built[0] <= SAMPLE  # the check's sampled lines only
    assert again.version == first.version == data_version(read_manifest(folder, first.dataset.file_name).values())
    kept = manifest_path(folder, first.dataset.file_name).stat()
    assert (kept.st_ino, kept.st_mtime_ns) == (written.st_ino, written.st_mtime_ns)  # not rewritten


def test_the_fast_path_still_sees_every_change(tmp_path: Path) -> None:
    """A changed file among unchanged ones is fetched, damaged landed files are repaired, a removal reported."""
    connector, root, folder = _source(tmp_path)
    _, first = _sync(connector, folder)
    changed = root / "d1" / "f0060.csv"
    changed.write_text("x\n60, changed\n")
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 1_000_000_000))
    (root / "d2" / "f0120.csv").unlink()  # removed at the source
    (folder / "d0" / "f0001.csv").unlink()  # deleted in the workspace
    with (folder / "d3" / "f0170.csv").open("a") as landed:
        landed.write("appended\n")  # altered in the workspace: another size
    (folder / LINEAGE_DIR / "d3" / "f0190.csv.json").unlink()  # its record deleted
    run, again = _sync(connector, folder)
    assert again.landed_count == 4 and sorted(again.repaired) == ["d0/f0001.csv", "d3/f0170.csv", "d3/f0190.csv"]
    assert again.unchanged == N - 5 and again.items == N - 1 and again.removed == ["d2/f0120.csv"]
    assert (folder / "d1" / "f0060.csv").read_text() == "x\n60, changed\n"
    assert (folder / "d3" / "f0170.csv").read_text() == "x\n170\n"
    assert (folder / LINEAGE_DIR / "d3" / "f0190.csv.json").is_file()
    manifest = read_manifest(folder, first.dataset.file_name)
    assert "d2/f0120.csv" not in manifest and len(manifest) == N - 1
    assert again.version != first.version and again.version == data_version(manifest.values())
    _, third = _sync(connector, folder)
    assert (third.unchanged, third.landed_count, third.version) == (N - 1, 0, again.version)


def test_the_check_of_a_manifest_finds_what_the_check_of_its_entries_finds(tmp_path: Path) -> None:
    connector, _, folder = _source(tmp_path)
    _, first = _sync(connector, folder)
    name = first.dataset.file_name
    for relative in ("d0/f0000.csv", "d2/f0120.csv"):  # position 0 is always in the sample
        landed = folder / relative
        landed.write_bytes(landed.read_bytes().replace(b"x", b"y"))  # same size: only a hash sees it
    entries = list(dataset_manifest.iter_manifest(folder, name))
    for stat_checked in (True, False):
        expected = verify_entries(folder, entries, full=False, sample_size=SAMPLE, stat_checked=stat_checked)
        found = verify_manifest(folder, name, count=N, full=False, sample_size=SAMPLE, stat_checked=stat_checked)
        assert found[0] == expected[0] and "d0/f0000.csv" in found[0]
        assert {k: v.value for k, v in found[1].items()} == {k: v.value for k, v in expected[1].items()}


def test_the_stored_digest_and_comparison_match_the_entries() -> None:
    """The data version digested from stored rows is the entries' (odd names included); the SQL comparison
    tells a changed version, sha256, size or path and a missing or added item."""
    names = ["a", "z\udcff", "\u00e9/\U0001f600.csv", "b\x7fc", "n\x00ul", "\udce9\udcff"]
    entries = [ManifestEntry(n, f"v{i}", f"{i:064x}", i, n) for i, n in enumerate(names)]
    with _Spill() as spill:
        store = DatasetStore(spill.db)
        store.load_prior(0, entries)
        store.add("entries", [(0, e) for e in entries])
        assert store.data_version("prior", 0) == data_version(entries) and store.same_as_prior(0)
        for field, value in (("version", "v9"), ("sha256", "f" * 64), ("size", 99), ("path", "elsewhere")):
            store.add("entries", [(0, ManifestEntry(**{**entries[1].__dict__, field: value}))])
            assert not store.same_as_prior(0), field
            store.add("entries", [(0, entries[1])])
            assert store.same_as_prior(0)
        store.add("entries", [(0, ManifestEntry("new", "v", "0" * 64, 1, "new"))])
        assert not store.same_as_prior(0)
    with _Spill() as spill:
        store = DatasetStore(spill.db)
        store.load_prior(0, entries)
        store.add("entries", [(0, e) for e in entries[1:]])
        assert not store.same_as_prior(0)


def test_unsafe_text_refuses_exactly_the_refused_categories_and_backslash() -> None:
    """The one regular expression matches the per-character category test at every code point."""
    for point in range(sys.maxunicode + 1):
        char = chr(point)
        refused = unicodedata.category(char) in {"Cc", "Zl", "Zp", "Cs"} or char == "\\"
        assert (unsafe_text_reason(f"a{char}b") is not None) == refused, hex(point)


@pytest.mark.parametrize("name", ["a/b/c.csv", "x.tar.gz", "d/.bashrc", "a..csv", "A.CSV", "noext", "d.e/f",
                                  "dir/file.JSON", "a/b.tgz", "q.svgz", "weird.%2e", "x.c s v", "d/\u00fc.txt",
                                  "a.b.c.parquet", ".hidden.csv", "a/.x.json", "a\udcff.csv", "t.tar.bz2", "a.gz"])
def test_the_cached_content_type_is_the_guess_of_the_whole_name(name: str) -> None:
    guessed, _ = mimetypes.guess_type(quote(name, errors="replace"))
    assert _content_type(name) == (guessed or "application/octet-stream")


def test_the_listed_modification_time_is_the_datetime_isoformat() -> None:
    """Each second formatted once: the same text as datetime's, its half-to-even microsecond rounding included."""
    generator = random.Random(28)
    edges = [0, 1, 999, 500, 1500, 999_999_499, 999_999_500, 999_999_501, 1_000_000_000, -1, -1_500_000_000,
             1_733_580_000_000_000_500, 1_733_580_000_999_999_999, 253_402_300_799_000_000_000]
    spread = [generator.randrange(0, 2 * 10**18) for _ in range(20_000)]
    together = [1_733_580_000 * 10**9 + generator.randrange(0, 10**9) for _ in range(20_000)]
    for mtime_ns in edges + spread + together:
        expected = datetime.fromtimestamp(mtime_ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")
        assert _iso(mtime_ns) == expected, mtime_ns


def test_overlapping_sets_keep_exactly_their_items_when_a_set_is_redrawn(tmp_path: Path) -> None:
    """Prior rows are copied a key range at a time: those of items that left a set, changed or were
    removed at the source must not stay in its entries."""
    connector, root, folder = _source(tmp_path)

    def sync(prefix: str) -> list[DatasetOutcome]:
        specs = [ItemSetSpec.model_validate({"name": "all"}), ItemSetSpec.model_validate({"name": "part",
                                                                                          "prefix": prefix})]
        run = asyncio.run(sync_datasets(connector, folder, set_datasets("files", specs)))
        assert not run.errors
        return run.outcomes

    first = sync("d0/")
    assert [o.items for o in first] == [N, 50]
    (root / "d1" / "f0075.csv").write_text("x\n75, changed\n")
    os.utime(root / "d1" / "f0075.csv", ns=(1, 2_000_000_000_000_000_000))
    (root / "d1" / "f0080.csv").unlink()
    everything, part = sync("d1/")
    assert (everything.items, part.items, part.landed_count, everything.landed_count) == (N - 1, 49, 1, 1)
    held = read_manifest(folder, part.dataset.file_name)
    assert sorted(held) == sorted(f"d1/f{i:04d}.csv" for i in range(50, 100) if i != 80)
    assert held["d1/f0075.csv"].version == read_manifest(folder, everything.dataset.file_name)["d1/f0075.csv"].version
    assert part.version == data_version(held.values())
