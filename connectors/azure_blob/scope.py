"""What an Azure Blob source serves: the blobs under ``prefix`` whose names match ``pattern``.

One rule for identifiers: **every identifier is a full blob name**, exactly as
``list_items`` prints it in ``DataItem.path`` (``raw/2025/a.csv`` with
``prefix: raw/``), and a ``list_items(path)`` folder is a full blob-name
folder too (``raw/2025/``). ``prefix`` is a virtual folder: ``raw`` and
``raw/`` both mean the blobs whose names start with ``raw/``, never ``raw2/...``.
``pattern`` is an fnmatch glob on the full name (``*`` also matches ``/``).

Every operation checks the scope before it sends anything: a name outside it
is an :class:`~connectors.errors.OutOfScopeError` (a not-found error) whose
message is the same whether or not such a blob exists.

Example:
    >>> scope = BlobScope("raw", "*.csv")
    >>> scope.listing_prefix("raw/2025")
    'raw/2025/'
    >>> scope.check("raw2/a.csv", "fetching blob")
    Traceback (most recent call last):
    connectors.errors.OutOfScopeError: fetching blob 'raw2/a.csv': not in this source (it serves only ...
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from connectors.errors import OutOfScopeError, UnsafeNameError

MAX_BLOB_NAME = 1024  # characters: the service's limit, so a longer name cannot exist


@dataclass(frozen=True)
class BlobScope:
    """The configured ``prefix`` (a virtual folder, '' for the whole container) and ``pattern``."""

    prefix: str
    pattern: str | None
    source_id: str | None = None

    @property
    def folder(self) -> str:
        """The prefix as a folder: '' or ending in '/'."""
        return _as_folder(self.prefix)

    def matches(self, name: str) -> bool:
        """Whether blob ``name`` is one this source serves.

        Args:
            name: A blob name, as listed.

        Returns:
            True when it is under ``prefix`` and matches ``pattern``.
        """
        return self._refusal(name) is None

    def check(self, name: str, what: str) -> str:
        """``name`` if this source serves it; no request is sent either way.

        Args:
            name: A blob name (hostile input).
            what: What is being done, for the message.

        Returns:
            ``name`` unchanged.

        Raises:
            OutOfScopeError: The name is outside ``prefix`` / ``pattern``.
        """
        reason = self._refusal(name)
        if reason is not None:
            raise OutOfScopeError(f"{what} {name!r}: not in this source ({reason})", source_id=self.source_id)
        return name

    def _refusal(self, name: str) -> str | None:
        # each reason follows from the name and the settings alone: it says nothing of what exists
        if not 0 < len(name) <= MAX_BLOB_NAME:
            return "a blob name has 1 to 1,024 characters"
        if not name.startswith(self.folder):
            return f"it serves only blobs under {self.folder!r}; identifiers are full blob names, as ls prints them"
        if self.pattern is not None and not fnmatch.fnmatchcase(name, self.pattern):
            return f"it serves only blobs matching {self.pattern!r}"
        return None

    def check_readable(self, name: str, what: str) -> str:
        """:meth:`check`, and refuse '.' and '..' segments.

        A client, proxy or server may fold them into another blob's name, one that can lie outside
        the scope.

        Args:
            name: A blob name (hostile input).
            what: What is being done, for the message.

        Returns:
            ``name`` unchanged.

        Raises:
            OutOfScopeError: The name is outside the scope.
            UnsafeNameError: The name has a '.' or '..' segment.
        """
        self.check(name, what)
        if any(part in (".", "..") for part in name.split("/")):
            raise UnsafeNameError(f"{what} {name!r}: a '.' or '..' segment could name another blob; refused",
                                  source_id=self.source_id)
        return name

    def listing_prefix(self, path: str | None) -> str:
        """The List Blobs prefix for folder ``path`` (a full blob-name folder, as ``ls`` prints names).

        A folder above the prefix lists the whole scope; one beside it is out of scope.

        Args:
            path: The folder to list; None or '' for the whole scope.

        Returns:
            The prefix to send, ending in '/' ('' for a whole container).

        Raises:
            OutOfScopeError: The folder is beside the scope, or longer than a blob name can be.
        """
        if not path:
            return self.folder
        folder = _as_folder(path)
        if len(folder) > MAX_BLOB_NAME:
            raise OutOfScopeError(f"folder {path!r}: not in this source (a blob name has 1 to 1,024 characters)",
                                  source_id=self.source_id)
        if folder.startswith(self.folder):
            return folder
        if self.folder.startswith(folder):
            return self.folder
        raise OutOfScopeError(
            f"folder {path!r}: not in this source (it serves only blobs under {self.folder!r}; "
            "folders are full blob names, as ls prints them)", source_id=self.source_id)


def _as_folder(prefix: str) -> str:
    """``prefix`` ending in '/' ('' stays '')."""
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"
