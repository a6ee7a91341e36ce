"""``postgresql``: tables, views and query results landed as CSV or Parquet.

Every read is one read-only snapshot transaction on a pooled connection, scoped to the
configured ``schemas``; CSV is the server's own ``COPY``, Parquet is built from that
stream. Why it is built this way (pool, snapshots, scope, parallel export, times):
``docs/design/postgresql.md``.

Example:
    >>> config = DataSourceConfig(id="warehouse", type="postgresql", name="Warehouse",
    ...     config={"host": "db", "dbname": "sales", "user": "reader",
    ...             "password": {"env": "PGPASSWORD"}, "format": "parquet"})
    >>> async with PostgreSQLConnector(config) as pg:
    ...     items = await pg.list_items()
    ...     await pg.fetch_data('public."Orders 2024"', "/tmp/ws")  # /tmp/ws/public.Orders 2024.parquet
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import secrets
import threading
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pyarrow as pa
from psycopg import IsolationLevel, sql
from psycopg import pq as libpq
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import ValidationError

from connectors.base import DataItem, DataSourceConnector
from connectors.checked_fetch import prune_landed
from connectors.errors import (
    ConfigurationError,
    ConnectionError,
    DataFetchError,
    DataSourceError,
    NotFoundError,
)
from connectors.landing.atomic import LandedFile, current_byte_cap
from connectors.landing.lineage import build_record, write_provenance
from connectors.landing.names import safe_relative_path
from connectors.postgresql import catalog, incremental, parts, session, slicing, sync_guard
from connectors.postgresql.catalog import Column, Relation
from connectors.postgresql.columns import ColumnPlan, arrow_schema, csv_select, plan_column
from connectors.postgresql.errors import TranslatedErrors, secret_values
from connectors.postgresql.export import ParquetWrite, Writer, describe, export_to_landing, parquet_writer, write_csv
from connectors.postgresql.reach import pinned_params
from connectors.profiling import Profiler, is_sensitive, profile_csv, profile_parquet
from connectors.profiling_stream import BackgroundProfiler, CsvStreamProfile
from connectors.rows import IncrementalSpec, RowBudget, RowOptions
from connectors.secrets.references import get_logger
from connectors.settings import PostgreSQLSettings

log = get_logger(__name__)

PARALLEL_MIN_BYTES = 64 << 20  # below this a second stream costs more than it saves
HELPER_WAIT_SECONDS = 1.0  # how long a fetch waits for a second connection before going it alone
CANCEL_TIMEOUT = 5.0  # seconds a cancelled export waits for the server to take its cancel request

MODIFIED_AT_UNKNOWN = 0  # DataItem.modified_at when the source keeps no modification time

AsyncConn = psycopg.AsyncConnection[Any]
class PostgreSQLConnector(TranslatedErrors, DataSourceConnector):
    """Lands PostgreSQL tables, views and queries; identifiers are ``schema.table``."""

    settings_model = PostgreSQLSettings

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._settings: PostgreSQLSettings | None = None
        self._pool: AsyncConnectionPool[AsyncConn] | None = None
        self._gate: asyncio.Semaphore | None = None
        self._secrets: tuple[str, ...] = ()
        self._pool_params: tuple[str, dict[str, Any]] | None = None  # holds the password: never pickled
        self._renew_pool = False
        self._uri = "postgresql://"

    # --- pickling: a connector travels as its (masked) config, unconnected ----

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"])  # type: ignore[misc]

    # --- connecting ------------------------------------------------------

    async def connect(self) -> bool:
        if self._connected:
            return True
        settings: PostgreSQLSettings = self.resolve_settings()
        if settings.dsn is not None and (problem := session.dsn_problem(settings.dsn.reveal())):
            raise ConfigurationError(f"config.dsn: {problem}", source_id=self.source_id)
        conninfo, kwargs = _connection_params(settings)
        if self.reach is not None:  # checked options, resolved and pinned here: libpq resolves nothing
            conninfo, kwargs = await pinned_params(conninfo, kwargs, self.reach)
        self._secrets = secret_values(settings)
        try:
            with self._translated("connect"):
                self._uri = _public_uri(conninfo, kwargs)
                await self._probe(conninfo, kwargs, settings.connect_timeout)
        except DataSourceError as exc:
            # libpq's text quotes DSN fragments: it must not ride along as the implicit context
            exc.__cause__ = exc.__context__ = None
            raise
        self._settings = settings
        self._pool_params = (conninfo, kwargs)
        with self._translated("connect"):
            self._pool = await self._open_pool()
        # fetches wait here, not in the pool, so a long export never times out a waiting getconn
        self._gate = asyncio.Semaphore(settings.pool_max_size)
        self._connected = True
        return True

    async def _open_pool(self) -> AsyncConnectionPool[AsyncConn]:
        assert self._settings is not None and self._pool_params is not None
        settings, (conninfo, kwargs) = self._settings, self._pool_params
        pool: AsyncConnectionPool[AsyncConn] = AsyncConnectionPool(
            conninfo, kwargs=kwargs, min_size=settings.pool_min_size, max_size=settings.pool_max_size,
            max_lifetime=settings.pool_max_lifetime, timeout=settings.connect_timeout,
            check=AsyncConnectionPool.check_connection, configure=_configure_connection,
            reset=session.reset_session,
            name=f"da-sources:{self.source_id}", open=False,
        )
        await pool.open(wait=settings.pool_min_size > 0, timeout=settings.connect_timeout)
        return pool

    async def _live_pool(self) -> AsyncConnectionPool[AsyncConn]:
        """The pool; renewed after it could not connect, so its growing back-off (up to
        minutes) does not outlast a server that is already back."""
        assert self._pool is not None
        if self._renew_pool:
            self._renew_pool = False
            old, self._pool = self._pool, await self._open_pool()
            await old.close(timeout=0)
        return self._pool

    async def _probe(self, conninfo: str, kwargs: dict[str, Any], timeout: float) -> None:
        try:
            probe = await asyncio.wait_for(psycopg.AsyncConnection.connect(conninfo, **kwargs), timeout)
        except TimeoutError:
            raise ConnectionError(f"connect: no answer from the server within {timeout:g} s",
                                  source_id=self.source_id) from None
        await probe.close()

    async def disconnect(self) -> None:
        pool, self._pool = self._pool, None
        self._connected = False
        self._secrets, self._pool_params = (), None
        if pool is not None:
            await pool.close(timeout=5)

    async def test_connection(self) -> bool:
        try:
            if not self._connected:
                await self.connect()
            async with self._read("test connection") as (conn, _, _):
                await conn.execute("SELECT 1")
            return True
        except DataSourceError:
            return False

    # --- reads -----------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _read(
        self, action: str, subject: str | None = None, *, pinned: bool = True
    ) -> AsyncIterator[tuple[AsyncConn, str, int]]:
        """A pooled connection in a read-only REPEATABLE READ transaction: (conn, snapshot, now).

        The transaction is rolled back at the end: a read has nothing to keep,
        and whatever a function changed in it is undone. ``pinned`` pins the
        ``search_path`` to the catalog (table reads; a caller's query keeps the role's).
        """
        self._require_connected()
        assert self._pool is not None and self._gate is not None
        with self._translated(action, subject):
            async with self._gate:
                try:
                    async with (await self._live_pool()).connection() as conn, conn.transaction() as tx:
                        cursor = await conn.execute(session.BEGIN_READ, self._begin_params(pinned))
                        row = await cursor.fetchone()
                        assert row is not None
                        yield conn, row[-2], row[-1]
                        if not conn.closed:
                            raise psycopg.Rollback(tx)
                except PoolTimeout:
                    self._renew_pool = True
                    raise

    def _begin_params(self, pinned: bool) -> list[str | None]:
        assert self._settings is not None
        return [_milliseconds(self._settings.statement_timeout), _milliseconds(self._settings.lock_timeout),
                session.PINNED_SEARCH_PATH if pinned else None, session.PINNED_JIT if pinned else None]

    async def list_items(self, path: str | None = None) -> list[DataItem]:
        """Tables, views and materialized views of the configured schemas, or of schema ``path``.

        A partitioned table is listed once, as its parent (which reads every partition); its
        partitions are listed too only with ``partitions: true`` (they would land the data twice).

        Args:
            path: One of the configured schemas, or None for all of them.

        Returns:
            One item per relation; ``path`` is its ``schema.table`` identifier.
        """
        self._require_connected()
        assert self._settings is not None
        schemas = self._settings.schemas if path is None else [self._schema_of(path)]
        async with self._read("list", path) as (conn, _, _):
            if path is not None:
                await self._require_schema(conn, schemas[0])
            relations = await catalog.relations(conn, catalog.RELATIONS_IN_SCHEMAS,
                                                [schemas, self._settings.partitions])
        return [_item(relation) for relation in relations]

    def _schema_of(self, path: str) -> str:
        parts = catalog.parse_name_parts(path)
        if len(parts) != 1:
            raise NotFoundError(f"{path!r} is not a schema name", source_id=self.source_id)
        return parts[0]

    async def _require_schema(self, conn: AsyncConn, schema: str) -> None:
        assert self._settings is not None
        # out of scope reads exactly like missing: the scope does not tell what exists outside it
        found = False
        if schema in self._settings.schemas:
            cursor = await conn.execute(catalog.SCHEMAS_PRESENT, [[schema]])
            found = await cursor.fetchone() is not None
        if not found:
            raise NotFoundError(f"schema {catalog.quote_part(schema)} does not exist in this source",
                                source_id=self.source_id)

    async def get_metadata(self, identifier: str, exact_count: bool = False) -> dict[str, Any]:
        """Facts about one table or view, read in one snapshot.

        Args:
            identifier: ``schema.table`` (quoted parts may hold dots and spaces).
            exact_count: Also count the rows with ``count(*)`` (a full scan).

        Returns:
            Kind, estimated rows, columns, primary key, comment, version, snapshot and ``source_uri``;
            ``row_count`` with ``exact_count``.
        """
        schema, table = self._parse(identifier)
        async with self._read("metadata", identifier) as (conn, snapshot, _):
            relation = await self._relation(conn, schema, table, identifier)
            metadata = {**relation.metadata(), "path": relation.identifier, "snapshot": snapshot,
                        "source_uri": self._source_uri(relation.identifier)}
            if exact_count:
                cursor = await conn.execute(sql.SQL("SELECT count(*) FROM {}").format(catalog.relation_ident(relation)))
                row = await cursor.fetchone()
                metadata["row_count"] = int(row[0]) if row else 0
        return metadata

    async def _relation(self, conn: AsyncConn, schema: str, table: str, identifier: str) -> Relation:
        """The table or view ``schema.table``, if it exists *and* is in the configured schemas."""
        assert self._settings is not None
        in_scope = schema in self._settings.schemas
        relations = await catalog.relations(conn, catalog.ONE_RELATION, [schema, table]) if in_scope else []
        if not relations:
            raise NotFoundError(f"no table or view {catalog.format_identifier(schema, table)} in this source "
                                f"(asked for {identifier!r})", source_id=self.source_id)
        return relations[0]

    def _parse(self, identifier: str) -> tuple[str, str]:
        try:
            return catalog.parse_identifier(identifier)
        except DataSourceError as exc:
            exc.source_id = self.source_id
            raise

    # --- fetching --------------------------------------------------------

    async def fetch_data(self, identifier: str, workspace: str) -> str:
        """Land a table or view as ``<workspace>/<schema>.<table>.<csv|parquet>``.

        A table named in the source's ``table_options`` lands the part they say (:meth:`fetch_table`).

        Args:
            identifier: ``schema.table`` (quoted parts may hold dots and spaces).
            workspace: The folder to land it in.

        Returns:
            The landed file's absolute path; in Parquet, a table at least ``part_bytes`` big lands as
            the dataset folder ``<schema>.<table>/`` of parts, whose path this is.
        """
        self._require_connected()
        assert self._settings is not None
        schema, table = self._parse(identifier)
        configured = self._configured_options(schema, table)
        if configured is not None:
            return await self.fetch_table(identifier, workspace, configured)
        relative = catalog.landed_name(schema, table, self._settings.format)  # refused before any query
        async with self._read("fetch", identifier) as (conn, snapshot, _), contextlib.AsyncExitStack() as stack:
            relation = await self._relation(conn, schema, table, identifier)
            if self._settings.format == "parquet" and relation.size >= self._settings.part_bytes:
                facts = {"source_version": relation.version, "relation_kind": catalog.KIND_NAMES[relation.kind],
                         "estimated_rows": relation.estimated_rows}
                return await self._fetch_dataset(conn, relation.columns, catalog.relation_ident(relation),
                                                 relation.identifier, snapshot, workspace,
                                                 relative.removesuffix(".parquet"), facts)
            money_scale = await _money_scale(conn, relation.columns)
            statement, writer = self._table_export(relation, money_scale)
            conns, statements = [conn], [statement]
            # a byte cap is checked on the one stream that lands; helper streams would spill past it
            worthy = (self._parallel_worthy(conn, relation) and self._csv_is_direct(relation.columns)
                      and current_byte_cap() is None)
            helper = await self._snapshot_helper(stack, conn) if worthy else None
            if helper is not None:
                conns, statements = [conn, helper], await catalog.range_copy_statements(conn, relation, 2)
            facts = {"source_version": relation.version, "relation_kind": catalog.KIND_NAMES[relation.kind],
                     "estimated_rows": relation.estimated_rows, "streams": len(conns)}
            landed = await self._export(conns, statements, writer, workspace, relative, relation.identifier,
                                        snapshot, relation.columns, facts)
        log.debug("source %s: landed %s as %s (%s rows, %d bytes, %d streams)", self.source_id,
                  relation.identifier, landed.relative, landed.record.get("row_count"), landed.size, len(conns))
        if self._settings.format == "parquet":  # it was a dataset folder before: that one goes
            await asyncio.to_thread(parts.remove_plain_dataset, landed.path.parent,
                                    relative.removesuffix(".parquet"), self.source_id, relation.identifier)
        return str(landed.path)

    async def _fetch_dataset(self, conn: AsyncConn, columns: list[Column], source: sql.Composable, identifier: str,
                             snapshot: str, workspace: str, name: str, facts: dict[str, Any]) -> str:
        """Land ``source`` (a table, or a parenthesised query) as the dataset folder ``name`` of Parquet parts.

        The same folder, part and record layout as an incremental table's full sync
        (:mod:`connectors.postgresql.parts`): parts staged beside the folder, which replaces the old
        one in one step; a record per part; the dataset's record lists the parts (rows, size, sha256),
        the total rows and the profile. A single file it landed as before is removed.
        """
        assert self._settings is not None
        root = await asyncio.to_thread(Path(workspace).absolute)
        with sync_guard.dataset_lock(root, name, self.source_id):  # one export of a dataset at a time
            await asyncio.to_thread(sync_guard.sweep_staging, root, name)
            plans, statement = await self._parts_statement(conn, columns, source)
            sensitive, source_types = self._profile_inputs(columns, identifier)
            profiler = (BackgroundProfiler(Profiler(arrow_schema(plans), source_types, sensitive))
                        if self._settings.profile else None)
            staging = parts.new_staging(root, name, secrets.token_hex(6))
            try:
                written = await self._write_staged(conn, statement, plans, staging, self._settings.part_bytes, 0,
                                                   profiler)
            finally:
                if profiler is not None:
                    await asyncio.to_thread(profiler.close)
            provenance = {"source_type": self.type_name(), "source_uri": self._source_uri(identifier),
                          "snapshot": snapshot, "format": "parquet", "sql": statement.decode(),
                          "columns": [{"name": c.name, "type": c.type} for c in columns], **facts}
            await asyncio.to_thread(self._publish_parts, staging, root, name, written, provenance, identifier, True)
            record = build_record(
                {**provenance, "format": "parquet dataset", "part_bytes": self._settings.part_bytes,
                 "parts": [{"name": p.name, "rows": p.rows, "size": p.size, "sha256": p.sha256} for p in written],
                 "row_count": sum(p.rows for p in written),
                 **({"profile": profiler.result()} if profiler is not None else {})},
                source_id=self.source_id, identifier=identifier, local_path=str(root / name),
                size=sum(p.size for p in written), sha256=parts.parts_digest(written))
            await asyncio.to_thread(write_provenance, root, name, record)
            await asyncio.to_thread(prune_landed, root, f"{name}.parquet", self.source_id, identifier)
        log.debug("source %s: landed %s as the dataset %s (%d rows, %d parts)", self.source_id,
                  identifier, name, record["row_count"], len(written))
        return str(root / name)

    async def _parts_statement(self, conn: AsyncConn, columns: list[Column],
                               select: sql.Composable) -> tuple[list[ColumnPlan], bytes]:
        """The column plans and the COPY that writes ``select``'s rows (of ``columns``) as parts."""
        money_scale = await _money_scale(conn, columns)
        aliases = [sql.Identifier(f"c{index}") for index in range(len(columns))]
        plans = [plan_column(c.resolved, a, money_scale=money_scale) for c, a in zip(columns, aliases, strict=True)]
        statement = sql.SQL("COPY (SELECT {} FROM {} AS q({})) TO STDOUT (FORMAT csv)").format(
            sql.SQL(", ").join(p.select for p in plans), select, sql.SQL(", ").join(aliases)).as_bytes(conn)
        return plans, statement

    async def _write_staged(self, conn: AsyncConn, statement: bytes, plans: list[ColumnPlan], staging: Path,
                            part_bytes: int, first: int,
                            profiler: BackgroundProfiler | None = None) -> list[parts.WrittenPart]:
        """Write the COPY's rows as parts in ``staging``; on any failure the staging folder goes."""
        cancelled = threading.Event()
        work = asyncio.ensure_future(asyncio.to_thread(
            parts.write_parts, conn.pgconn, statement, plans, staging, part_bytes, cancelled, first,
            None if profiler is None else profiler.add, current_byte_cap()))
        try:
            return await asyncio.shield(work)
        except BaseException:
            cancelled.set()  # the thread stops at its next chunk; the folder goes once it has
            with contextlib.suppress(BaseException):
                await work
            await asyncio.to_thread(parts.remove_folder, staging)
            if conn.pgconn.transaction_status == libpq.TransactionStatus.ACTIVE:
                await _abandon(conn)
            raise

    async def fetch_table(
        self, identifier: str, workspace: str, options: RowOptions | dict[str, Any] | None = None,
        budget: RowBudget | None = None,
    ) -> str:
        """Land part of a table or view (``options``: columns, where, limit, sample), within ``budget``.

        Lands where :meth:`fetch_data` does; the lineage record keeps the options and the exact SQL.
        :mod:`connectors.postgresql.slicing` says what each option means and how ``where`` is guarded.

        Args:
            identifier: ``schema.table``.
            workspace: The folder to land it in.
            options: Which rows and columns; None or empty lands what :meth:`fetch_data` lands.
            budget: The most rows and bytes the result may hold (a thread's budget); None: no limit.

        Returns:
            The landed file's absolute path.

        Raises:
            BudgetExceededError: The result is over ``budget`` (refused before reading more than it).
            DataFetchError: The where reads outside the table, writes, or fails.
            NotFoundError: The table, or a named column, does not exist in this source.
        """
        chosen = _row_options(options, self.source_id)
        if chosen.is_empty() and budget is None:
            schema, table = self._parse(identifier)
            if self._configured_options(schema, table) is None:
                return await self.fetch_data(identifier, workspace)
        self._require_connected()
        assert self._settings is not None
        schema, table = self._parse(identifier)
        relative = catalog.landed_name(schema, table, self._settings.format)  # refused before any query
        async with self._read("fetch", identifier) as (conn, snapshot, _):
            relation = await self._relation(conn, schema, table, identifier)
            if chosen.where is not None:
                await self._require_harmless_role(conn)
            source = catalog.relation_ident(relation)
            facts = {"source_version": relation.version, "relation_kind": catalog.KIND_NAMES[relation.kind],
                     "estimated_rows": relation.estimated_rows, "streams": 1}
            landed = await self._land_slice(conn, source, relation.columns, chosen, relation.primary_key, budget,
                                            workspace, relative, relation.identifier, snapshot, facts)
        return str(landed.path)

    async def sync_table(self, identifier: str, workspace: str, *, full: bool = False) -> str:
        """Sync a table configured in ``incremental`` into its Parquet dataset folder.

        The first sync (or ``full``, or a schema change under ``on_schema_change: full_refresh``)
        replaces the folder in one step; later syncs add parts holding the rows after the last
        cursor. Deletes are not seen by a cursor: sync with ``full=True`` to drop them.

        Args:
            identifier: ``schema.table``, as configured under ``incremental``.
            workspace: The folder the dataset folder lives in.
            full: Export the whole table again instead of the rows after the cursor.

        Returns:
            The dataset folder's absolute path.

        Raises:
            ConfigurationError: The table is not configured, or its cursor is missing or unordered.
            SchemaChangedError: The columns changed and the source says ``on_schema_change: fail``.
            SyncBusyError: Another sync of this dataset is running.
        """
        self._require_connected()
        assert self._settings is not None
        schema, table = self._parse(identifier)
        spec = next((v for k, v in self._settings.incremental.items()
                     if catalog.parse_name_parts(k) == [schema, table]), None)
        if spec is None:
            raise ConfigurationError(f"{identifier!r} is not in this source's incremental settings",
                                     source_id=self.source_id)
        name = catalog.landed_name(schema, table, "parquet").removesuffix(".parquet")
        root = await asyncio.to_thread(Path(workspace).absolute)
        with sync_guard.dataset_lock(root, name, self.source_id):  # one sync of a dataset at a time
            swept = await asyncio.to_thread(sync_guard.sweep_staging, root, name)
            if swept:
                log.info("source %s: removed %d staging folder(s) a crashed sync of %s left", self.source_id,
                         len(swept), identifier)
            return await self._sync_locked(identifier, schema, table, spec, full, root, name)

    async def _sync_locked(self, identifier: str, schema: str, table: str, spec: IncrementalSpec, full: bool,
                           root: Path, name: str) -> str:
        prior = await asyncio.to_thread(parts.dataset_record, root, name)
        async with self._read("sync", identifier) as (conn, snapshot, _):
            relation = await self._relation(conn, schema, table, identifier)
            cursor = incremental.cursor_column(relation.columns, spec.cursor)
            drift = incremental.schema_diff(prior.get("columns") if prior else None, relation.columns)
            if drift and spec.on_schema_change == "fail":
                raise incremental.SchemaChangedError(
                    f"{identifier}: the columns changed since the last sync ({json.dumps(drift)}); "
                    "on_schema_change is fail: sync it with full=True (--full) to replace the dataset",
                    source_id=self.source_id)
            refresh = bool(drift) and spec.on_schema_change == "full_refresh"
            # a plain export's folder (no cursor), or another cursor: the parts say nothing of this cursor
            whole = full or prior is None or not prior.get("parts") or refresh or prior.get("cursor") != cursor.name
            where = None if whole else await self._increment_where(conn, relation, cursor, prior or {}, spec,
                                                                   root / name)
            landed = await self._land_parts(conn, relation, cursor, where, spec, root, name, snapshot, whole)
        record = self._dataset_record(relation, cursor, prior, landed, whole, drift, snapshot, root, name)
        record["on_schema_change"] = spec.on_schema_change
        await asyncio.to_thread(write_provenance, root, name, record)
        return str(root / name)

    async def _increment_where(self, conn: AsyncConn, relation: Relation, cursor: Column, prior: dict[str, Any],
                               spec: IncrementalSpec, folder: Path) -> sql.Composable:
        last = prior.get("cursor_max")
        if last is None:
            return sql.SQL("true")
        lower = incremental.lower_bound(cursor, str(last), spec.lookback)
        row = await (await conn.execute(sql.SQL("SELECT {}").format(lower).as_string(conn).replace("%", "%%"),
                                        [])).fetchone()
        key = [c for name in relation.primary_key for c in relation.columns if c.name == name]
        if not key:
            raise ConfigurationError("incremental: the table needs a primary key (rows re-read in the look-back "
                                     "window are told apart by it)", source_id=self.source_id)
        window = await asyncio.to_thread(incremental.landed_window, folder, cursor.name,
                                         [c.name for c in key], row[0] if row else None)
        return incremental.increment_condition(cursor, lower, key, window)

    async def _land_parts(self, conn: AsyncConn, relation: Relation, cursor: Column, where: sql.Composable | None,
                          spec: IncrementalSpec, root: Path, name: str, snapshot: str,
                          whole: bool) -> dict[str, Any]:
        """Export the rows (all, or ``where``) as parts, publish them; their facts and the cursor range."""
        source = catalog.relation_ident(relation)
        select = sql.SQL("SELECT {} FROM {} AS da_row{} ORDER BY {}").format(
            sql.SQL(", ").join(sql.Identifier("da_row", c.name) for c in relation.columns), source,
            sql.SQL("") if where is None else sql.SQL(" WHERE {}").format(where), sql.Identifier("da_row", cursor.name))
        bounds = await (await conn.execute(sql.SQL(
            "SELECT min({0})::text, max({0})::text, count(*) FROM ({1}) AS s").format(
            sql.Identifier(cursor.name), select).as_string(conn).replace("%", "%%"), [])).fetchone()
        plans, statement = await self._parts_statement(conn, relation.columns, sql.SQL("({})").format(select))
        if not whole and bounds is not None and int(bounds[2]) == 0:  # nothing new: no empty part
            return {"parts": [], "min": None, "max": None, "rows": 0, "sql": statement.decode()}
        prior = None if whole else await asyncio.to_thread(parts.dataset_record, root, name)
        prior_parts = (prior or {}).get("parts", [])
        first = 0 if whole else 1 + max((int(p["name"][5:10]) for p in prior_parts), default=-1)
        staging = parts.new_staging(root, name, secrets.token_hex(6))
        written = await self._write_staged(conn, statement, plans, staging, spec.part_bytes, first)
        provenance = {"source_type": self.type_name(), "source_uri": self._source_uri(relation.identifier),
                      "source_version": relation.version, "snapshot": snapshot, "format": "parquet",
                      "sql": statement.decode(),
                      "columns": [{"name": c.name, "type": c.type} for c in relation.columns],
                      "cursor": cursor.name, "cursor_min": bounds[0] if bounds else None,
                      "cursor_max": bounds[1] if bounds else None}
        await asyncio.to_thread(self._publish_parts, staging, root, name, written, provenance, relation.identifier,
                                whole)
        return {"parts": written, "min": bounds[0] if bounds else None, "max": bounds[1] if bounds else None,
                "rows": int(bounds[2]) if bounds else 0, "sql": statement.decode()}

    def _publish_parts(self, staging: Path, root: Path, name: str, written: list[parts.WrittenPart],
                       provenance: dict[str, Any], identifier: str, whole: bool) -> None:
        if whole:
            parts.remove_folder(parts.exchange(staging, root / name))
        else:
            parts.move_parts(staging, root / name, written)
        parts.write_records(root, name, written, provenance, self.source_id, identifier, replaced=whole)

    def _dataset_record(self, relation: Relation, cursor: Column, prior: dict[str, Any] | None,
                        landed: dict[str, Any], whole: bool, drift: dict[str, Any], snapshot: str, root: Path,
                        name: str) -> dict[str, Any]:
        new_parts = [{"name": p.name, "rows": p.rows, "size": p.size, "sha256": p.sha256, "cursor_min": landed["min"],
                      "cursor_max": landed["max"], "snapshot": snapshot} for p in landed["parts"]]
        all_parts = new_parts if whole else [*(prior or {}).get("parts", []), *new_parts]
        last = landed["max"] if landed["max"] is not None else (prior or {}).get("cursor_max")
        changes = list((prior or {}).get("schema_changes", [])) + ([{"snapshot": snapshot, **drift}] if drift else [])
        provenance = {"source_type": self.type_name(), "source_uri": self._source_uri(relation.identifier),
                      "source_version": f"{relation.version}:{last}:{len(all_parts)}", "format": "parquet dataset",
                      "columns": [{"name": c.name, "type": c.type} for c in relation.columns],
                      "cursor": cursor.name, "cursor_max": last, "parts": all_parts,
                      "row_count": sum(int(p["rows"]) for p in all_parts),
                      "last_sync": "full" if whole else "increment",
                      "rows_synced": landed["rows"], "sql": landed["sql"], "schema_changes": changes,
                      "schema_change": drift,  # this sync's (empty: none); schema_changes keeps every one
                      "deletes": "not seen by a cursor: sync with full=True to drop deleted rows"}
        return build_record(provenance, source_id=self.source_id, identifier=relation.identifier,
                            local_path=str(root / name), size=sum(int(p["size"]) for p in all_parts),
                            sha256=hashlib.sha256(json.dumps(all_parts, sort_keys=True).encode()).hexdigest())

    def _configured_options(self, schema: str, table: str) -> RowOptions | None:
        """The source's ``table_options`` for ``schema.table`` (keys compared as parsed names), if any."""
        assert self._settings is not None
        for key, options in self._settings.table_options.items():
            if catalog.parse_name_parts(key) == [schema, table] and not options.is_empty():
                return options
        return None

    async def _land_slice(
        self, conn: AsyncConn, source: sql.Composable, columns: list[Column], options: RowOptions,
        order_key: list[str], budget: RowBudget | None, workspace: str, relative: str, identifier: str,
        snapshot: str, facts: dict[str, Any],
    ) -> LandedFile:
        """Check the slice's scope and size, then land ``SELECT <slice> FROM source``."""
        select = await self._sample_by_blocks(conn, source, columns, options, order_key, budget, facts)
        chosen = [next(c for c in columns if c.name == n)
                  for n in slicing.pick_columns([c.name for c in columns], options.columns)]
        plan = await slicing.explain(conn, select)
        slicing.check_scope(await slicing.explain(conn, sql.SQL("SELECT * FROM {} AS da_row").format(source)),
                            plan, options.where)
        guess = slicing.estimate(plan)
        await _check_budget(conn, select, guess, budget)
        money_scale = await _money_scale(conn, chosen)
        statement, writer = self._select_export(sql.SQL("({})").format(select), chosen, money_scale)
        facts = {**facts, "options": options.recorded(), "planner_rows": guess.rows}
        return await self._export([conn], [statement], writer, workspace, relative, identifier, snapshot,
                                  chosen, facts)

    async def _sample_by_blocks(
        self, conn: AsyncConn, source: sql.Composable, columns: list[Column], options: RowOptions,
        order_key: list[str], budget: RowBudget | None, facts: dict[str, Any],
    ) -> sql.Composable:
        """The slice's SELECT; a count sample of a large table reads some blocks only, if they hold enough rows."""
        names = [c.name for c in columns]
        percent = slicing.block_sample_percent(options, str(facts.get("relation_kind")),
                                               int(facts.get("estimated_rows") or -1))
        if percent is not None and options.sample_rows is not None:
            sampled = slicing.sliced_select(conn, source, names, options, order_key, budget, percent)
            if await slicing.bounded_count(conn, sampled, options.sample_rows) >= options.sample_rows:
                facts["sample_blocks_percent"] = percent
                return sampled
        return slicing.sliced_select(conn, source, names, options, order_key, budget)

    def _select_export(
        self, source: sql.Composable, columns: list[Column], money_scale: int
    ) -> tuple[sql.Composable, Writer]:
        """The COPY and writer landing the parenthesised query ``source`` in the source's format."""
        assert self._settings is not None
        if self._settings.format == "parquet":
            return self._parquet_export(source, columns, money_scale)
        if self._csv_is_direct(columns):
            return sql.SQL("COPY {} TO STDOUT (FORMAT csv, HEADER)").format(source), write_csv
        return self._csv_export(source, columns), write_csv

    def _parallel_worthy(self, conn: AsyncConn, relation: Relation) -> bool:
        """Two COPY streams pay off for a big plain table in CSV on PostgreSQL 14+ (TID range scans)."""
        assert self._settings is not None
        return (self._settings.format == "csv" and relation.kind == "r" and relation.size >= PARALLEL_MIN_BYTES
                and self._settings.pool_max_size >= 2 and conn.info.server_version >= 140000)

    async def _snapshot_helper(self, stack: contextlib.AsyncExitStack, conn: AsyncConn) -> AsyncConn | None:
        """A second pooled connection reading ``conn``'s snapshot, or None when none is free right now."""
        assert self._gate is not None and self._pool is not None and self._settings is not None
        if self._gate.locked():  # every slot is taken by other fetches: do not make them wait
            return None
        await self._gate.acquire()
        stack.callback(self._gate.release)
        try:
            helper = await stack.enter_async_context(self._pool.connection(timeout=HELPER_WAIT_SECONDS))
        except PoolTimeout:
            return None
        cursor = await conn.execute("SELECT pg_export_snapshot()")
        exported = await cursor.fetchone()
        assert exported is not None
        await stack.enter_async_context(helper.transaction())
        await helper.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(exported[0])))
        await helper.execute(session.BEGIN_READ, self._begin_params(True))
        return helper

    def _table_export(self, relation: Relation, money_scale: int) -> tuple[sql.Composable, Writer]:
        assert self._settings is not None
        source = catalog.relation_ident(relation)
        if self._settings.format == "parquet":
            return self._parquet_export(source, relation.columns, money_scale)
        if not self._csv_is_direct(relation.columns):
            return self._csv_export(source, relation.columns), write_csv
        if relation.kind == "r":  # the direct form skips the executor; views need a query
            return sql.SQL("COPY {} TO STDOUT (FORMAT csv, HEADER)").format(source), write_csv
        return sql.SQL("COPY (SELECT * FROM {}) TO STDOUT (FORMAT csv, HEADER)").format(source), write_csv

    def _csv_is_direct(self, columns: list[Column]) -> bool:
        """True when the CSV is the columns' PostgreSQL text as it is (no column needs another form)."""
        assert self._settings is not None
        if self._settings.csv_values == "postgresql":
            return True
        return all(csv_select(c.resolved, sql.Identifier("x")) is None for c in columns)

    def _csv_export(self, source: sql.Composable, columns: list[Column]) -> sql.Composable:
        """``COPY`` of ``source`` with each column in its analysis form, under its own name."""
        assert self._settings is not None
        aliases = [sql.Identifier(f"c{index}") for index in range(len(columns))]
        selects: list[sql.Composable] = []
        for column, alias in zip(columns, aliases, strict=True):
            form = csv_select(column.resolved, alias) if self._settings.csv_values == "analysis" else None
            selects.append(sql.SQL("{} AS {}").format(form or alias, sql.Identifier(column.name)))
        return sql.SQL("COPY (SELECT {} FROM {} AS q({})) TO STDOUT (FORMAT csv, HEADER)").format(
            sql.SQL(", ").join(selects), source, sql.SQL(", ").join(aliases))

    def _parquet_export(
        self, source: sql.Composable, columns: list[Column], money_scale: int
    ) -> tuple[sql.Composable, Writer]:
        # positional aliases: query results may repeat a column name
        aliases = [sql.Identifier(f"c{index}") for index in range(len(columns))]
        plans: list[ColumnPlan] = [plan_column(c.resolved, a, money_scale=money_scale)
                                   for c, a in zip(columns, aliases, strict=True)]
        statement = sql.SQL("COPY (SELECT {} FROM {} AS q({})) TO STDOUT (FORMAT csv)").format(
            sql.SQL(", ").join(p.select for p in plans), source, sql.SQL(", ").join(aliases))
        return statement, parquet_writer(plans)

    async def fetch_query(
        self, query: str, workspace: str, name: str, params: Any = None, *,
        options: RowOptions | dict[str, Any] | None = None, budget: RowBudget | None = None,
    ) -> str:
        """Land the result of a read-only ``query`` at ``<workspace>/<name>.<csv|parquet>``.

        Arbitrary SQL: the configured ``schemas`` do not apply, the role's privileges are the
        boundary. It runs as one statement in a read-only snapshot transaction that is rolled back,
        on a session reset before reuse; a role that can act outside the database is refused unless
        ``allow_privileged_queries: true`` (``docs/design/postgresql.md``, "Sessions").
        ``params`` are bound client-side (``%s`` / ``%(name)s`` placeholders).

        Args:
            query: one SELECT (or VALUES, TABLE, WITH ... SELECT) statement.
            workspace: the folder to land in.
            name: the landed file's name without extension (may contain ``/``).
            params: values for the placeholders, a sequence or a mapping.
            options: part of the result to land (columns, where, limit, sample; :class:`RowOptions`).
            budget: refuse a result over this many rows or bytes, before reading more than the budget.

        Returns:
            The landed file's absolute path (a dataset folder ``<name>/`` of Parquet parts when the planner
            expects ``part_bytes`` or more); its lineage record holds the query.

        Raises:
            ConfigurationError: the role may act outside the database.
            DataFetchError: the statement writes, returns no rows, or fails.
        """
        self._require_connected()
        assert self._settings is not None
        chosen = _row_options(options, self.source_id)
        relative = safe_relative_path(f"{name}.{self._settings.format}")
        async with self._read("query", name, pinned=False) as (conn, snapshot, _):
            await self._require_harmless_role(conn)
            text = _bind(conn, query, params)
            columns = await self._describe(conn, text)
            source = sql.SQL("({})").format(sql.SQL(text))  # noqa: S608 - the caller's own query
            facts = {"source_version": f"snapshot:{snapshot}", "query": query}
            if not chosen.is_empty() or budget is not None:
                landed = await self._land_slice(conn, source, columns, chosen, [], budget, workspace, relative,
                                                f"query:{name}", snapshot, facts)
                return str(landed.path)
            if await self._large_result(conn, source, name):
                return await self._fetch_dataset(conn, columns, source, f"query:{name}", snapshot, workspace,
                                                 relative.removesuffix(".parquet"), facts)
            statement, writer = self._select_export(source, columns, await _money_scale(conn, columns))
            landed = await self._export([conn], [statement], writer, workspace, relative, f"query:{name}",
                                        snapshot, columns, facts)
        if self._settings.format == "parquet":  # it was a dataset folder before: that one goes
            await asyncio.to_thread(parts.remove_plain_dataset, landed.path.parent,
                                    landed.path.name.removesuffix(".parquet"), self.source_id, f"query:{name}")
        return str(landed.path)

    async def _large_result(self, conn: AsyncConn, source: sql.Composable, name: str) -> bool:
        """Whether a query's result lands as a dataset folder: Parquet, and the planner expects ``part_bytes``
        or more (rows times width; a name with ``/`` lands as one file)."""
        assert self._settings is not None
        if self._settings.format != "parquet" or "/" in name:
            return False
        plan = await slicing.explain(conn, sql.SQL("SELECT * FROM {} AS da_row").format(source))
        return slicing.estimate(plan).bytes >= self._settings.part_bytes

    async def _require_harmless_role(self, conn: AsyncConn) -> None:
        """Refuse a role that could act outside the database, unless the source allows it."""
        assert self._settings is not None
        if self._settings.allow_privileged_queries:
            return
        cursor = await conn.execute(session.PRIVILEGED_ROLE, session.privileged_role_params())
        reasons = [row[0] for row in await cursor.fetchall()]
        if reasons:
            raise ConfigurationError(
                f"fetch_query refused: {'; '.join(reasons)}. A query could act outside the database "
                "with these privileges; connect with a least-privilege role (docs/connectors/postgresql.md, "
                "'A least-privilege role') or set allow_privileged_queries: true", source_id=self.source_id)

    async def _describe(self, conn: AsyncConn, text: str) -> list[Column]:
        fields = await asyncio.to_thread(describe, conn.pgconn, text.encode(), threading.Event())
        if not fields:
            raise DataFetchError("the statement returns no rows; only queries can be fetched "
                                 "(reads run in a read-only transaction)", source_id=self.source_id)
        names, oids, mods = (list(values) for values in zip(*fields, strict=True))
        cursor = await conn.execute(catalog.TYPES_OF_RESULT, [names, oids, mods])
        return [catalog.column_from_row(row) for row in await cursor.fetchall()]

    async def _export(
        self, conns: list[AsyncConn], statements: list[sql.Composable], writer: Writer, workspace: str,
        relative: str, identifier: str, snapshot: str, columns: list[Column], facts: dict[str, Any],
    ) -> LandedFile:
        """Run the COPY in worker threads that land the file; the loop stays free meanwhile."""
        texts = [statement.as_bytes(conns[0]) for statement in statements]
        provenance = {
            "source_type": self.type_name(), "source_uri": self._source_uri(identifier),
            "snapshot": snapshot, "sql": ";\n".join(text.decode() for text in texts), "format": self._format(),
            "columns": [{"name": c.name, "type": c.type} for c in columns], **facts,
        }
        cancelled = threading.Event()
        describe = self._describer(columns, identifier, writer) if self._settings and self._settings.profile else None
        tap = self._csv_tap(columns, identifier) if describe is not None and self._format() == "csv" else None
        work = asyncio.ensure_future(asyncio.to_thread(
            export_to_landing, [c.pgconn for c in conns], texts, writer, cancelled, workspace=workspace,
            relative=relative, source_id=self.source_id, identifier=identifier, provenance=provenance,
            describe=describe, tap=tap))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            cancelled.set()  # the threads stop at their next wait and the temporary is removed
            with contextlib.suppress(BaseException):
                await work
            raise
        finally:
            for conn in conns:
                if conn.pgconn.transaction_status == libpq.TransactionStatus.ACTIVE:
                    await _abandon(conn)

    def _format(self) -> str:
        assert self._settings is not None
        return self._settings.format

    def _describer(
        self, columns: list[Column], identifier: str, writer: Writer
    ) -> Callable[[int, int], dict[str, Any]]:
        """How the landed file is profiled (:mod:`connectors.profiling`); sensitive columns show no values.

        Parquet: from the batches the writer already holds; CSV: from its chunks as they are written
        (:meth:`_csv_tap`), or, when that parse failed, one streaming read of the landed file.
        """
        sensitive, source_types = self._profile_inputs(columns, identifier)
        if isinstance(writer, ParquetWrite):
            profiler = BackgroundProfiler(Profiler(writer.schema, source_types, sensitive))
            writer.on_batch, writer.on_end = profiler.add, profiler.close
            return lambda fd, block: profiler.result()
        if self._format() == "parquet":
            return partial(profile_parquet, source_types=source_types, sensitive=sensitive)
        types = {c.name: kind for c in columns if (kind := self._csv_type(c)) is not None}
        return partial(profile_csv, names=[c.name for c in columns], types=types, source_types=source_types,
                       sensitive=sensitive)

    def _profile_inputs(self, columns: list[Column], identifier: str) -> tuple[set[str], dict[str, str]]:
        """The sensitive columns (no values shown) and each column's source type."""
        assert self._settings is not None
        patterns = self._settings.sensitive_columns
        sensitive = {c.name for c in columns if is_sensitive(c.name, f"{identifier}.{c.name}", patterns)}
        return sensitive, {c.name: c.type for c in columns}

    def _csv_tap(self, columns: list[Column], identifier: str) -> CsvStreamProfile:
        """A profile of the CSV computed from its chunks as they are written (no second read)."""
        sensitive, source_types = self._profile_inputs(columns, identifier)
        types = {c.name: kind for c in columns if (kind := self._csv_type(c)) is not None}
        assert self._settings is not None
        return CsvStreamProfile([c.name for c in columns], types, source_types, sensitive,
                                exact=self._settings.profile == "exact")

    def _csv_type(self, column: Column) -> pa.DataType | None:
        """The Arrow type a column's CSV text parses as, for the profile (None: read it as text)."""
        assert self._settings is not None
        kind = plan_column(column.resolved, sql.Identifier("x")).read_type
        if pa.types.is_boolean(kind):
            return kind if self._settings.csv_values == "analysis" else None
        numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
        return kind if numeric or pa.types.is_date32(kind) else None

    def _source_uri(self, identifier: str) -> str:
        return f"{self._uri}/{quote(identifier, safe='')}"


