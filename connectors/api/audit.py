"""The audit log: one JSON line per call that changes something or moves data, and per refusal.

Each line: ``time`` (ISO-8601 UTC), ``request_id``, ``key_id``, ``method``,
``route`` (the route's template, not the URL: a query string may hold
anything), ``source_id``, ``status``, ``outcome`` (``ok``, ``refused``,
``failed``) and what the call resolved to, when it has it: ``job_id``,
``thread_id``, ``item`` (preview, stats), ``items`` (up to 20 names; more are
``item_count`` and ``items_sha256``, the digest of the sorted names),
``workspace``, ``prefix``, ``overwrite`` and ``config`` (a created or changed
source's config as the API shows it: secrets masked, references as names).
Only those fields are ever written, each text redacted again: no request body,
no header, no secret.

A line that cannot be written fails a state-changing call: before it runs,
the log must open for appending (else 503, nothing done); after it, a failed
write answers 500 saying the change was made but not audited. Read-only
calls only log the failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.secrets.references import get_logger, redact

log = get_logger(__name__)
MAX_FIELD = 256  # a path parameter of a refused call is the caller's text: kept short
FIELDS = ("request_id", "key_id", "method", "route", "source_id", "status", "outcome", "job_id", "thread_id",
          "item", "items", "item_count", "items_sha256", "workspace", "prefix", "overwrite", "config")
MAX_ITEMS = 20  # names listed in a line; more are a count and a digest


class AuditWriteError(OSError):
    """The audit log could not be written."""


def items_fields(names: list[str]) -> dict[str, Any]:
    """The audit fields naming a call's items: the names when few, else their count and digest.

    Args:
        names: the item names the call resolved to.

    Returns:
        ``{"items": names}`` for up to 20 names, else ``item_count`` and ``items_sha256`` (the
        SHA-256 of the sorted names, one per line).
    """
    if len(names) <= MAX_ITEMS:
        return {"items": names}
    digest = hashlib.sha256("\n".join(sorted(names)).encode("utf-8", "surrogatepass")).hexdigest()
    return {"item_count": len(names), "items_sha256": digest}


def _clean(value: Any, depth: int = 0) -> Any:
    """``value`` fit for a line: texts redacted and bounded, lists and mappings cleaned in depth."""
    if isinstance(value, str):
        return redact(value[:MAX_FIELD])
    if isinstance(value, list | tuple) and depth < 3:
        return [_clean(v, depth + 1) for v in value[:MAX_ITEMS]]
    if isinstance(value, dict) and depth < 3:
        return {str(k)[:MAX_FIELD]: _clean(v, depth + 1) for k, v in list(value.items())[:50]}
    return value if value is None or isinstance(value, bool | int | float) else _clean(str(value), depth)


class AuditLog:
    """Appends records to a JSON-lines file (one ``write`` per line, so lines never interleave).

    Args:
        path: the log file (``$DA_API_AUDIT_LOG``), created mode 0600 with its folder on the first line.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()
        self._lock = threading.Lock()

    def record(self, **fields: Any) -> None:
        """Append one line of ``fields``, each text redacted and bounded, stamped with the time (UTC).

        Args:
            **fields: values of :data:`FIELDS`; others are ignored, and absent resolved fields left out.

        Raises:
            AuditWriteError: the line was not written (also logged).
        """
        line: dict[str, Any] = {"time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        for name in FIELDS:
            if name in FIELDS[:8] or fields.get(name) is not None:
                line[name] = _clean(fields.get(name))
        data = (json.dumps(line, separators=(",", ":")) + "\n").encode()
        with self._lock:
            self._append(data)

    def check_writable(self) -> None:
        """Open the log for appending, writing nothing. Raises AuditWriteError when it cannot be."""
        with self._lock:
            self._append(b"")

    def _append(self, data: bytes) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                if data and os.write(fd, data) != len(data):
                    raise OSError("short write")
            finally:
                os.close(fd)
        except OSError as exc:
            log.error("audit log %s not written: %s", self.path, exc)
            raise AuditWriteError(f"audit log not written: {type(exc).__name__}") from None

    def read(self) -> list[dict[str, Any]]:
        """Every record (for tests and tools).

        Returns:
            The lines parsed, oldest first; empty when there is no log yet.
        """
        try:
            return [json.loads(line) for line in self.path.read_text().splitlines() if line]
        except FileNotFoundError:
            return []
