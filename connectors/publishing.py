"""Uploads and their local records: a file to a source that can upload, and a line saying what went where.

A thread's generated file is recorded in the thread's ``published.jsonl`` in the
state folder, never in the thread's folder (:func:`connectors.threads.publish_generated`,
:mod:`connectors.threads.records`); any other file, uploaded with
:func:`publish_file` (``da-sources upload ID FILE``), in ``published.jsonl``
beside the sources file, where the ids a record names are defined. Each record is
one JSON line, appended by one ``write`` so two uploads at once never interleave:
``published_at``, ``local_path``, ``source_id``, ``overwrite`` and the upload's
facts (``container``, ``blob_name``, ``uri``, ``etag``, ``version_id``,
``size``, ``content_md5``, ``sha256``, ``last_modified``). No record holds a
secret: the uri has no query.

Example:
    >>> async with SourceRegistry("sources.yaml") as registry:
    ...     record = await publish_file(registry, "lake", "report.csv", "results/report.csv")
    >>> read_published(published_log_path(registry.path))[-1] == record
    True
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from connectors.base import DataSourceConnector
from connectors.errors import ConfigurationError, WorkspaceError
from connectors.landing.lineage import utc_now_iso
from connectors.registry import SourceRegistry

PUBLISHED_LOG = "published.jsonl"
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC  # a link planted there is refused


class UploadNotSupportedError(ConfigurationError):
    """The source's connector cannot upload (only blob storage can)."""


def uploader_of(connector: DataSourceConnector) -> Callable[..., Awaitable[Any]]:
    """The connector's ``upload(local_path, blob_name, overwrite=False, metadata=None)``.

    Args:
        connector: A connected connector.

    Returns:
        Its bound ``upload`` method.

    Raises:
        UploadNotSupportedError: the connector has none.
    """
    upload = getattr(connector, "upload", None)
    if upload is None:
        raise UploadNotSupportedError(f"a {connector.type_name()} source does not support upload",
                                      source_id=connector.source_id)
    return upload  # type: ignore[no-any-return]


def upload_facts(uploaded: Any) -> dict[str, Any]:
    """What an upload answered (a dataclass such as ``Uploaded``, or a mapping), as a dict.

    Args:
        uploaded: What the connector's ``upload`` returned.

    Returns:
        Its fields (``uri``, ``version``, ``size``... as the connector gives them).
    """
    if is_dataclass(uploaded) and not isinstance(uploaded, type):
        return asdict(uploaded)
    return dict(uploaded)


def append_record(name: str | os.PathLike[str], record: Mapping[str, Any], *, dir_fd: int | None = None,
                  mode: int = 0o600) -> None:
    """Append ``record`` as one JSON line to ``name`` (in ``dir_fd``, when given), creating the file.

    Args:
        name: The log file.
        record: The record; values JSON cannot hold are written as their ``str``.
        dir_fd: The folder ``name`` is relative to; None for the working directory.
        mode: The permissions of a new log (owner only by default: records name hosts and paths).
    """
    fd = os.open(name, _APPEND, mode, dir_fd=dir_fd)
    try:  # one write of one line: appends of two uploads at once never interleave
        os.write(fd, (json.dumps(record, sort_keys=True, default=str) + "\n").encode())
    finally:
        os.close(fd)


def published_log_path(sources_file: str | os.PathLike[str]) -> Path:
    """Where :func:`publish_file` records uploads: ``published.jsonl`` beside the sources file.

    Args:
        sources_file: The sources file.

    Returns:
        The log's absolute path.
    """
    return Path(sources_file).absolute().with_name(PUBLISHED_LOG)


async def publish_file(registry: SourceRegistry, source_id: str, local_path: str | os.PathLike[str],
                       blob_name: str | None = None, overwrite: bool = False, *,
                       log_path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Upload ``local_path`` to source ``source_id`` (blob name default: the file's name); the record of it.

    The record is appended to ``log_path`` (default :func:`published_log_path` of the registry's file).

    Args:
        registry: The registry holding the source.
        source_id: The source to upload to.
        local_path: The file to upload.
        blob_name: The name at the source; None for the file's own name.
        overwrite: Replace an existing blob of that name rather than fail.
        log_path: The log to append the record to; None for :func:`published_log_path`.

    Returns:
        The record: when, which file, where it went and the source's version of it.

    Raises:
        UploadNotSupportedError: the source cannot upload.
        WorkspaceError: the upload went through but its record could not be written (the message says where
            the blob is). Others as the connector's ``upload`` raises.
    """
    local, log = _absolute(local_path), _absolute(log_path or published_log_path(registry.path))
    upload = uploader_of(await registry.connector(source_id))
    uploaded = upload_facts(await upload(local, blob_name or local.name, overwrite=overwrite))
    record = {"published_at": utc_now_iso(), "local_path": str(local), "source_id": source_id,
              "overwrite": overwrite, **uploaded}
    try:
        await asyncio.to_thread(append_record, log, record)
    except OSError as exc:
        raise WorkspaceError(f"uploaded to {uploaded.get('uri')}, but its record could not be written to "
                             f"{str(log)!r} ({exc.strerror})", source_id=source_id) from exc
    return record


def _absolute(path: str | os.PathLike[str]) -> Path:
    # taken before the upload: a later chdir cannot change which file a record names
    return Path(os.path.abspath(path))


def read_published(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a published log, oldest first (none when it does not exist).

    Args:
        path: The log file.

    Returns:
        One dict per line.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in data.splitlines() if line.strip()]