# --- helpers ------------------------------------------------------------------


def _connection_params(settings: PostgreSQLSettings) -> tuple[str, dict[str, Any]]:
    """The DSN (or "") and keyword parameters; the password only ever travels as a keyword."""
    kwargs: dict[str, Any] = {
        "connect_timeout": max(2, math.ceil(settings.connect_timeout)),  # libpq's minimum is 2 s
        "application_name": "da-sources",
        "client_encoding": "UTF8",
        # a peer that vanishes mid-export is noticed in about a minute, not never
        "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
    }
    for key in ("host", "dbname", "user", "sslmode"):
        if getattr(settings, key) is not None:
            kwargs[key] = getattr(settings, key)
    if settings.dsn is None or "port" in settings.model_fields_set:
        kwargs["port"] = settings.port
    if settings.password is not None:
        kwargs["password"] = settings.password.reveal()
    return (settings.dsn.reveal() if settings.dsn is not None else ""), kwargs


def _public_uri(conninfo: str, kwargs: dict[str, Any]) -> str:
    """``postgresql://host:port/dbname``: where the data came from, never who or with what."""
    params = conninfo_to_dict(conninfo, **kwargs)
    host = str(params.get("host") or "localhost")
    return f"postgresql://{quote(host, safe='')}:{params.get('port') or 5432}/{quote(str(params.get('dbname', '')))}"


