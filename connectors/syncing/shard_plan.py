"""Which shard an item belongs to, and what a sharded sync did: no Dagster here.

A set declared with ``shards: N`` (``metadata.dagster.item_sets``) syncs as N
steps. Item ``i`` belongs to shard ``crc32(i) mod N``: a stable hash (unlike
Python's ``hash``, the same in every process, on every machine, in every
release), so an item stays in its shard from one sync to the next and each
shard's manifest holds the same items run after run. Each shard is synced as a
dataset of its own (:meth:`Dataset.shard_of_set`), with its own manifest; a
last step merges the shards' manifests into the set's.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

SHOWN = 20  # names kept per list in a shard's summary: events stay small whatever the item count


def shard_of(identifier: str, shards: int) -> int:
    """The shard of ``identifier`` among ``shards``: ``crc32`` of its UTF-8 bytes, modulo ``shards``.

    Args:
        identifier: An item of the set.
        shards: The set's number of shards.

    Returns:
        The shard, 0 to ``shards - 1``: stable across runs and processes.
    """
    return zlib.crc32(identifier.encode("utf-8", "surrogatepass")) % shards


def split_by_shard(identifiers: Iterable[str], shards: int) -> list[list[str]]:
    """``identifiers`` grouped by shard: element ``k`` holds those of shard ``k``.

    Args:
        identifiers: Items of the set.
        shards: The set's number of shards.

    Returns:
        ``shards`` lists, each in the order given.
    """
    groups: list[list[str]] = [[] for _ in range(shards)]
    for identifier in identifiers:
        groups[shard_of(identifier, shards)].append(identifier)
    return groups


def shard_summary(shard: int, listed: int, outcome: Any, skipped: Sequence[tuple[str, str]],
                  errors: int) -> dict[str, Any]:
    """What one shard's sync did: counts and the first names, a few hundred bytes.

    Args:
        shard: The shard.
        listed: Items the shard listed.
        outcome: Its ``DatasetOutcome``.
        skipped: ``(identifier, reason)`` of the items it did not land.
        errors: Items that failed.

    Returns:
        The summary, small enough to pass between steps.
    """
    return {
        "shard": shard, "listed": listed, "landed": outcome.landed_count, "bytes_landed": outcome.bytes_landed,
        "items": outcome.items, "checked": outcome.unchanged + outcome.landed_count,  # equal: all stat-checked
        "unchanged": outcome.unchanged, "repaired": len(outcome.repaired), "failed": len(outcome.failed),
        "failed_items": sorted(outcome.failed)[:SHOWN], "removed": len(outcome.removed),
        "removed_items": outcome.removed[:SHOWN], "skipped": len(skipped),
        "skipped_items": [list(pair) for pair in skipped[:SHOWN]], "errors": errors,
    }


def merge_summaries(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The shards' summaries added up (lists of names concatenated, then cut to :data:`SHOWN`).

    Args:
        summaries: Each shard's :func:`shard_summary`.

    Returns:
        One summary of the whole set.
    """
    merged: dict[str, Any] = {"shards": len(summaries)}
    for summary in summaries:
        for key, value in summary.items():
            if key == "shard":
                continue
            merged[key] = merged.get(key, [] if isinstance(value, list) else 0) + value
    for key, value in merged.items():
        if isinstance(value, list):
            merged[key] = sorted(value)[:SHOWN]
    return merged
