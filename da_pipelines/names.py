"""Names Dagster sees: source slugs and item partition keys.

Dagster names allow ``[A-Za-z0-9_]`` and partition keys refuse a few
substrings (``...``, control characters), while source ids and item names are
free-form. Both mappings here are deterministic; the partition-key mapping is
also reversible, so the original item name is always recoverable from a key
(and is kept in materialization metadata besides).

Example:
    >>> source_slug("ds-Azure.Prod")
    'ds_azure_prod'
    >>> item_from_partition_key(partition_key_for_item("a b/c...d.csv"))
    'a b/c...d.csv'
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from connectors.ids import dagster_name, is_valid_source_id

_NOT_NAME_CHAR = re.compile(r"[^a-z0-9_]")
# Characters kept verbatim in partition keys: readable in the UI, and none of
# them can form a substring Dagster refuses (dots are handled separately).
_KEY_SAFE = "/-_~@+=:() "


def source_slug(source_id: str) -> str:
    """``N``: the source id lower-cased, every character outside ``[a-z0-9_]`` replaced by ``_``.

    For an id that follows the rule (every configured source's) this is
    :func:`connectors.ids.dagster_name`, always a valid identifier.
    """
    if is_valid_source_id(source_id):
        return dagster_name(source_id)
    return _NOT_NAME_CHAR.sub("_", source_id.lower())


def partition_key_for_item(identifier: str) -> str:
    """A Dagster-safe partition key for item ``identifier`` (reversible, see below).

    Percent-encodes everything but letters, digits, ``.`` and a few readable
    characters; a ``.`` right after another ``.`` is encoded too, so ``...``
    (refused by Dagster) never appears.
    """
    encoded = quote(identifier, safe=_KEY_SAFE + ".")
    return encoded.replace("..", ".%2E").replace("%2E.", "%2E%2E")


def item_from_partition_key(key: str) -> str:
    """The item identifier a partition key was made from."""
    return unquote(key)
