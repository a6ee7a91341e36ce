"""The framework's side of every fetch: names checked before a connector sees them, results checked after.

Every caller that lands items (the CLI, ``connectors.syncing.source_sync``, the Dagster layer)
goes through :func:`fetch_checked` or :func:`fetch_many_checked`, so the six
methods of DeepAnalyze's original interface are the whole contract a connector must meet:

* the identifier is checked with :func:`~connectors.landing.names.safe_relative_path`
  before the connector is called (``../../escape.txt`` never reaches a plugin);
* the path the connector returns must be a regular file inside the workspace (or a dataset folder
  of Parquet parts whose lineage record lists them), found without following links; anything else is refused with
  :class:`~connectors.errors.UnsafeNameError` (the file is left alone: it is not ours);
* a connector that wrote its own file without a lineage record (a minimal
  plugin) gets one written for it, hashing the file;
* the landed bytes are reported to the progress listener, whether or not the
  connector reported them itself.

It also holds the checks a sync makes on files that landed before: whether a
landed file still matches its record (:func:`landed_problem`) and removing a
landed file with its record (:func:`prune_landed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import stat
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.base import DataSourceConnector, FetchResult
from connectors.errors import DataSourceError, NameCollisionError, UnsafeNameError
from connectors.landing import lineage
from connectors.landing.dirs import open_directory
from connectors.landing.names import LINEAGE_DIR, safe_relative_path
from connectors.landing.progress import report_progress

_HASH_BUFFER = 4 * 1024 * 1024


@dataclass(slots=True)
class CheckedResult(FetchResult):
    """A :class:`FetchResult` whose landed file was checked; ``record`` is its lineage record."""

    record: dict[str, Any] | None = None


def check_identifier(identifier: str, source_id: str | None = None) -> str:
    """``identifier`` as a safe workspace-relative path, or :class:`UnsafeNameError`.

    Args:
        identifier: An item's identifier (hostile input).
        source_id: The source, named in the error.

    Returns:
        ``identifier``, once it is known to stay inside the workspace.

    Raises:
        UnsafeNameError: It would escape the workspace or cannot be a file name there.
    """
    try:
        return safe_relative_path(identifier)
    except UnsafeNameError as exc:
        raise UnsafeNameError(exc.message, source_id=source_id) from None


async def fetch_checked(
    connector: DataSourceConnector, identifier: str, workspace: str | os.PathLike[str], *, version: str | None = None
) -> dict[str, Any]:
    """Land one item through ``connector`` (connected) and return its lineage record.

    Args:
        connector: A connected connector.
        identifier: The item, as listed (hostile input: checked before the connector sees it).
        workspace: The folder it lands in.
        version: the version the listing showed, recorded if the connector writes no record.

    Returns:
        The landed file's lineage record (its ``local_path``, ``sha256``, ``size``, version...).

    Raises:
        UnsafeNameError: the identifier is unsafe (the connector is not called), or the
            connector returned a path that is not a regular file inside ``workspace``.
        DataSourceError: whatever the connector raised.
    """
    check_identifier(identifier, connector.source_id)
    started = time.time()
    path = await connector.fetch_data(identifier, str(workspace))
    fetched = [FetchResult(identifier, path=path)]
    versions = {identifier: version} if version is not None else None
    (result,) = await _accept_all(connector, _absolute(workspace), fetched, started, versions)
    if result.record is None:
        assert result.error is not None
        raise result.error
    return result.record


async def fetch_many_checked(
    connector: DataSourceConnector,
    identifiers: Iterable[str],
    workspace: str | os.PathLike[str],
    *,
    concurrency: int = 8,
    versions: Mapping[str, str] | None = None,
) -> list[CheckedResult]:
    """Land several items with the connector's own ``fetch_many``, each checked as :func:`fetch_checked` does.

    One item failing (unsafe name included) does not stop the others; results
    come in the order given.

    Args:
        connector: A connected connector.
        identifiers: The items, as listed (hostile input: each checked).
        workspace: The folder they land in.
        concurrency: How many items the connector fetches at once.
        versions: Per identifier, the version the listing showed (recorded if the connector writes none).

    Returns:
        One result per identifier, in order: its lineage record, or its error.
    """
    wanted = list(identifiers)
    results: dict[str, CheckedResult] = {}
    safe = []
    for identifier in wanted:
        try:
            check_identifier(identifier, connector.source_id)
            safe.append(identifier)
        except UnsafeNameError as exc:
            results[identifier] = CheckedResult(identifier, error=exc)
    started = time.time()
    with lineage.remembering_landed() as landed:  # the records our landing writes: not read back from disk
        fetched = await connector.fetch_many(safe, str(workspace), concurrency=concurrency) if safe else []
    for result in await _accept_all(connector, _absolute(workspace), fetched, started, versions, landed):
        results[result.identifier] = result
    return [results[identifier] for identifier in wanted]


async def _accept_all(
    connector: DataSourceConnector, workspace: Path, fetched: list[FetchResult], started: float,
    versions: Mapping[str, str] | None, landed: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
) -> list[CheckedResult]:
    """Check each landed result; write the records connectors did not write; report the bytes."""
    checked = await asyncio.to_thread(_check_all, connector, workspace, fetched, started, landed or {})
    unrecorded = [r for r in checked if r.error is None and r.record is None]
    if unrecorded:
        known = await _versions_of(connector, [r.identifier for r in unrecorded], versions or {})
        await asyncio.to_thread(_record_all, connector, workspace, unrecorded, known)
    for result in checked:
        if result.record is not None:  # every path that lands bytes reports them, whatever the connector did
            report_progress(result.identifier, int(result.record["size"]), int(result.record["size"]))
    return checked


def _absolute(workspace: str | os.PathLike[str]) -> Path:
    return Path(workspace).absolute()  # getcwd at most: no disk access


def _check_all(
    connector: DataSourceConnector, workspace: Path, fetched: list[FetchResult], started: float,
    landed: Mapping[tuple[str, str], Mapping[str, Any]],
) -> list[CheckedResult]:
    """Per result: its error, or its place checked and its fresh record (None when it has none).

    ``landed``: the records our landing wrote during this fetch, taken as they are (fresh by
    construction) when they are this source's; any other is read from disk and checked.
    """
    checked = []
    for result in fetched:
        if result.error is not None or result.path is None:
            checked.append(CheckedResult(result.identifier, error=result.error))
            continue
        try:
            relative = (_kept_relative(str(workspace), result.path, landed)
                        or landed_relative(workspace, result.path, connector.source_id))
            kept = landed.get((str(workspace), relative))
            record = (dict(kept) if kept is not None and kept.get("source_id") == connector.source_id
                      else _fresh_record(connector, result.identifier, workspace, relative, started))
            checked.append(CheckedResult(result.identifier, path=str(workspace / relative), record=record))
        except DataSourceError as exc:
            checked.append(CheckedResult(result.identifier, error=exc))
    return checked


def _record_all(
    connector: DataSourceConnector, workspace: Path, results: list[CheckedResult], versions: Mapping[str, str | None]
) -> None:
    for result in results:
        assert result.path is not None
        relative = Path(result.path).relative_to(workspace).as_posix()
        try:
            result.record = _write_record(connector, result.identifier, workspace, relative,
                                          versions.get(result.identifier))
        except (OSError, DataSourceError) as exc:
            result.error = exc if isinstance(exc, DataSourceError) else DataSourceError(
                f"{result.identifier!r}: cannot write its lineage record ({exc.strerror})",
                source_id=connector.source_id)


async def _versions_of(
    connector: DataSourceConnector, identifiers: list[str], known: Mapping[str, str]
) -> dict[str, str | None]:
    """Versions of items whose connector wrote no record: the listing's, else ``get_metadata``'s."""
    versions: dict[str, str | None] = {}
    for identifier in identifiers:
        if identifier in known:
            versions[identifier] = known[identifier]
            continue
        try:
            value = (await connector.get_metadata(identifier)).get("version")
        except (DataSourceError, KeyError, OSError):  # a best effort: the record is written anyway
            value = None
        versions[identifier] = None if value is None else str(value)
    return versions


def _fresh_record(
    connector: DataSourceConnector, identifier: str, workspace: Path, relative: str, started: float
) -> dict[str, Any] | None:
    """The record this fetch wrote at ``relative``; None when the connector wrote none (or only an older one).

    A fresh record of this source is accepted whatever identifier it names (a connector may
    record the canonical form, ``public.t`` for ``"public"."t"``); an older one must name this item.
    """
    record = lineage.read_record(workspace, relative)
    if record is None:
        return None
    fresh = _written_since(record, started)
    if record.get("source_id") == connector.source_id and (fresh or record.get("identifier") == identifier):
        return record if fresh else None
    raise NameCollisionError(
        f"{identifier!r} landed on {relative!r}, which holds {record.get('identifier')!r} "
        f"of source {record.get('source_id')!r}", source_id=connector.source_id)


def _kept_relative(workspace: str, path: str, landed: Mapping[tuple[str, str], Mapping[str, Any]]) -> str | None:
    """The relative name of ``path`` when our landing placed a file there in this fetch, else None.

    Such a file was put in place through folders opened without following links and its name
    checked: it is not walked again (:func:`landed_relative` does that for any other path).
    """
    absolute = os.path.normpath(os.path.join(workspace, path))
    if not absolute.startswith(workspace + "/"):
        return None
    relative = absolute[len(workspace) + 1:]
    return relative if (workspace, relative) in landed else None


def landed_relative(workspace: Path, path: str, source_id: str | None = None) -> str:
    """The workspace-relative name of ``path``, which must be a regular file in ``workspace``.

    The path is resolved without following links (``..`` is removed lexically), then
    every folder below the workspace is opened with ``O_NOFOLLOW``.

    Args:
        workspace: The workspace, absolute.
        path: The path a connector returned.
        source_id: The source, named in the error.

    Returns:
        The path relative to ``workspace``, ``/``-separated.

    Raises:
        UnsafeNameError: the path is outside the workspace, in its ``.lineage/`` tree,
            reached through a link, or not a regular file.
    """
    absolute = Path(os.path.normpath(workspace / path))
    refused = UnsafeNameError(
        f"the connector returned {path!r}, which is not a file inside the workspace; refused",
        source_id=source_id)
    if not absolute.is_relative_to(workspace) or absolute == workspace:
        raise refused
    relative = absolute.relative_to(workspace).as_posix()
    try:
        safe_relative_path(relative)
        info = _lstat(workspace, relative)
    except (OSError, DataSourceError):
        raise refused from None
    if not stat.S_ISREG(info.st_mode) and not (stat.S_ISDIR(info.st_mode) and is_dataset(workspace, relative)):
        raise refused
    return relative


def is_dataset(workspace: Path, relative: str) -> bool:
    """Whether ``relative`` is a dataset folder: its lineage record lists its parts.

    Args:
        workspace: the folder it landed in.
        relative: its path inside ``workspace``.

    Returns:
        True when its record (readable, of a folder) lists parts.
    """
    try:
        record = lineage.read_record(workspace, relative)
    except (OSError, ValueError, DataSourceError):
        return False
    return dataset_parts(record) is not None


def dataset_parts(record: Mapping[str, Any] | None) -> list[str] | None:
    """The part names a dataset folder's record lists; None when the record is a single file's.

    Args:
        record: a lineage record (or None).

    Returns:
        The names of the parts (plain file names only), or None.
    """
    listed = (record or {}).get("parts")
    if not isinstance(listed, list):
        return None
    names = [str(part.get("name")) for part in listed if isinstance(part, dict)]
    return [name for name in names if "/" not in name and name not in ("", ".", "..")]


def _lstat(workspace: Path, relative: str) -> os.stat_result:
    parts = relative.split("/")
    dir_fd = open_directory(workspace, parts[:-1], create=False)
    try:
        return os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
    finally:
        os.close(dir_fd)


def _written_since(record: Mapping[str, Any], started: float) -> bool:
    """Whether the record was written by this fetch (not left by an earlier one)."""
    written = _timestamp(record.get("fetched_at"))
    return written is not None and written >= int(started * 1_000_000) / 1_000_000


def _timestamp(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _write_record(
    connector: DataSourceConnector, identifier: str, workspace: Path, relative: str, version: str | None
) -> dict[str, Any]:
    """Hash the file a connector landed on its own and write its lineage record."""
    type_name = connector.config.type_name
    with lineage.target_lock(workspace, relative):
        digest, info = _hash_landed(workspace, relative)
        record = lineage.build_record(
            {"source_type": type_name, "source_uri": f"{type_name}://{connector.source_id}/{identifier}",
             "source_version": version, "recorded_by": "framework"},
            source_id=connector.source_id, identifier=identifier, local_path=str(workspace / relative),
            size=info.st_size, sha256=digest, mtime_ns=info.st_mtime_ns,
        )
        lineage.write_provenance(workspace, relative, record)
    return record


def _hash_landed(workspace: Path, relative: str) -> tuple[str, os.stat_result]:
    """sha256 and stat of a landed file, opened without following links."""
    parts = relative.split("/")
    dir_fd = open_directory(workspace, parts[:-1], create=False)
    try:
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        while chunk := handle.read(_HASH_BUFFER):
            digest.update(chunk)
    return digest.hexdigest(), info


# --- files that landed before ------------------------------------------------


def landed_problem(workspace: Path, relative: str, record: Mapping[str, Any]) -> str | None:
    """Why the landed file no longer matches its record, or None when it does.

    A cheap test first (the file exists, is a regular file of the recorded size,
    with the recorded ``mtime_ns``); the sha256 only when the modification time
    is in doubt (it changed, or an older record has none and the file is newer
    than the record).

    Args:
        workspace: The workspace.
        relative: The landed file's path inside it.
        record: Its lineage record.

    Returns:
        A short reason (``"missing"``, ``"content differs from its record"``...), or None.
    """
    if dataset_parts(record) is not None:
        return dataset_problem(workspace, relative, record)
    try:
        info = _lstat(workspace, relative)
    except (OSError, DataSourceError):
        return "missing"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_size != record.get("size"):
        return "size differs from its record"
    if not _mtime_in_doubt(info, record):
        return None
    try:
        digest, _ = _hash_landed(workspace, relative)
    except (OSError, DataSourceError):
        return "unreadable"
    return None if digest == record.get("sha256") else "content differs from its record"


def dataset_problem(workspace: Path, relative: str, record: Mapping[str, Any]) -> str | None:
    """Why a dataset folder no longer matches its record (a part missing, changed, or a file not listed), or None.

    Each part is checked as a single file is (:func:`landed_problem`, against the part's own record,
    which must carry the sha256 the dataset's record lists); a file in the folder that the record
    does not list is a problem too: a reader would read it as part of the dataset.

    Args:
        workspace: the folder the dataset landed in.
        relative: the dataset folder's path inside ``workspace``.
        record: the dataset folder's lineage record.

    Returns:
        The problem, short, or None when every part matches.
    """
    names = dataset_parts(record) or []
    try:
        dir_fd = open_directory(workspace, relative.split("/"), create=False)
    except (OSError, DataSourceError):
        return "missing"
    try:
        present = set(os.listdir(dir_fd))
    finally:
        os.close(dir_fd)
    if extra := sorted(present - set(names)):
        return f"holds {len(extra)} file(s) its record does not list"
    listed = {str(p.get("name")): p for p in record.get("parts", []) if isinstance(p, dict)}
    for name in names:
        part = f"{relative}/{name}"
        try:
            part_record = lineage.read_record(workspace, part)
        except (OSError, ValueError, DataSourceError):
            part_record = None
        if part_record is None or listed[name].get("sha256") not in (None, part_record.get("sha256")):
            return f"part {name}: its record is missing or differs"
        if (problem := landed_problem(workspace, part, part_record)) is not None:
            return f"part {name}: {problem}"
    return None


def _mtime_in_doubt(info: os.stat_result, record: Mapping[str, Any]) -> bool:
    recorded = record.get("mtime_ns")
    if isinstance(recorded, int):
        return info.st_mtime_ns != recorded
    # records written before mtime_ns existed: the file was written before its record
    fetched = _timestamp(record.get("fetched_at"))
    return fetched is None or info.st_mtime_ns > int(fetched * 1_000_000) * 1_000


def prune_landed(workspace: Path, relative: str, source_id: str, identifier: str) -> bool:
    """Remove a landed file and its lineage record, and nothing else; False when the record is not that item's.

    Only a regular file is removed (a link or folder planted at its place is left
    alone); the file goes before its record, so a crash in between is finished by
    the next prune.

    Args:
        workspace: The workspace.
        relative: The landed file's (or dataset folder's) path inside it.
        source_id: The source the record must name.
        identifier: The item the record must name.

    Returns:
        True when the file and its record were removed.
    """
    with lineage.target_lock(workspace, relative):
        record = lineage.read_record(workspace, relative)
        if record is None or (record.get("source_id"), record.get("identifier")) != (source_id, identifier):
            return False
        parts = relative.split("/")
        names = dataset_parts(record)
        if names is not None:  # a dataset folder: its parts and their records, then the folder if empty
            for name in names:
                _unlink_regular(workspace, [*parts, name])
                _unlink_regular(workspace, [LINEAGE_DIR, *parts, name + ".json"])
            _remove_empty(workspace, [LINEAGE_DIR, *parts])
            _remove_empty(workspace, parts)
        _unlink_regular(workspace, parts)
        _unlink_regular(workspace, [LINEAGE_DIR, *parts[:-1], parts[-1] + ".json"])
    return True


def _unlink_regular(workspace: Path, parts: list[str]) -> None:
    try:
        dir_fd = open_directory(workspace, parts[:-1], create=False)
    except (OSError, DataSourceError):
        return  # its folder is gone (or is a link): nothing of ours to remove
    try:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISREG(os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False).st_mode):
                os.unlink(parts[-1], dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def _remove_empty(workspace: Path, parts: list[str]) -> None:
    """Remove the folder ``parts`` if it is empty (a link or a folder holding files is left alone)."""
    try:
        dir_fd = open_directory(workspace, parts[:-1], create=False)
    except (OSError, DataSourceError):
        return
    try:
        with contextlib.suppress(OSError):  # not empty (something not ours), gone, or a link
            os.rmdir(parts[-1], dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
