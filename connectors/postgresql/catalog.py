"""Table identifiers, landed names, and what the PostgreSQL catalog says about relations.

Why it works this way: ``docs/design/postgresql.md``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from connectors.errors import NotFoundError, UnsafeNameError
from connectors.landing.names import safe_relative_path
from connectors.postgresql.columns import PgColumnType

# The package's public surface is its connector; these are the names other packages and the docs use.
__all__ = ["format_identifier", "landed_name", "parse_identifier", "parse_name_parts", "relation_version"]

KIND_NAMES = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view"}
_PART = re.compile(r'"((?:[^"]|"")+)"|([^."]+)')
_PLAIN = re.compile(r"[a-z_][a-z0-9_$]*")
_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_REFUSED_CHARACTERS = ("/", "\\")


def parse_name_parts(text: str) -> list[str]:
    """The dot-separated parts of a SQL name, unquoted; bare parts folded to lower case.

    Args:
        text: A name as a user writes it (hostile input), e.g. ``public."Orders 2024"``.

    Returns:
        Its parts in order, as PostgreSQL spells them in the catalog.

    Raises:
        UnsafeNameError: The text holds a control character, ``/`` or ``\\``.
        NotFoundError: The text is not a well-formed name.
    """
    if not isinstance(text, str) or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise UnsafeNameError(f"unsafe name {text!r}: contains a NUL or control character")
    if any(c in text for c in _REFUSED_CHARACTERS):
        raise UnsafeNameError(f"unsafe name {text!r}: '/' and '\\' cannot be part of a landed file name")
    parts, position = [], 0
    while True:
        match = _PART.match(text, position)
        if match is None:
            raise NotFoundError(f"{text!r} is not a well-formed name (expected schema.table)")
        quoted, bare = match.groups()
        parts.append(quoted.replace('""', '"') if quoted is not None else bare.translate(_FOLD))
        position = match.end()
        if position == len(text):
            return parts
        if text[position] != ".":
            raise NotFoundError(f"{text!r} is not a well-formed name (expected schema.table)")
        position += 1


def parse_identifier(identifier: str) -> tuple[str, str]:
    """``(schema, table)`` of ``schema.table``; quoted parts may hold dots, quotes, spaces.

    Args:
        identifier: An item's ``path`` as listed, or as a user typed it.

    Returns:
        The schema and table names as the catalog spells them.

    Raises:
        NotFoundError: It is not two parts, or not a well-formed name.
        UnsafeNameError: It holds a control character, ``/`` or ``\\``.
    """
    parts = parse_name_parts(identifier)
    if len(parts) != 2:
        raise NotFoundError(f"{identifier!r} is not a table identifier (expected schema.table)")
    return parts[0], parts[1]


def quote_part(name: str) -> str:
    """``name`` as one identifier part: bare when plain lower-case ASCII, else double-quoted."""
    return name if _PLAIN.fullmatch(name) else '"' + name.replace('"', '""') + '"'


def format_identifier(schema: str, table: str) -> str:
    """The canonical ``schema.table`` that :func:`parse_identifier` turns back into the same names.

    Args:
        schema: The schema name as the catalog spells it.
        table: The table name as the catalog spells it.

    Returns:
        Each part bare when plain lower-case ASCII, else double-quoted.
    """
    return f"{quote_part(schema)}.{quote_part(table)}"


def landed_name(schema: str, table: str, extension: str) -> str:
    """The landed file's name, ``<schema>.<table>.<extension>``, checked before any query.

    Args:
        schema: The schema name as the catalog spells it.
        table: The table name as the catalog spells it.
        extension: ``csv`` or ``parquet``.

    Returns:
        A relative path that stays inside the workspace.
    """
    return safe_relative_path(f"{schema}.{table}.{extension}")


# --- catalog queries --------------------------------------------------------

_RELATIONS = """
SELECT n.nspname, c.relname, c.relkind, c.oid::int8, c.reltuples::float8,
       obj_description(c.oid, 'pg_class'), st.size, st.stamp,
       CASE WHEN c.relkind = 'v' THEN md5(pg_get_viewdef(c.oid)) END,
       pk.columns, vw.stamp, COALESCE(vw.volatile, false),
       (extract(epoch from clock_timestamp()) * 1000000)::int8
