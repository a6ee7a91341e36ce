"""The asset model: which datasets a source has, and which items belong to each.

A *dataset* is one asset of the code location:

* blob and file sources: one per declared item set (``metadata.dagster.item_sets``,
  a prefix and/or a glob; by default one set ``files`` for the whole source),
  path ``[N, set]``;
* PostgreSQL sources: one per table, view and materialized view in scope
  (``metadata.dagster.tables``), path ``[N, schema, table]`` (each part made a
  Dagster name; the real name is in the asset's ``dagster/table_name``). The
  tables come from the source's listing *state* (``connectors.syncing.table_listing``); with no
  state at all, one stand-in dataset ``[N, "tables"]`` covers every table and
  says why in its description.

Plain data, no Dagster: the assets, the sync and the sensor all ask this module the
same question ("which sets does this item belong to"). A dataset's ``path`` is its
default asset key; :class:`da_pipelines.translator.DataSourceTranslator` makes the key.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from connectors.base import DataSourceConfig
from connectors.ids import source_slug
from connectors.pipeline_settings import ItemSetSpec, PipelineSettings, TableScope
from connectors.syncing.shard_plan import shard_of

_NOT_NAME = re.compile(r"[^A-Za-z0-9_]")
TABLE_TYPES = frozenset({"postgresql"})


@dataclass(frozen=True)
class Dataset:
    """One asset: an item set, one table, or the stand-in for every table."""

    path: tuple[str, ...]  # the default asset key: [N, set] or [N, schema, table]
    name: str  # set name, the table's identifier ("schema.table"), or "tables"
    kind: str  # "set" | "table" | "all_tables"
    prefix: str = ""
    glob: str | None = None
    partitioned: bool = False
    description: str = ""
    facts: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    shards: int = 1  # a set synced in this many steps (da_pipelines.sharded)
    shard: int | None = None  # one shard of such a set: only the items hashed to it

    def contains(self, identifier: str) -> bool:
        """Whether item ``identifier`` belongs to this dataset.

        Args:
            identifier: An item of the source.

        Returns:
            True when it is the dataset's table, or under its prefix and matching its glob (and, for a
            shard, in that shard).
        """
        if self.kind == "table":
            return identifier == self.name
        if self.kind == "all_tables":
            return True
        if not identifier.startswith(self.prefix):
            return False
        if self.glob is not None and not fnmatch.fnmatchcase(identifier, self.glob):
            return False
        return self.shard is None or shard_of(identifier, self.shards) == self.shard

    @property
    def holds_every_item(self) -> bool:
        """Whether :meth:`contains` is true of every item (a set without prefix, glob or shard; every table)."""
        if self.kind == "table":
            return False
        return self.kind == "all_tables" or (not self.prefix and self.glob is None and self.shard is None)

    @property
    def file_name(self) -> str:
        """A file-name-safe, unique name of the dataset (manifests live under it)."""
        name = "__".join(self.path[1:])
        return name if self.shard is None else f"{name}.shard-{self.shard}-of-{self.shards}"

    @property
    def label(self) -> str:
        """``N/set`` or ``N/schema/table``: the path as Dagster writes a key."""
        return "/".join(self.path)

    @property
    def sharded(self) -> bool:
        """A whole set synced in shards (``shards: N`` with N > 1)."""
        return self.shards > 1 and self.shard is None

    def shard_of_set(self, shard: int) -> Dataset:
        """Shard ``shard`` of this set, as a dataset of its own (its items, its manifest).

        Args:
            shard: The shard, 0 to ``shards - 1``.

        Returns:
            The shard's dataset.
        """
        return replace(self, shard=shard)


def name_part(text: str) -> str:
    """``text`` as a Dagster name part: characters outside ``[A-Za-z0-9_]`` become ``_``.

    Args:
        text: A set's, schema's or table's name.

    Returns:
        The name part.
    """
    name = _NOT_NAME.sub("_", text) or "_"
    return name if not name[0].isdigit() else f"_{name}"


def set_datasets(slug: str, specs: Sequence[ItemSetSpec]) -> list[Dataset]:
    """The item-set datasets of a blob or file source.

    Args:
        slug: The source's Dagster name.
        specs: The source's ``item_sets``.

    Returns:
        One dataset per set (a sharded set's shards are made from it).
    """
    return [
        Dataset(path=(slug, spec.name), name=spec.name, kind="set", prefix=spec.prefix, glob=spec.glob,
                partitioned=spec.partitioned, description=spec.description or _set_description(spec),
                shards=spec.shards)
        for spec in specs
    ]


def _set_description(spec: ItemSetSpec) -> str:
    scope = " and ".join(part for part in (
        f"under {spec.prefix!r}" if spec.prefix else "", f"matching {spec.glob!r}" if spec.glob else "") if part)
    return f"The items {scope or 'of the whole source'}, landed with lineage."


def in_scope(identifier: str, scope: TableScope) -> bool:
    """Whether table ``schema.table`` is in ``scope`` (fnmatch, quotes ignored).

    Args:
        identifier: A table's ``schema.table``.
        scope: The source's ``tables`` include and exclude patterns.

    Returns:
        True when an include pattern matches and no exclude pattern does.
    """
    plain = identifier.replace('"', "")
    return any(fnmatch.fnmatchcase(plain, g) for g in scope.include) and not any(
        fnmatch.fnmatchcase(plain, g) for g in scope.exclude)


def table_datasets(slug: str, tables: Iterable[dict[str, Any]]) -> list[Dataset]:
    """One dataset per listed table, keyed ``[N, schema, table]``; names that collide get a digest suffix.

    Args:
        slug: The source's Dagster name.
        tables: The listing state's table entries.

    Returns:
        The tables' datasets, in listing order.
    """
    datasets: list[Dataset] = []
    used: set[tuple[str, ...]] = set()
    for table in sorted(tables, key=lambda t: str(t["identifier"])):
        identifier = str(table["identifier"])
        path = (slug, name_part(str(table.get("schema") or "public")),
                name_part(str(table.get("table") or identifier)))
        if path in used:
            digest = hashlib.sha256(identifier.encode()).hexdigest()[:8]
            path = (*path[:-1], f"{path[-1]}_{digest}")
        used.add(path)
        kind = str(table.get("kind") or "table")
        datasets.append(Dataset(path=path, name=identifier, kind="table", facts=dict(table),
                                description=f"The {kind} {identifier}, landed as a file with lineage."))
    return datasets


def all_tables_dataset(slug: str, why: str) -> Dataset:
    """The stand-in when no table listing is known: one asset for every table, saying why.

    Args:
        slug: The source's Dagster name.
        why: Why there is no listing (shown in the asset's description).

    Returns:
        The one dataset of every table.
    """
    return Dataset(path=(slug, "tables"), name="tables", kind="all_tables",
                   description=f"Every table of the source, as one asset: {why}")


def source_datasets(source: DataSourceConfig, settings: PipelineSettings,
                    tables: Sequence[dict[str, Any]] | None, why_no_tables: str = "") -> list[Dataset]:
    """The datasets of ``source``.

    Args:
        source: The source's entry.
        settings: Its ``metadata.dagster`` (item sets, table scope).
        tables: The listing state of a table source; None when unknown.
        why_no_tables: Why the listing is unknown (shown on the stand-in asset).

    Returns:
        Its item sets, or one dataset per table (the stand-in of every table when the listing is unknown).
    """
    slug = source_slug(source.id)
    if source.type_name not in TABLE_TYPES:
        return set_datasets(slug, settings.item_sets)
    if tables is None:
        return [all_tables_dataset(slug, why_no_tables or "the source's tables are not known yet.")]
    return table_datasets(slug, [t for t in tables if in_scope(str(t["identifier"]), settings.tables)])


def datasets_of(identifier: str, datasets: Sequence[Dataset]) -> list[Dataset]:
    """The datasets item ``identifier`` belongs to (sets may overlap).

    Args:
        identifier: An item of the source.
        datasets: The source's datasets.

    Returns:
        Those that contain it, in their order.
    """
    return [dataset for dataset in datasets if dataset.contains(identifier)]
