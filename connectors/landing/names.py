"""Remote names to workspace paths: one rule, deterministic, never escaping.

:func:`safe_relative_path` is the identity on the names it accepts and refuses
the rest with :class:`UnsafeNameError`, so it never escapes and never maps two
names to one path. Refused: empty names, absolute paths, drive letters,
backslashes, NUL and control characters, empty, ``.`` and ``..`` segments,
trailing dots or spaces, components over 255 bytes, names ending in ``/``
(folders), and the reserved ``.lineage/`` tree and ``.~da-`` temporaries.
Case- or normalization-insensitive file systems can still fold two names into
one file; the landing notices it (the lineage record of the existing file
names another item) and raises :class:`NameCollisionError`.
"""

from __future__ import annotations

import os
from pathlib import Path

from connectors.errors import UnsafeNameError

TEMP_PREFIX = ".~da-"
TEMP_SUFFIX = ".part"
MAX_COMPONENT_BYTES = 255
LINEAGE_DIR = ".lineage"


def safe_relative_path(name: str) -> str:
    """The workspace-relative POSIX path for remote ``name``.

    Raises:
        UnsafeNameError: the name cannot be landed safely; the message says why.
    """
    reason = _unsafe_reason(name)
    if reason:
        raise UnsafeNameError(f"unsafe name {_shown(name)}: {reason}")
    return name


def _unsafe_reason(name: object) -> str | None:
    if not isinstance(name, str) or not name:
        return "empty or not a string"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "contains a NUL or control character"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        return "is an absolute path"
    if name.endswith("/"):
        return "names a folder, not a file"
    parts = name.split("/")
    for part in parts:
        reason = _unsafe_component(part)
        if reason:
            return reason
    if parts[0] == LINEAGE_DIR:
        return f"{LINEAGE_DIR}/ is reserved for provenance records"
    if parts[-1].startswith(TEMP_PREFIX):
        return f"names starting with {TEMP_PREFIX} are reserved for temporary files"
    return None


def _unsafe_component(part: str) -> str | None:
    if part in ("", ".", ".."):
        return "has an empty, '.' or '..' segment"
    if part[-1] in ". ":
        return "has a segment ending in a dot or a space"
    try:
        size = len(part.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid Unicode"
    if size > MAX_COMPONENT_BYTES:
        return f"has a segment over {MAX_COMPONENT_BYTES} bytes"
    return None


def _shown(name: object) -> str:
    text = repr(name)
    return text if len(text) <= 120 else text[:117] + "..."


def target_path(workspace: str | os.PathLike[str], name: str) -> Path:
    """Absolute path where remote ``name`` lands under ``workspace``."""
    return Path(workspace).absolute() / safe_relative_path(name)
