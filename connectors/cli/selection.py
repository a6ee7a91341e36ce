"""Folders and globs given to ``da-sources fetch``: which items they select.

``raw/2024/`` (a trailing ``/``) selects every item under that folder, at any
depth. A glob (``*``, ``?``, ``[...]``) selects the items whose path matches it
segment by segment: ``*`` stays within one ``/``-separated segment, a ``**``
segment matches any number of segments (``raw/**/*.csv``). The source is listed
once per folder or glob, from the longest folder without a wildcard. An item named
exactly like the glob (``data[1].csv``) is taken as that item, unless ``--glob``.

Example:
    >>> matches("raw/*/a.csv", "raw/2024/a.csv"), matches("raw/*.csv", "raw/2024/a.csv")
    (True, False)
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from connectors.base import DataSourceConnector
from connectors.errors import NotFoundError
from connectors.ids import shown

_WILDCARDS = frozenset("*?[")


def is_selection(identifier: str) -> bool:
    """Whether ``identifier`` is a folder (trailing ``/``) or a glob rather than one item.

    Args:
        identifier: A word given to ``fetch``.

    Returns:
        True when it selects items by folder or glob (and must be expanded by a listing).
    """
    return identifier.endswith("/") or any(c in _WILDCARDS for c in identifier)


async def expand_selection(connector: DataSourceConnector, selection: str, *, glob: bool = False) -> list[str]:
    """The identifiers of the items ``selection`` names, in listing order.

    An item whose name is exactly ``selection`` (``reports/data[1].csv``) is that item alone,
    not a glob, unless ``glob`` (``fetch --glob``) says to match it as one.

    Args:
        connector: The source to list (once, from the longest folder without a wildcard).
        selection: A folder (``raw/2024/``) or a glob (``raw/**/*.csv``).
        glob: Match ``selection`` as a glob even where an item has exactly that name.

    Returns:
        The matching items' identifiers; never empty.

    Raises:
        NotFoundError: nothing matches (a folder that does not exist, a glob matching nothing).
    """
    folder = _fixed_folder(selection)
    items = await connector.list_items(folder or None)
    if not any(c in _WILDCARDS for c in selection):  # a folder: a plain prefix, whatever its characters
        prefix = selection.lstrip("/")
        found = [item.path for item in items if item.path.startswith(prefix)]
    elif not glob and any(item.path == selection for item in items):
        found = [selection]  # an exact name wins over the glob it looks like
    else:
        pattern = selection + "**" if selection.endswith("/") else selection
        found = [item.path for item in items if matches(pattern, item.path)]
    if not found:
        raise NotFoundError(f"nothing matches {shown(selection, 80)}", source_id=connector.source_id)
    return found


def _fixed_folder(selection: str) -> str:
    """The leading folders of ``selection`` that hold no wildcard (``raw/2024`` of ``raw/2024/*.csv``)."""
    parts = selection.strip("/").split("/")
    if not selection.endswith("/") or any(c in _WILDCARDS for c in selection):
        parts = parts[:-1]  # the last segment names items, not a folder to list
    fixed: list[str] = []
    for part in parts:
        if any(c in _WILDCARDS for c in part):
            break
        fixed.append(part)
    return "/".join(fixed)


def matches(pattern: str, path: str) -> bool:
    """Whether ``path`` matches ``pattern``, segment by segment (``**``: any number of segments).

    Args:
        pattern: A glob over ``/``-separated segments; ``*`` stays within one segment.
        path: An item's identifier.

    Returns:
        True when every segment matches.
    """
    return _match(pattern.strip("/").split("/"), path.split("/"))


def _match(pattern: list[str], path: list[str]) -> bool:
    if not pattern:
        return not path
    if pattern[0] == "**":
        return any(_match(pattern[1:], path[i:]) for i in range(len(path) + 1))
    return bool(path) and fnmatchcase(path[0], pattern[0]) and _match(pattern[1:], path[1:])