async def _abandon(conn: AsyncConn) -> None:
    """A COPY abandoned mid-stream: stop its statement on the server, and let the pool discard the connection.

    Closing the socket alone is not enough: the server notices only when it next sends, and a query
    that computes before its first row (a large join, a sort) keeps running until ``statement_timeout``.
    """
    with contextlib.suppress(Exception):  # a best effort: the close below happens anyway
        await conn.cancel_safe(timeout=CANCEL_TIMEOUT)
    await conn.close()


async def _configure_connection(conn: AsyncConn) -> None:
    # every transaction on a pooled connection starts as BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY
    await conn.set_isolation_level(IsolationLevel.REPEATABLE_READ)
    await conn.set_read_only(True)


def _item(relation: Relation) -> DataItem:
    # PostgreSQL keeps no modification time: say so (0) rather than give the listing's; `version` tracks changes
    return DataItem(name=relation.name, path=relation.identifier, size=relation.size,
                    modified_at=MODIFIED_AT_UNKNOWN, metadata=relation.metadata())


def _milliseconds(seconds: float | None) -> str | None:
    return None if seconds is None else f"{seconds * 1000:.0f}"


async def _money_scale(conn: AsyncConn, columns: list[Column]) -> int:
    """Digits after the point of ``money`` in this session's ``lc_monetary`` (2 unless a money column says)."""
    if not any(c.resolved.base == "money" or c.resolved.element == "money" for c in columns):
        return 2
    cursor = await conn.execute("SELECT pg_catalog.scale('0'::pg_catalog.money::pg_catalog.numeric)")
    row = await cursor.fetchone()
    return int(row[0]) if row else 2


def _row_options(options: RowOptions | dict[str, Any] | None, source_id: str) -> RowOptions:
    if isinstance(options, RowOptions):
        return options
    try:
        return RowOptions.model_validate(options or {})
    except ValidationError as exc:  # the field and the problem, never the value (a where may be long)
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"row options: {problems}", source_id=source_id) from None


async def _check_budget(conn: AsyncConn, select: sql.Composable, guess: slicing.Estimate,
                        budget: RowBudget | None) -> None:
    """Refuse a read over ``budget``: the planner's estimate first, then a count of at most the budget + 1."""
    if budget is None:
        return
    rows, exact = guess.rows, False
    if budget.max_rows is not None:
        rows, exact = await slicing.bounded_count(conn, select, budget.max_rows + 1), True
    slicing.check_budget(budget, rows, guess.width, exact)


def _bind(conn: AsyncConn, query: str, params: Any) -> str:
    text = query.strip().rstrip(";").strip()
    if params is None:
        return text
    return psycopg.AsyncClientCursor(conn).mogrify(text, params)