FROM (  -- the relations asked for first: the laterals below must not run for the whole catalog
    SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm') AND {condition}
    OFFSET 0
) picked
JOIN pg_class c ON c.oid = picked.oid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN LATERAL (
    SELECT COALESCE(sum(pg_total_relation_size(p.relid)), 0)::int8 AS size,
           string_agg(concat_ws(':', p.relid, f.relfilenode, s.n_tup_ins, s.n_tup_upd, s.n_tup_del),
                      ',' ORDER BY p.relid) AS stamp
    FROM (SELECT c.oid AS relid WHERE c.relkind IN ('r', 'm')
          UNION ALL
          SELECT t.relid FROM pg_partition_tree(c.oid) t WHERE c.relkind = 'p' AND t.isleaf) p
    JOIN pg_class f ON f.oid = p.relid
    LEFT JOIN pg_stat_all_tables s ON s.relid = p.relid
) st ON true
LEFT JOIN LATERAL (
    SELECT array_agg(a.attname::text ORDER BY k.ord) AS columns
    FROM pg_index i
    CROSS JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
    WHERE i.indrelid = c.oid AND i.indisprimary
) pk ON true
LEFT JOIN LATERAL (
    -- every relation a view reads, through nested views, inheritance children and partitions
    WITH RECURSIVE dep(relid) AS (
        SELECT c.oid WHERE c.relkind = 'v'
        UNION
        SELECT x.relid FROM dep d JOIN pg_class dc ON dc.oid = d.relid
        CROSS JOIN LATERAL (
            SELECT m[1]::oid AS relid
            FROM pg_rewrite r, regexp_matches(r.ev_action::text, ':relid (\\d+)', 'g') AS m
            WHERE dc.relkind = 'v' AND r.ev_class = dc.oid AND r.ev_type = '1'
            UNION ALL
            SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = dc.oid
        ) x
    )
    SELECT string_agg(concat_ws(':', d.relid, f.relkind, f.relfilenode, s.n_tup_ins, s.n_tup_upd, s.n_tup_del,
                                (SELECT md5(r.ev_action::text) FROM pg_rewrite r
                                 WHERE f.relkind = 'v' AND r.ev_class = f.oid AND r.ev_type = '1')),
                      ',' ORDER BY d.relid) AS stamp,
           bool_or(f.oid IS NULL OR f.relkind NOT IN ('r', 'p', 'v', 'm')
                   OR (f.relkind IN ('r', 'm') AND s.relid IS NULL)
                   OR (f.relkind = 'v' AND EXISTS (
                       SELECT FROM pg_rewrite r
                       CROSS JOIN LATERAL regexp_matches(
                           r.ev_action::text, ':(funcid|opfuncid|aggfnoid|winfnoid|opno) (\\d+)', 'g') AS m
                       LEFT JOIN pg_operator o ON m[1] = 'opno' AND o.oid = m[2]::oid
                       LEFT JOIN pg_proc p ON p.oid = CASE WHEN m[1] = 'opno' THEN o.oprcode::oid ELSE m[2]::oid END
                       WHERE r.ev_class = f.oid AND r.ev_type = '1' AND m[2] <> '0'
                         AND (p.oid IS NULL OR p.provolatile <> 'i')))
                   OR (f.relkind = 'v' AND EXISTS (
                       SELECT FROM pg_rewrite r WHERE r.ev_class = f.oid AND r.ev_type = '1'
                         AND r.ev_action::text ~ '[{](SQLVALUEFUNCTION|NEXTVALUEEXPR|CURRENTOFEXPR)'))) AS volatile
    FROM dep d
    LEFT JOIN pg_class f ON f.oid = d.relid
    LEFT JOIN pg_stat_all_tables s ON s.relid = d.relid
) vw ON c.relkind = 'v'
ORDER BY n.nspname, c.relname
"""
# parameters: the schemas, and whether partitions of a partitioned table are listed apart from their parent
RELATIONS_IN_SCHEMAS = sql.SQL(_RELATIONS.replace(  # noqa: S608
    "{condition}", "n.nspname = ANY(%s) AND (%s OR NOT c.relispartition)"))
ONE_RELATION = sql.SQL(_RELATIONS.replace("{condition}", "n.nspname = %s AND c.relname = %s"))  # noqa: S608

_TYPE_COLUMNS = """
       b.typname::text, b.typtype::text, e.typname::text,
       CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE {mod} END
