"""The credential store behind ``{"secret": NAME}`` references.

Placeholder until the store lands (issue 5): it holds nothing, so every
``{"secret": ...}`` reference fails closed with a clear error.
"""

from __future__ import annotations


class _EmptyStore:
    def get(self, name: str) -> str | None:
        return None


def default_store() -> _EmptyStore:
    """The store used when none was installed."""
    return _EmptyStore()
