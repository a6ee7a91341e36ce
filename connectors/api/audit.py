"""The audit log: one JSON line per call that changes something or moves data, and per refusal.

Each line: ``time`` (ISO-8601 UTC), ``request_id``, ``key_id``, ``method``,
``route`` (the route's template, not the URL: a query string may hold
anything), ``source_id``, ``status``, ``outcome`` (``ok``, ``refused``,
``failed``) and, for fetches, the ``job_id``. Only those fields are ever
written, each redacted again: no request body, no header, no secret.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.secrets.references import get_logger, redact

log = get_logger(__name__)
MAX_FIELD = 256  # a path parameter of a refused call is the caller's text: kept short
FIELDS = ("request_id", "key_id", "method", "route", "source_id", "status", "outcome", "job_id")


class AuditLog:
    """Appends records to a JSON-lines file (one ``write`` per line, so lines never interleave)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()
        self._lock = threading.Lock()

    def record(self, **fields: Any) -> None:
        line: dict[str, Any] = {"time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        for name in FIELDS:
            value = fields.get(name)
            line[name] = redact(value[:MAX_FIELD]) if isinstance(value, str) else value
        data = (json.dumps(line, separators=(",", ":")) + "\n").encode()
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)
        except OSError as exc:  # the call already happened; say so loudly, but do not fail it
            log.error("audit log %s not written: %s", self.path, exc)

    def read(self) -> list[dict[str, Any]]:
        """Every record (for tests and tools)."""
        try:
            return [json.loads(line) for line in self.path.read_text().splitlines() if line]
        except FileNotFoundError:
            return []
