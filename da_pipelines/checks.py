"""The asset check ``landed_files_match_lineage``: landed files still exist with their recorded size and sha256.

Damaged files are reported in the check's metadata and repaired by the next sync.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dagster import MetadataValue

from connectors.checked_fetch import dataset_problem
from connectors.errors import DataSourceError
from connectors.landing.dirs import open_regular_file
from connectors.landing.lineage import read_record
from connectors.landing.root import open_workspace_folder
from connectors.syncing.dataset_manifest import ManifestEntry, iter_manifest, iter_manifest_at

_HASH_BUFFER = 4 * 1024 * 1024


def verify_landed(record: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """Whether the landed file exists and its size and sha256 match its lineage record.

    Args:
        record: The item's lineage record (``local_path``, ``size``, ``sha256``).

    Returns:
        Whether it passed, and the check's metadata.
    """
    path = Path(str(record["local_path"]))
    facts: dict[str, Any] = {"path": MetadataValue.path(str(path)), "expected_sha256": record["sha256"]}
    if not path.is_file() or path.is_symlink():
        return False, {**facts, "problem": "the landed file is missing"}
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_BUFFER):
            digest.update(chunk)
    actual = digest.hexdigest()
    facts["actual_sha256"] = actual
    if actual != record["sha256"] or path.stat().st_size != int(record["size"]):
        return False, {**facts, "problem": "the file differs from its lineage record"}
    return True, facts


def sha256_beneath(folder: Path, relative: str) -> str | None:
    """The sha256 of the regular file ``folder/relative``, reached without following any link.

    The manifest and the landed tree live in the workspace, where the agent writes too: a
    folder swapped for a link, an absolute or ``..`` path, must not make the check read
    a file outside the source's folder.

    Args:
        folder: The source's folder in the workspace.
        relative: The landed file's path below it, as its manifest entry records it.

    Returns:
        The hex digest, or None when the path is not a regular file reached without a link.
    """
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    try:
        dir_fd = open_workspace_folder(folder, parts[:-1], create=False)
    except (OSError, DataSourceError):
        return None
    try:
        fd = open_regular_file(dir_fd, parts[-1])
    finally:
        os.close(dir_fd)
    if fd is None:
        return None
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as handle:
        while chunk := handle.read(_HASH_BUFFER):
            digest.update(chunk)
    return digest.hexdigest()


def _dataset_intact(folder: Path, entry: ManifestEntry, *, hashed: bool) -> bool:
    """A dataset folder matches its record: the entry's, listing parts that match theirs (``hashed``: their
    sha256 recomputed), and nothing else in the folder."""
    try:
        record = read_record(folder, entry.path)
    except (OSError, ValueError, DataSourceError):
        return False
    if record is None or record.get("sha256") != entry.sha256 or dataset_problem(folder, entry.path, record):
        return False
    listed = [p for p in record.get("parts", []) if isinstance(p, dict)]
    return not hashed or all(sha256_beneath(folder, f"{entry.path}/{p.get('name')}") == p.get("sha256")
                             for p in listed)


def _folder_intact(folder: Path, entry: ManifestEntry) -> bool:
    """Whether an entry whose hash did not match is a dataset folder matching its record, parts hashed."""
    try:
        info = os.lstat(f"{folder}/{entry.path}")
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and _dataset_intact(folder, entry, hashed=True)


def verify_entries(folder: Path, entries: Iterable[ManifestEntry], *, full: bool, sample_size: int,
                   count: int | None = None, stat_checked: bool = False) -> tuple[list[str], dict[str, Any]]:
    """Check a dataset's landed files against its manifest: the damaged identifiers and the facts.

    Every file is checked for presence and size (a stat); the sha256 is recomputed for every
    file (``full``) or for an evenly spread sample, so a check stays fast on 100,000 files.

    Args:
        folder: The source's folder in the workspace.
        entries: The manifest's entries (streamed once when ``count`` is given).
        full: Recompute the sha256 of every file rather than a sample.
        sample_size: How many files have their sha256 recomputed when not ``full``.
        count: The number of entries, when known: then nothing is held but the damaged identifiers.
        stat_checked: The sync just run, in the same step, stat-checked every entry (a regular file of
            the recorded size, or a dataset folder whose parts match its record) or landed it
            (``DatasetOutcome.all_checked``): the entries are not stat-checked twice; only the picked
            ones are hashed (a missing or replaced file fails its hash; a folder is then checked
            part by part). A re-sync of N unchanged files then stats each file once.

    Returns:
        The identifiers of missing or damaged files, and the check's metadata (files, checked, damaged).
    """
    if count is None:
        entries = list(entries)
        count = len(entries)
    picked = _sample(count, full, sample_size)
    if stat_checked:
        damaged, hashed = _hash_picked(folder, (
            (position, entry) for position, entry in enumerate(entries) if picked is None or position in picked))
        return damaged, _facts(count, hashed, damaged, sample_size, sampled=picked is not None)
    damaged = []
    base = str(folder)
    hashed = 0
    for position, entry in enumerate(entries):  # one lstat on a string path per file: runs over every file
        try:
            info = os.lstat(f"{base}/{entry.path}")
        except OSError:
            damaged.append(entry.identifier)
            continue
        if stat.S_ISDIR(info.st_mode):  # a dataset folder: every part, hashed when the folder is picked
            if not _dataset_intact(folder, entry, hashed=picked is None or position in picked):
                damaged.append(entry.identifier)
            hashed += picked is None or position in picked
        elif not stat.S_ISREG(info.st_mode) or info.st_size != entry.size:
            damaged.append(entry.identifier)
        elif picked is None or position in picked:
            hashed += 1
            if sha256_beneath(folder, entry.path) != entry.sha256:
                damaged.append(entry.identifier)
    return damaged, _facts(count, hashed, damaged, sample_size, sampled=picked is not None)


def verify_manifest(folder: Path, name: str, *, count: int, full: bool, sample_size: int,
                    stat_checked: bool = False) -> tuple[list[str], dict[str, Any]]:
    """:func:`verify_entries` of a dataset's manifest, read from its file.

    After a sync that stat-checked every entry (``stat_checked``), only the sampled lines of the
    manifest are parsed: a re-sync of N unchanged files reads the manifest's other lines as text.

    Args:
        folder: The source's folder in the workspace.
        name: The dataset's file name (``Dataset.file_name``).
        count: The number of entries of the manifest.
        full: Recompute the sha256 of every file rather than a sample.
        sample_size: How many files have their sha256 recomputed when not ``full``.
        stat_checked: As for :func:`verify_entries`.

    Returns:
        The identifiers of missing or damaged files, and the check's metadata (files, checked, damaged).
    """
    if not stat_checked:
        return verify_entries(folder, iter_manifest(folder, name), full=full, sample_size=sample_size, count=count)
    picked = _sample(count, full, sample_size)
    damaged, hashed = _hash_picked(folder, iter_manifest_at(folder, name, picked))
    return damaged, _facts(count, hashed, damaged, sample_size, sampled=picked is not None)


def _sample(count: int, full: bool, sample_size: int) -> set[int] | None:
    """The positions whose sha256 is recomputed, evenly spread; None: every one."""
    step = 1 if full or count <= sample_size else count / sample_size
    return None if step == 1 else {int(i * step) for i in range(sample_size)}


def _hash_picked(folder: Path, picked: Iterable[tuple[int, ManifestEntry]]) -> tuple[list[str], int]:
    """Hash the picked entries of a dataset the sync just stat-checked: the damaged ones and how many were hashed.

    A missing or replaced file fails its hash; a folder is then checked part by part.
    """
    damaged, hashed = [], 0
    for _, entry in picked:
        hashed += 1
        if sha256_beneath(folder, entry.path) != entry.sha256 and not _folder_intact(folder, entry):
            damaged.append(entry.identifier)
    return damaged, hashed


def _facts(count: int, hashed: int, damaged: list[str], sample_size: int, *, sampled: bool) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "files": MetadataValue.int(count),
        "hashed": MetadataValue.int(hashed),
        "mode": MetadataValue.text(f"sampled ({sample_size} sha256, every size)" if sampled else "full"),
        "damaged": MetadataValue.int(len(damaged)),
    }
    if damaged:
        facts["damaged_items"] = MetadataValue.json(sorted(damaged)[:20])
        facts["problem"] = MetadataValue.text(
            f"{len(damaged)} landed file(s) are missing or differ from their lineage; the next sync repairs them")
    return facts
