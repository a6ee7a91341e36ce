"""A re-sync of N unchanged files stats each landed file once, its check included: counted, not timed.

The Dagster asset plans a re-sync (each unchanged item's landed file is stat-checked: a regular file of
the recorded size) and then runs the integrity check on the manifest in the same step; the check
stat-checked every file again. It now trusts the sync's stats when the sync checked or landed every
entry (``DatasetOutcome.all_checked``) and only hashes its sample.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import connectors.syncing.earlier_state as earlier_state
import da_pipelines.checks as checks
from connectors.landing.names import LINEAGE_DIR
from connectors.pipeline_settings import ItemSetSpec
from connectors.syncing.dataset_manifest import iter_manifest
from connectors.syncing.dataset_sync import DatasetOutcome, sync_datasets
from connectors.syncing.datasets import set_datasets
from connectors.syncing.source_sync import ItemRequest
from tests.unit.local_sources import csv_source

N = 300
SAMPLE = 20


def _source(tmp_path: Path) -> tuple[Any, Path]:
    connector, _, folder = csv_source(tmp_path, N, 100)
    return connector, folder


def _sync(connector: Any, folder: Path, requested: list[ItemRequest] | None = None) -> DatasetOutcome:
    datasets = set_datasets("files", [ItemSetSpec.model_validate({"name": "all"})])
    run = asyncio.run(sync_datasets(connector, folder, datasets, requested))
    assert not run.errors
    return run.outcomes[0]


def _check(folder: Path, outcome: DatasetOutcome) -> list[str]:
    """The integrity check as the asset runs it after the sync (``da_pipelines.assets.check_result``)."""
    damaged, _ = checks.verify_entries(folder, iter_manifest(folder, outcome.dataset.file_name), count=outcome.items,
                                       full=False, sample_size=SAMPLE, stat_checked=outcome.all_checked)
    return damaged


def _counting(monkeypatch: pytest.MonkeyPatch, folder: Path) -> tuple[Counter[str], Counter[str]]:
    """Count stats of the landed files (not their records) and sha256 computations, per file."""
    stats: Counter[str] = Counter()
    hashes: Counter[str] = Counter()
    prefix, records = f"{folder}/", f"{folder}/{LINEAGE_DIR}/"
    real_lstat, real_stat, real_hash = os.lstat, os.stat, checks.sha256_beneath

    def counted(real: Any) -> Any:
        def call(path: Any, *args: Any, **kwargs: Any) -> Any:
            text = os.fspath(path) if not isinstance(path, int) else ""
            if isinstance(text, str) and text.startswith(prefix) and not text.startswith(records):
                stats[text[len(prefix):]] += 1
            return real(path, *args, **kwargs)
        return call

    def hashed(base: Path, relative: str) -> str | None:
        hashes[relative] += 1
        return real_hash(base, relative)

    monkeypatch.setattr(os, "lstat", counted(real_lstat))
    monkeypatch.setattr(os, "stat", counted(real_stat))
    monkeypatch.setattr(checks, "sha256_beneath", hashed)
    return stats, hashes


def _walks(monkeypatch: pytest.MonkeyPatch) -> list[set[str]]:
    """The landed files each walk of the folder found (``connectors.syncing.landed_walk``, run here)."""
    walks: list[set[str]] = []
    real = earlier_state.walk

    def walk(db: sqlite3.Connection, folder: str, names: Any) -> None:
        real(db, folder, names)
        walks.append({raw.decode() for (raw,) in db.execute("SELECT path FROM landed")})

    monkeypatch.setattr(earlier_state, "walk", walk)
    return walks


def test_a_resync_of_unchanged_files_checks_each_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    connector, folder = _source(tmp_path)
    first = _sync(connector, folder)
    assert first.landed_count == N and first.all_checked and _check(folder, first) == []
    stats, hashes = _counting(monkeypatch, folder)
    walks = _walks(monkeypatch)
    again = _sync(connector, folder)
    assert again.unchanged == N and again.landed_count == 0 and again.all_checked
    assert _check(folder, again) == []
    landed = {e.path for e in iter_manifest(folder, again.dataset.file_name)}
    assert len(landed) == N
    # once each, by the sync's one walk of the folder (a stat relative to its open folder); the check trusts it
    assert walks == [landed] and {p: stats[p] for p in landed} == dict.fromkeys(landed, 0)
    assert sum(hashes.values()) == SAMPLE and set(hashes) <= landed  # only the check's sample is hashed


def test_the_check_still_stats_what_the_sync_did_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    connector, folder = _source(tmp_path)
    _sync(connector, folder)
    chosen = _sync(connector, folder, [ItemRequest("d0/f0000.csv", "")])  # one item: the others kept unchecked
    assert chosen.items == N and not chosen.all_checked
    victim = folder / "d1" / "f0150.csv"
    victim.write_text("tampered, other size\n")
    stats, _ = _counting(monkeypatch, folder)
    assert _check(folder, chosen) == ["d1/f0150.csv"]  # found by the check's own stat
    assert all(stats[e.path] == 1 for e in iter_manifest(folder, chosen.dataset.file_name))
