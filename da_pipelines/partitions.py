"""Dynamic partitions of the item sets that opted in: added for new items, deleted for removed ones."""

from __future__ import annotations

from collections.abc import Sequence

from dagster import DagsterInstance
from sqlalchemy.exc import IntegrityError as SQLAlchemyIntegrityError


def sync_partitions(instance: DagsterInstance, name: str, present: Sequence[str], removed: Sequence[str]) -> None:
    """Make the partitions ``name`` hold ``present`` and none of ``removed`` (one query to read them).

    Args:
        instance: The Dagster instance holding the dynamic partitions.
        name: The partitions definition's name (``N__set``).
        present: Partition keys of the items the source holds.
        removed: Partition keys of the items gone from the source.
    """
    known = set(instance.get_dynamic_partitions(name))
    missing = [key for key in present if key not in known]
    if missing:
        _add_partitions(instance, name, missing)
    for key in removed:
        if key in known:
            instance.delete_dynamic_partition(name, key)


def _add_partitions(instance: DagsterInstance, name: str, keys: Sequence[str], attempts: int = 3) -> None:
    """Add dynamic partitions, tolerating a concurrent run adding some at the same moment.

    ``add_dynamic_partitions`` skips keys that exist, but two runs can both find
    a key missing and both insert it; the loser gets a unique-constraint error,
    which only means the partition now exists.
    """
    for attempt in range(attempts):
        try:
            instance.add_dynamic_partitions(name, list(keys))
            return
        except SQLAlchemyIntegrityError:
            known = set(instance.get_dynamic_partitions(name))
            keys = [key for key in keys if key not in known]
            if not keys or attempt == attempts - 1:
                return
