"""Sized reads: part of a table or a query's result (columns, where, limit, sample), and size budgets.

A :class:`RowOptions` turns a table or a query into one guarded ``SELECT``; a :class:`RowBudget`
bounds one read by the planner's estimate and a capped count, so a refusal never reads more than
the budget. What each option does and why: the "Sized reads" section of ``docs/design/postgresql.md``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from connectors.errors import ConfigurationError, DataFetchError, NotFoundError
from connectors.rows import OPTION_NAMES, BudgetExceededError, RowBudget, RowOptions

__all__ = ["BudgetExceededError", "RowBudget", "RowOptions", "check_scope"]

BLOCK_SAMPLE_MIN_ROWS = 100_000  # below this a full read is cheap, and keeps samples layout-independent
BLOCK_SAMPLE_MARGIN = 4  # sample this many times the rows wanted: SYSTEM picks whole blocks, unevenly
BLOCK_SAMPLE_KINDS = ("table", "materialized view")
SAMPLE_HASH = "('x' || pg_catalog.substr(pg_catalog.md5({seed} || ROW({row}.*)::text), 1, 8))::bit(32)::int8"
HASH_SPACE = 1 << 32
ROW_ALIAS = "da_row"


@dataclass(frozen=True)
class Estimate:
    rows: int
    width: int

    @property
    def bytes(self) -> int:
        return self.rows * max(self.width, 1)


def sliced_select(
    conn: psycopg.AsyncConnection[Any], source: sql.Composable, names: list[str], options: RowOptions,
    order_key: list[str], budget: RowBudget | None = None, block_percent: float | None = None,
) -> sql.Composable:
    """``SELECT <columns> FROM <source> AS da_row [TABLESAMPLE ...] [WHERE ...] [ORDER BY ...] [LIMIT n]``.

    ``source`` is a relation identifier or a parenthesised query; ``names`` its column names.
    ``order_key`` orders a plain limit (a primary key), reproducibly. ``block_percent`` (a count sample of
    a table, :func:`block_sample_percent`) reads that percentage of its blocks only.
    """
    chosen = pick_columns(names, options.columns)
    conditions: list[sql.Composable] = []
    if options.where is not None:
        conditions.append(sql.SQL("({})").format(sql.SQL(bind_where(conn, options.where, options.params))))
    hashed = sql.SQL(SAMPLE_HASH).format(seed=sql.Literal(str(options.seed)), row=sql.Identifier(ROW_ALIAS))
    if options.sample is not None and options.sample < 1:
        conditions.append(sql.SQL("{} < {}").format(hashed, sql.Literal(math.floor(options.sample * HASH_SPACE))))
    parts = [sql.SQL("SELECT {} FROM {} AS {}").format(
        sql.SQL(", ").join(sql.Identifier(ROW_ALIAS, n) for n in chosen), source, sql.Identifier(ROW_ALIAS))]
    if block_percent is not None:
        parts.append(sql.SQL("TABLESAMPLE SYSTEM ({}) REPEATABLE ({})").format(
            sql.Literal(block_percent), sql.Literal(options.seed)))
    if conditions:
        parts.append(sql.SQL("WHERE {}").format(sql.SQL(" AND ").join(conditions)))
    limit = _limit(options, budget)
    if options.sample_rows is not None:
        parts.append(sql.SQL("ORDER BY {}, {}").format(hashed, sql.SQL("ROW({}.*)::text").format(
            sql.Identifier(ROW_ALIAS))))
    elif options.limit is not None and order_key:  # the user's limit: the first rows by key (not the budget's)
        parts.append(sql.SQL("ORDER BY {}").format(sql.SQL(", ").join(sql.Identifier(ROW_ALIAS, k) for k in order_key)))
    if limit is not None:
        parts.append(sql.SQL("LIMIT {}").format(sql.Literal(limit)))
    return sql.SQL(" ").join(parts)


def block_sample_percent(options: RowOptions, kind: str, estimated_rows: int) -> float | None:
    """The percentage of blocks a count sample reads, or None when it must read the whole relation."""
    wanted = options.sample_rows
    if wanted is None or options.where is not None or kind not in BLOCK_SAMPLE_KINDS:
        return None
    if estimated_rows < BLOCK_SAMPLE_MIN_ROWS:  # small, or never analyzed (-1)
        return None
    percent = 100.0 * wanted * BLOCK_SAMPLE_MARGIN / estimated_rows
    return round(percent, 6) if percent <= 50 else None  # over half the blocks: read them all


def _limit(options: RowOptions, budget: RowBudget | None) -> int | None:
    limits = [n for n in (options.limit, options.sample_rows) if n is not None]
    if budget is not None and budget.max_rows is not None:
        limits.append(budget.max_rows + 1)  # one more than the budget: an over-budget result is seen, not cut
    return min(limits) if limits else None


def pick_columns(names: list[str], wanted: list[str] | None) -> list[str]:
    """``wanted`` (each one a column of ``names``), or all of ``names``."""
    if wanted is None:
        return names
    missing = [name for name in wanted if name not in names]
    if missing:
        raise NotFoundError(f"no column {missing[0]!r}; the columns are {', '.join(names[:50])}")
    if len(set(wanted)) != len(wanted):
        raise ConfigurationError("columns: a column is named twice")
    return wanted


def bind_where(conn: psycopg.AsyncConnection[Any], where: str, params: Any) -> str:
    """The condition with its parameters bound as literals by psycopg (never pasted as SQL)."""
    text = where.strip()
    if params is None:
        return text
    try:
        return psycopg.AsyncClientCursor(conn).mogrify(text, params)
    except (psycopg.ProgrammingError, TypeError, KeyError, IndexError) as exc:
        raise ConfigurationError(f"where: its placeholders do not match params ({type(exc).__name__})") from None


async def explain(conn: psycopg.AsyncConnection[Any], statement: sql.Composable) -> dict[str, Any]:
    """The planner's JSON plan of ``statement`` (nothing is run); one statement only (extended protocol)."""
    text = sql.SQL("EXPLAIN (FORMAT JSON, VERBOSE) {}").format(statement).as_string(conn)
    cursor = await conn.execute(text.replace("%", "%%"), [])  # params: the extended protocol, one statement
    row = await cursor.fetchone()
    assert row is not None
    plan = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    return dict(plan[0]["Plan"])


