"""The manifest of a dataset: what its last materialization holds, written beside the lineage records.

``<source folder>/.lineage/.sets/<dataset>.manifest.jsonl``: a header line, then
one line per landed item (``identifier``, ``version``, ``sha256``, ``size``,
``path`` relative to the source folder). Lineage stays per file (each file
keeps its own record); the manifest is what the dataset's single Dagster event
points to, and it lets a re-sync with nothing changed decide without reading
every record. Names end in ``.jsonl`` so no lineage record (``*.json``) can be
mistaken for one.

``<dataset>.repair.json`` lists items a failed integrity check found damaged;
the next sync fetches them again whatever their version.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.landing.lineage import utc_now_iso
from connectors.syncing.table_listing import write_atomically

SETS_DIR = ".lineage/.sets"


@dataclass(frozen=True)
class ManifestEntry:
    """One landed item of a dataset."""

    identifier: str
    version: str
    sha256: str
    size: int
    path: str  # relative to the source folder

    @classmethod
    def from_record(cls, record: Mapping[str, Any], folder: Path) -> ManifestEntry:
        """The entry of a lineage record.

        Args:
            record: A landed item's lineage record.
            folder: The source's folder: the entry's path is relative to it.

        Returns:
            The item's manifest entry.
        """
        local, base = str(record["local_path"]), f"{folder}{os.sep}"
        relative = local[len(base):].replace(os.sep, "/") if local.startswith(base) else local
        return cls(identifier=str(record["identifier"]), version=str(record.get("source_version")),
                   sha256=str(record["sha256"]), size=int(record["size"]), path=relative)


def manifest_path(folder: Path, name: str) -> Path:
    """The manifest file of dataset ``name``.

    Args:
        folder: The source's folder in the workspace.
        name: The dataset's file name (``Dataset.file_name``).

    Returns:
        Its path, under the source's folder.
    """
    return folder / SETS_DIR / f"{name}.manifest.jsonl"


def repair_path(folder: Path, name: str) -> Path:
    """The list of items the next sync of dataset ``name`` must fetch again.

    Args:
        folder: The source's folder in the workspace.
        name: The dataset's file name (``Dataset.file_name``).

    Returns:
        Its path, under the source's folder.
    """
    return folder / SETS_DIR / f"{name}.repair.jsonl"


def read_manifest(folder: Path, name: str) -> dict[str, ManifestEntry]:
    """The entries of the dataset's last manifest, by identifier.

    Args:
        folder: The source's folder in the workspace.
        name: The dataset's file name (``Dataset.file_name``).

    Returns:
        Identifier -> entry; empty when there is no manifest.
    """
    path = manifest_path(folder, name)
    if not path.is_file():
        return {}
    entries: dict[str, ManifestEntry] = {}
    with path.open() as handle:
        next(handle, None)  # the header
        for line in handle:
            raw = json.loads(line)
            entries[raw["identifier"]] = ManifestEntry(**raw)
    return entries


def iter_manifest(folder: Path, name: str) -> Iterator[ManifestEntry]:
    """The entries of the dataset's last manifest, one at a time in its order.

    Args:
        folder: The source's folder in the workspace.
        name: The dataset's file name (``Dataset.file_name``).

    Yields:
        Each entry; none when there is no manifest.
    """
    path = manifest_path(folder, name)
    if not path.is_file():
        return
    with path.open() as handle:
        next(handle, None)  # the header
        for line in handle:
            yield ManifestEntry(**json.loads(line))


def iter_manifest_at(folder: Path, name: str, positions: Container[int] | None) -> Iterator[tuple[int, ManifestEntry]]:
    """The entries at ``positions`` (0 = the first entry) of the dataset's last manifest; other lines are not parsed.

    Args:
        folder: The source's folder in the workspace.
        name: The dataset's file name (``Dataset.file_name``).
        positions: The entries wanted; None: every entry.

    Yields:
        ``(position, entry)`` in the manifest's order; none when there is no manifest.
    """
    path = manifest_path(folder, name)
    if not path.is_file():
        return
    with path.open() as handle:
        next(handle, None)  # the header
        for position, line in enumerate(handle):
            if positions is None or position in positions:
                yield position, ManifestEntry(**json.loads(line))


def iter_manifest_fields(folder: Path, name: str) -> Iterator[dict[str, Any]]:
    """The entries of the dataset's last manifest as parsed JSON objects, one at a time in its order.

    What :func:`iter_manifest` yields, without building an entry per line (a re-sync reads every line).

    Args:
        folder: The source's folder in the workspace.
        name: The dataset's file name (``Dataset.file_name``).

    Yields:
        Each entry's fields (``identifier``, ``version``, ``sha256``, ``size``, ``path``); none without a manifest.
    """
    path = manifest_path(folder, name)
    if not path.is_file():
        return
    with path.open() as handle:
        next(handle, None)  # the header
        yield from map(json.loads, handle)


def manifest_items(folder: Path, name: str) -> int:
    """The number of entries the manifest's header announces.

    Args:
        folder: The source's folder in the workspace.
        name: The dataset's file name (``Dataset.file_name``).

    Returns:
        The count, 0 when there is no manifest.
    """
    path = manifest_path(folder, name)
    if not path.is_file():
        return 0
    with path.open() as handle:
        return int(json.loads(handle.readline() or "{}").get("items", 0))


def data_version(entries: Iterable[ManifestEntry]) -> str:
    """A digest of (identifier, version, sha256) of every entry: changes exactly when an item changed.

    Args:
        entries: The dataset's entries, in any order.

    Returns:
        The hex digest (the dataset's Dagster data version).
    """
    return data_version_sorted(sorted(entries, key=lambda e: e.identifier))


def data_version_sorted(ordered: Iterable[ManifestEntry]) -> str:
    """:func:`data_version` of entries already in identifier order, streamed (nothing held).

    Args:
        ordered: The entries, sorted by identifier.

    Returns:
        The same digest :func:`data_version` gives.
    """
    digest = hashlib.sha256()
    for entry in ordered:
        digest.update(f"{entry.identifier}\0{entry.version}\0{entry.sha256}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:32]


def write_manifest(folder: Path, name: str, entries: Iterable[ManifestEntry], header: Mapping[str, Any]) -> Path:
    """Write the manifest atomically.

    Args:
        folder: The source's folder in the workspace.
        name: The dataset's file name (``Dataset.file_name``).
        entries: Every entry of the dataset, in any order (sorted here).
        header: Facts written on the first line (counts, data version).

    Returns:
        The manifest's path.
    """
    ordered = sorted(entries, key=lambda e: e.identifier)
    return write_manifest_sorted(folder, name, ordered, len(ordered), header)


def write_manifest_sorted(folder: Path, name: str, ordered: Iterable[ManifestEntry], count: int,
                          header: Mapping[str, Any]) -> Path:
    """Write the manifest of ``count`` entries already in identifier order, streamed.

    Args:
        folder: The source's folder in the workspace.
        name: The dataset's file name (``Dataset.file_name``).
        ordered: The entries, sorted by identifier.
        count: Their number (the header announces it before they are read).
        header: Facts written on the first line.

    Returns:
        The manifest's path.
    """
    # streamed line by line: the whole text of a million entries would be held twice (lines, then joined)
    lines = (json.dumps(entry.__dict__, sort_keys=True) + "\n" for entry in ordered)
    return write_manifest_lines(folder, name, lines, count, header)


def write_manifest_lines(folder: Path, name: str, lines: Iterable[str], count: int,
                         header: Mapping[str, Any]) -> Path:
    """Write the manifest of ``count`` entries given as their lines, streamed.

    Args:
        folder: The source's folder in the workspace.
        name: The dataset's file name (``Dataset.file_name``).
        lines: One JSON object per entry and line (as :func:`write_manifest_sorted` writes them), each
            ending in a newline, in identifier order.
        count: Their number (the header announces it before they are read).
        header: Facts written on the first line.

    Returns:
        The manifest's path.
    """
    head = json.dumps({**header, "written_at": utc_now_iso(), "items": count}, sort_keys=True)
    path = manifest_path(folder, name)
    write_atomically(path, itertools.chain([head + "\n"], lines), root=folder)
    return path


def read_repairs(folder: Path, name: str) -> set[str]:
    """Identifiers a failed check marked for repair.

    Args:
        folder: The source's folder in the workspace.
        name: The dataset's file name (``Dataset.file_name``).

    Returns:
        The identifiers the next sync fetches again; empty when none are marked.
    """
    path = repair_path(folder, name)
    if not path.is_file():
        return set()
    return {json.loads(line) for line in path.read_text().splitlines() if line.strip()}


def write_repairs(folder: Path, name: str, identifiers: Iterable[str]) -> None:
    """Mark items for repair by the next sync (an empty list clears the mark).

    Args:
        folder: The source's folder in the workspace.
        name: The dataset's file name (``Dataset.file_name``).
        identifiers: The damaged items.
    """
    wanted = sorted(set(identifiers))
    path = repair_path(folder, name)
    if not wanted:
        path.unlink(missing_ok=True)
        return
    write_atomically(path, "".join(json.dumps(i) + "\n" for i in wanted), root=folder)
