"""Remote names to workspace paths: one rule, deterministic, never escaping.

:func:`safe_relative_path` is the identity on the names it accepts and refuses
the rest with :class:`UnsafeNameError`, so it never escapes and never maps two
names to one path. Refused: empty names, absolute paths, drive letters,
backslashes, NUL and control characters (C0 and C1, U+0085 included), line and
paragraph separators (U+2028, U+2029: they would forge lines in a prompt manifest
or a log), unpaired surrogates, empty, ``.`` and ``..`` segments,
trailing dots or spaces, folder components over 255 bytes and file names over
250 (the record ``<name>.json`` must fit in 255), names ending in ``/``
(folders), ``.lineage`` at any level (records live there, and a source whose
files nest another's must not carry forged records), ``.locks`` as the first
segment (the record tree's lock folder), and ``.~da-`` temporaries.
Case- or normalization-insensitive file systems can still fold two names into
one file; the landing notices it (the lineage record of the existing file
names another item) and raises :class:`NameCollisionError`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from connectors.errors import UnsafeNameError

TEMP_PREFIX = ".~da-"
TEMP_SUFFIX = ".part"
MAX_COMPONENT_BYTES = 255
RECORD_SUFFIX = ".json"
MAX_FILE_NAME_BYTES = MAX_COMPONENT_BYTES - len(RECORD_SUFFIX)  # its record is <name>.json
LINEAGE_DIR = ".lineage"
LOCK_DIR = ".locks"  # <workspace>/.lineage/.locks: the per-target lock files


def safe_relative_path(name: str) -> str:
    """The workspace-relative POSIX path for remote ``name``.

    Args:
        name: The item's name at the source (hostile input).

    Returns:
        ``name`` itself, once it is known to stay inside the workspace and be landable.

    Raises:
        UnsafeNameError: the name cannot be landed safely; the message says why.
    """
    if isinstance(name, str) and _PLAIN.fullmatch(name):  # the usual name, in one match (a sync checks every name)
        return name
    reason = _unsafe_reason(name)
    if reason:
        raise UnsafeNameError(f"unsafe name {_shown(name)}: {reason}")
    return name


# Names every rule below accepts, matched at once: ASCII letters, digits, '_', '-' and '.', segments that
# neither start nor end with a dot (so no '.', '..', .lineage, .locks or .~da- segment), at most 255
# characters a folder and 250 the file name (one byte each). Any other name goes through every rule.
_SEGMENT = rf"[A-Za-z0-9_-](?:[A-Za-z0-9_.-]{{0,{MAX_COMPONENT_BYTES - 2}}}[A-Za-z0-9_-])?"
_FILE_NAME = rf"[A-Za-z0-9_-](?:[A-Za-z0-9_.-]{{0,{MAX_FILE_NAME_BYTES - 2}}}[A-Za-z0-9_-])?"
_PLAIN = re.compile(rf"(?:{_SEGMENT}/)*{_FILE_NAME}")


def is_plain_name(name: str) -> bool:
    """Whether ``name`` is of the usual, plain kind every rule accepts (one match; False says nothing more).

    ASCII letters, digits, ``_``, ``-`` and ``.``, in segments that neither start nor end with a
    dot (so never ``.``, ``..``, the records' or locks' folder, nor a temporary), within the length limits.

    Args:
        name: The item's name at the source (hostile input).

    Returns:
        True when it is plain (then :func:`safe_relative_path` returns it as it is).
    """
    return _PLAIN.fullmatch(name) is not None


def is_safe_name(name: str) -> bool:
    """Whether :func:`safe_relative_path` accepts ``name`` (without building an error for a refused one).

    Args:
        name: The item's name at the source (hostile input).

    Returns:
        True when it lands at itself.
    """
    return bool(_PLAIN.fullmatch(name)) or _unsafe_reason(name) is None


def _unsafe_reason(name: object) -> str | None:
    if not isinstance(name, str) or not name:
        return "empty or not a string"
    reason = unsafe_text_reason(name)
    if reason:
        return reason
    if name.startswith("/") or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        return "is an absolute path"
    if name.endswith("/"):
        return "names a folder, not a file"
    parts = name.split("/")
    for part in parts:
        reason = _unsafe_component(part)
        if reason:
            return reason
    if LINEAGE_DIR in parts:
        return f"{LINEAGE_DIR} folders are reserved for provenance records, at every level"
    if parts[0] == LOCK_DIR:
        return f"a top-level {LOCK_DIR} folder would mix with the lock files of the records"
    if parts[-1].startswith(TEMP_PREFIX):
        return f"names starting with {TEMP_PREFIX} are reserved for temporary files"
    if len(parts[-1].encode("utf-8")) > MAX_FILE_NAME_BYTES:
        return f"has a file name over {MAX_FILE_NAME_BYTES} bytes (its record, <name>{RECORD_SUFFIX}, must fit in 255)"
    return None


# Cc: C0 and C1 controls (NUL, CR, LF, U+0085...); Zl/Zp: U+2028, U+2029; Cs: lone surrogates
_REFUSED_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})
# the code points of those categories (Unicode keeps Cc, Zl, Zp and Cs fixed; a test checks every code point):
# one regular-expression search per name instead of a category lookup per character (a sync checks every name)
_REFUSED_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def unsafe_text_reason(name: str) -> str | None:
    """Why ``name`` may not be a name anywhere (a file, a blob, a prefix), or None.

    NUL, control characters, line and paragraph separators and backslashes are
    refused on every path: they forge lines in manifests and logs, break listings,
    or read as folder separators elsewhere (``data/..\\x``).

    Args:
        name: Any name a user or a source gives (hostile input).

    Returns:
        The reason, for a message, or None when the text is acceptable.
    """
    found = _REFUSED_CHARS.search(name)
    if found:
        return f"contains a NUL or control character or a line/paragraph separator (U+{ord(found.group()):04X})"
    if "\\" in name:
        return "contains a backslash"
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


def shown_path(path: str | os.PathLike[str], limit: int = 160) -> str:
    """``path`` for a message: quoted, control characters and undecodable bytes escaped, at most ``limit``.

    A long path keeps its start (the workspace) and its end (the name).

    Args:
        path: The path to show (hostile input: never printed raw).
        limit: The most characters shown.

    Returns:
        The quoted, escaped, shortened path.
    """
    text = repr(os.fspath(path))
    if len(text) <= limit:
        return text
    head = limit // 3
    return f"{text[:head]}...{text[-(limit - head - 3):]}"


def target_path(workspace: str | os.PathLike[str], name: str) -> Path:
    """Absolute path where remote ``name`` lands under ``workspace``.

    Args:
        workspace: The folder items land in.
        name: The item's name at the source (hostile input).

    Returns:
        The path the file lands at (nothing is created).

    Raises:
        UnsafeNameError: ``name`` cannot be landed safely.
    """
    return Path(workspace).absolute() / safe_relative_path(name)