def estimate(plan: dict[str, Any]) -> Estimate:
    """The planner's rows and row width at the top of ``plan``."""
    return Estimate(int(plan.get("Plan Rows", 0)), int(plan.get("Plan Width", 0)))


def _relations_and_subplans(plan: dict[str, Any]) -> tuple[set[tuple[str, str]], int]:
    relations: set[tuple[str, str]] = set()
    subplans = 0
    pending = [plan]
    while pending:
        node = pending.pop()
        if "Relation Name" in node:
            relations.add((str(node.get("Schema", "")), str(node["Relation Name"])))
        if node.get("Parent Relationship") in ("SubPlan", "InitPlan") or node.get("Node Type") == "Function Scan":
            subplans += 1
        pending.extend(node.get("Plans", []))
    return relations, subplans


def check_scope(plain: dict[str, Any], sliced: dict[str, Any], where: str | None) -> None:
    """Refuse a ``where`` whose plan reads a relation the plain read does not, or runs a sub-query.

    Args:
        plain: The planner's plan of the read without the where.
        sliced: The planner's plan of the read with it.
        where: The condition as given; None: nothing to check.

    Raises:
        DataFetchError: The condition reads another relation or runs a sub-query.
    """
    if where is None:
        return
    allowed, plain_subplans = _relations_and_subplans(plain)
    read, subplans = _relations_and_subplans(sliced)
    if subplans > plain_subplans or not read <= allowed:
        raise DataFetchError("where refused: a condition may only test the columns of the table it filters "
                             "(no sub-queries, no other tables or set-returning functions)")


def check_budget(budget: RowBudget | None, rows: int, width: int, exact: bool) -> None:
    """Refuse ``rows`` rows of ``width`` bytes when over the budget; the message names the options."""
    if budget is None:
        return
    what = f"{rows} rows" if exact else f"about {rows} rows (the planner's estimate)"
    if budget.max_rows is not None and rows > budget.max_rows:
        raise BudgetExceededError(f"{what}, over the thread's budget of {budget.max_rows} rows; "
                                  f"ask for less with {OPTION_NAMES}")
    size = rows * max(width, 1)
    if budget.max_bytes is not None and size > budget.max_bytes:
        raise BudgetExceededError(f"about {size} bytes ({what}), over the thread's budget of "
                                  f"{budget.max_bytes} bytes; ask for less with {OPTION_NAMES}")


async def bounded_count(conn: psycopg.AsyncConnection[Any], select: sql.Composable, bound: int) -> int:
    """How many rows ``select`` gives, reading at most ``bound`` of them."""
    statement = sql.SQL("SELECT pg_catalog.count(*) FROM (SELECT FROM ({}) AS s LIMIT {}) AS counted").format(
        select, sql.Literal(bound))
    cursor = await conn.execute(statement.as_string(conn).replace("%", "%%"), [])
    row = await cursor.fetchone()
    return int(row[0]) if row else 0