"""
_TYPE_JOINS = """
JOIN pg_type t ON t.oid = {typid}
JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_type e ON e.oid = b.typelem AND b.typcategory = 'A'
"""
COLUMNS_OF_RELATIONS = sql.SQL(
    "SELECT a.attrelid::int8, a.attname::text, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,"  # noqa: S608
    + _TYPE_COLUMNS.format(mod="a.atttypmod")
    + " FROM pg_attribute a"
    + _TYPE_JOINS.format(typid="a.atttypid")
    + " WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attrelid, a.attnum"
)
TYPES_OF_RESULT = sql.SQL(
    "SELECT 0::int8, x.name, format_type(x.typid, x.mod), true,"  # noqa: S608
    + _TYPE_COLUMNS.format(mod="x.mod")
    + " FROM unnest(%s::text[], %s::oid[], %s::int4[]) WITH ORDINALITY AS x(name, typid, mod, ord)"
    + _TYPE_JOINS.format(typid="x.typid")
    + " ORDER BY x.ord"
)
SCHEMAS_PRESENT = sql.SQL("SELECT nspname::text FROM pg_namespace WHERE nspname = ANY(%s)")


@dataclass
class Column:
    """A column as listed: name, PostgreSQL type, nullability, and its resolved type."""

    name: str
    type: str
    nullable: bool
    resolved: PgColumnType

    def described(self) -> dict[str, Any]:
        """The column as the item metadata lists it: name, type, nullable."""
        return {"name": self.name, "type": self.type, "nullable": self.nullable}


def column_from_row(row: tuple[Any, ...]) -> Column:
    """A :class:`Column` from a row of ``COLUMNS_OF_RELATIONS`` or ``TYPES_OF_RESULT``."""
    _, name, display, nullable, base, kind, element, typmod = row
    return Column(name, display, bool(nullable), PgColumnType(name, display, base, kind, element, int(typmod)))


@dataclass
class Relation:
    """A table, view or materialized view, with the facts the listing and the lineage need."""

    schema: str
    name: str
    kind: str
    oid: int
    estimated_rows: int
    comment: str | None
    size: int
    stamp: str | None
    view_hash: str | None
    primary_key: list[str]
    view_stamp: str | None = None
    volatile: bool = False
    listed_at_us: int = 0
    columns: list[Column] = field(default_factory=list)

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Relation:
        """A relation from a row of ``RELATIONS_IN_SCHEMAS`` or ``ONE_RELATION``."""
        schema, name, kind, oid, tuples, comment, size, stamp, view_hash, primary_key, *view = row
        view_stamp, volatile, listed_at_us = view
        return cls(schema, name, kind, oid, max(int(tuples), -1), comment, int(size or 0), stamp, view_hash,
                   list(primary_key or []), view_stamp, bool(volatile), int(listed_at_us))

    @property
    def identifier(self) -> str:
        return format_identifier(self.schema, self.name)

    @property
    def version(self) -> str:
        return relation_version(self)

    def metadata(self) -> dict[str, Any]:
        """The item metadata: kind, estimated rows, columns, primary key, comment, version.

        Returns:
            The keys :meth:`PostgreSQLConnector.get_metadata` starts from; ``estimated_rows`` is -1
            for a relation never analyzed.
        """
        return {
            "schema": self.schema,
            "table": self.name,
            "kind": KIND_NAMES.get(self.kind, self.kind),
            "size": self.size,
            "estimated_rows": self.estimated_rows,  # -1: never analyzed
            "columns": [column.described() for column in self.columns],
            "primary_key": self.primary_key,
            "comment": self.comment,
            "version": self.version,
        }


def relation_version(relation: Relation) -> str:
    """The change signal of a relation (``docs/design/postgresql.md``, "version").

    Args:
        relation: A relation with its columns.

    Returns:
        A digest of the storage stamp (tables) or the definition and what it reads (views) and the
        columns; a volatile view's version changes at every listing.
    """
    if relation.kind == "v" and relation.volatile:
        return f"view-volatile-{relation.listed_at_us}"
    shape = ";".join(f"{c.name}:{c.type}" for c in relation.columns)
    content = f"{relation.view_hash}|{relation.view_stamp}" if relation.kind == "v" else relation.stamp
    digest = hashlib.sha256(f"{relation.kind}|{content}|{shape}".encode()).hexdigest()[:32]
    return ("view-" if relation.kind == "v" else "") + digest


def relation_ident(relation: Relation) -> sql.Identifier:
    """``schema.table`` as a quoted SQL identifier."""
    return sql.Identifier(relation.schema, relation.name)


async def relations(conn: psycopg.AsyncConnection[Any], query: sql.SQL, params: list[Any]) -> list[Relation]:
    """The relations ``query`` (``RELATIONS_IN_SCHEMAS`` or ``ONE_RELATION``) finds, with their columns."""
    cursor = await conn.execute(query, params)
    relations = [Relation.from_row(row) for row in await cursor.fetchall()]
    if relations:
        by_oid = {relation.oid: relation for relation in relations}
        cursor = await conn.execute(COLUMNS_OF_RELATIONS, [list(by_oid)])
        for row in await cursor.fetchall():
            by_oid[row[0]].columns.append(column_from_row(row))
    return relations


async def range_copy_statements(
    conn: psycopg.AsyncConnection[Any], relation: Relation, streams: int
) -> list[sql.Composable]:
    """``streams`` CSV COPYs of consecutive block ranges: together, the table in physical order."""
    cursor = await conn.execute("SELECT pg_relation_size(%s::oid) / current_setting('block_size')::int8",
                                [relation.oid])
    row = await cursor.fetchone()
    blocks = int(row[0]) if row else 0
    bounds = [sql.SQL("{}::tid").format(sql.Literal(f"({blocks * i // streams},0)")) for i in range(1, streams)]
    statements: list[sql.Composable] = []
    for index in range(streams):
        conditions = ([sql.SQL("ctid >= {}").format(bounds[index - 1])] if index else []) + (
            [sql.SQL("ctid < {}").format(bounds[index])] if index < streams - 1 else [])
        header = sql.SQL(", HEADER") if index == 0 else sql.SQL("")
        statements.append(sql.SQL("COPY (SELECT * FROM {} WHERE {}) TO STDOUT (FORMAT csv{})").format(
            relation_ident(relation), sql.SQL(" AND ").join(conditions), header))
    return statements
