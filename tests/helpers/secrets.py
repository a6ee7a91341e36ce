"""A credential store in memory, for tests of secret references."""

from __future__ import annotations


class DictStore:
    """An in-memory credential store."""

    def __init__(self, values: dict[str, str] | None = None) -> None:
        self.values = dict(values or {})

    def get(self, name: str) -> str | None:
        return self.values.get(name)
