"""Streaming ``COPY ... TO STDOUT`` from libpq into a landing file, in a worker thread.

PostgreSQL sends one CopyData message per row. Going through psycopg's async
``Copy`` costs a coroutine round trip per row, which caps an export far below
what the server produces; here a worker thread drives the connection's libpq
handle directly (``PGconn.get_copy_data``), gathers rows into ~1 MiB chunks
and writes them to the landing file, while the event loop stays free. The
caller holds the connection exclusively (checked out of the pool) and does not
touch it until the thread returns.

The statement is sent with the extended query protocol, which accepts exactly
one statement: a query that smuggles in ``; COMMIT; DROP ...`` is refused by
the server instead of run.

Example:
    >>> stream = CopyOutStream(conn.pgconn, b"COPY t TO STDOUT (FORMAT csv)", threading.Event())
    >>> stream.start()
    >>> for chunk in stream.chunks():
    ...     land.write(chunk)
"""

from __future__ import annotations

import queue
import select
import tempfile
import threading
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg import OperationalError
from psycopg import errors as pg_errors
from psycopg import pq as libpq

from connectors.landing.atomic import LandedFile, Landing, landing
from connectors.landing.progress import report_progress
from connectors.postgresql.columns import ColumnPlan, arrow_schema, final_batches
from connectors.profiling_stream import CsvStreamProfile, Feed

# Internal to the package: its public surface is the connector.
__all__: list[str] = []

CHUNK_BYTES = 1 << 20  # rows gathered per write: few syscalls, small and bounded memory
# Parquet: the COPY's rows are parsed by pyarrow a batch of whole rows at a time (PARSE_BATCH_BYTES,
# or one row when it is bigger), in blocks of at least CSV_BLOCK_BYTES, and never smaller than the
# largest row seen: pyarrow cannot parse a value that spans more than two blocks. Small blocks keep the
# parse-ahead bounded (16 MiB blocks pushed the peak RSS past 300 MiB); batches are gathered into row
# groups of a useful size before writing.
CSV_BLOCK_BYTES = 2 << 20
PARSE_BATCH_BYTES = 8 << 20
ROW_GROUP_BYTES = 8 << 20
# A wide table's row groups hold at least this much per column (up to MAX_ROW_GROUP_BYTES): a column chunk
# of a few kB costs Parquet more in page and chunk overhead than in its values (900 columns: 2x the CPU).
ROW_GROUP_COLUMN_BYTES = 32 << 10
MAX_ROW_GROUP_BYTES = 32 << 20
POLL_SECONDS = 0.2  # how often a waiting reader notices cancellation
PREFETCH_CHUNKS = 2  # Parquet: chunks read ahead while the previous one is parsed and written
PROFILE_MAX_ROW_BYTES = 8 << 20  # a file with a bigger row is not profiled: its values would cost memory


T = TypeVar("T")


class CopyCancelled(Exception):
    """The caller gave up (task cancelled); the COPY was abandoned mid-stream."""


class _LibpqSession:
    """Blocking use of a non-blocking libpq connection from a worker thread, cancellable."""

    def __init__(self, pgconn: Any, cancelled: threading.Event) -> None:
        self._pgconn = pgconn
        self._cancelled = cancelled

    def _flush(self) -> None:
        while self._pgconn.flush() != 0:
            self._wait(want_write=True)

    def _wait(self, want_write: bool = False) -> None:
        fileno = self._pgconn.socket
        while not self._cancelled.is_set():
            readable, writable, _ = select.select(
                [] if want_write else [fileno], [fileno] if want_write else [], [], POLL_SECONDS
            )
            if readable or writable:
                if readable:
                    self._pgconn.consume_input()
                return
        raise CopyCancelled("the export was cancelled")

    def _next_result(self) -> Any:
        self._pgconn.consume_input()
        while self._pgconn.is_busy():
            self._wait()
        return self._pgconn.get_result()

    def _drain_results(self, result: Any) -> Any:
        """Read results to the end of the statement; raise the server's error, else the last result."""
        error: Exception | None = None
        last = None
        while result is not None:
            if result.status == libpq.ExecStatus.FATAL_ERROR and error is None:
                error = pg_errors.error_from_result(result, encoding="utf-8")
            last = result
            result = self._next_result()
        if error is not None:
            raise error
        return last


class CopyOutStream(_LibpqSession):
    """One ``COPY ... TO STDOUT`` on a libpq connection the caller holds exclusively.

    Attributes:
        rows: the row count the server reported, once the stream has ended.
        largest_row: the size of the largest row (one CopyData message) received so far.
    """

    def __init__(self, pgconn: Any, statement: bytes, cancelled: threading.Event) -> None:
        super().__init__(pgconn, cancelled)
        self._statement = statement
        self.cancelled = cancelled
        self.rows = 0
        self.largest_row = 0

    def start(self) -> None:
        """Send the statement and wait until the server starts copying (or raise its error)."""
        self._pgconn.send_query_params(self._statement, None)
        self._flush()
        result = self._next_result()
        if result is not None and result.status == libpq.ExecStatus.COPY_OUT:
            return
        self._drain_results(result)
        raise OperationalError("the server did not start a COPY for the statement")

    def chunks(self, size: int = CHUNK_BYTES) -> Iterator[bytearray | memoryview]:
        """The copied bytes in chunks of about ``size``, each made of whole rows; checks the outcome at the end.

        A row of ``size`` or more comes as its own chunk, without a copy: a big
        value costs the libpq buffer and this one, not a third.
        """
        get = self._pgconn.get_copy_data
        buffer = bytearray()
        while True:
            nbytes, data = get(1)  # one row per call: this loop is kept lean (a third of the export's CPU)
            if nbytes > 0:
                if nbytes > self.largest_row:
                    self.largest_row = nbytes
                if nbytes >= size:
                    if buffer:
                        yield buffer
                        buffer = bytearray()
                    if self._cancelled.is_set():
                        raise CopyCancelled("the export was cancelled")
                    held = [data]
                    del data
                    yield held.pop()  # this frame keeps no reference: the consumer frees it when done
                    continue
                buffer += data
                if len(buffer) >= size:
                    if self._cancelled.is_set():  # data may flow without a pause: check per chunk too
                        raise CopyCancelled("the export was cancelled")
                    yield buffer
                    buffer = bytearray()
            elif nbytes == 0:
                self._wait()
            elif nbytes == -1:
                break
            else:
                raise OperationalError(self._error_message())
        if buffer:
            yield buffer
        last = self._drain_results(self._next_result())
        self.rows = (last.command_tuples or 0) if last is not None else 0

    def _error_message(self) -> str:
        message = self._pgconn.get_error_message()
        return bytes(message).decode("utf-8", "replace") if message else "the connection broke"


def describe(pgconn: Any, query: bytes, cancelled: threading.Event) -> list[tuple[str, int, int]]:
    """``(name, type oid, typmod)`` of each result column of ``query``, without running it.

    The query is only prepared (as the unnamed statement), so a write is not
    executed here; it fails later, in the read-only transaction.
    """
    session = _LibpqSession(pgconn, cancelled)
    pgconn.send_prepare(b"", query)
    session._flush()
    session._drain_results(session._next_result())
    pgconn.send_describe_prepared(b"")
    session._flush()
    result = session._drain_results(session._next_result())
    return [
        (bytes(result.fname(i)).decode(), result.ftype(i), result.fmod(i)) for i in range(result.nfields)
    ]


def prefetched(chunks: Iterator[T], cancelled: threading.Event, depth: int = PREFETCH_CHUNKS,
               name: str = "da-copy-read") -> Generator[T, None, None]:
    """``chunks``, read by a thread of their own up to ``depth`` ahead of the consumer.

    A Parquet export parses and encodes a chunk while the server formats the next rows: reading in
    the same thread left the server waiting for every parse (the socket's buffer full). Memory grows by
    at most ``depth`` chunks. The thread is the only user of the connection until it ends; it has ended
    when this generator returns, raises or is closed: a consumer that stops early closes it (``with
    contextlib.closing(...)``), which sets ``cancelled``, so the reader abandons the COPY at its next
    chunk or wait, before the caller touches the connection again. A generator left unfinished is closed
    by the thread (so a prefetched stage over another one ends that one's thread too).
    """
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)

    def put(item: tuple[str, Any]) -> bool:
        while not cancelled.is_set():
            try:
                handoff.put(item, timeout=POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for chunk in chunks:
                if not put(("chunk", chunk)):
                    return
            put(("end", None))
        except BaseException as exc:  # handed to the consumer, raised there
            put(("error", exc))
        finally:
            if isinstance(chunks, Generator):
                chunks.close()

    reader = threading.Thread(target=read, name=name, daemon=True)
    reader.start()
    ended = False
    try:
        while True:
            try:
                kind, value = handoff.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if reader.is_alive() or not handoff.empty():
                    continue
                raise CopyCancelled("the export was cancelled") from None  # the reader gave up: cancelled
            if kind != "chunk":
                ended = True
                if kind == "error":
                    raise value
                return
            yield value
            del value
    finally:
        if not ended:
            cancelled.set()
        reader.join()


Writer = Callable[[CopyOutStream, Landing], None]


def write_csv(stream: CopyOutStream, land: Landing, feed: Feed | None = None) -> None:
    """Land the COPY's bytes as they come: the server already wrote the CSV (``feed``: also to a profile)."""
    for chunk in stream.chunks():
        land.write(chunk)
        if feed is not None:
            feed(chunk)
        report_progress(land.identifier, land.bytes_written, None)


class _LandingSink:
    """A write-only file over a :class:`Landing`, for ``pyarrow.parquet.ParquetWriter``."""

    closed = False

    def __init__(self, land: Landing) -> None:
        self._land = land

    def write(self, data: bytes) -> int:
        self._land.write(data)
        return len(data)

    def tell(self) -> int:
        return self._land.bytes_written

    def flush(self) -> None:
        report_progress(self._land.identifier, self._land.bytes_written, None)

    def close(self) -> None:
        self.closed = True


class ParquetWrite:
    """The writer :func:`parquet_writer` returns: a :data:`Writer` that also hands each final batch to
    ``on_batch`` (the profile is computed from the batches in hand, without reading the file again)."""

    def __init__(self, schema: pa.Schema, write: Callable[[CopyOutStream, Landing, ParquetWrite], None]) -> None:
        self.schema = schema
        self.on_batch: Callable[[pa.Table], None] | None = None  # each row group, as written
        self.on_end: Callable[[], None] | None = None  # called when the write ends, whether or not it failed
        self._write = write

    def __call__(self, stream: CopyOutStream, land: Landing) -> None:
        try:
            self._write(stream, land, self)
        finally:
            if self.on_end is not None:
                self.on_end()


def parquet_writer(plans: list[ColumnPlan]) -> ParquetWrite:
    """A writer that parses the COPY's CSV with pyarrow and writes Parquet, in row groups of ~8 MiB
    (:func:`row_group_bytes`: more for a wide table), dictionary-encoding the columns whose values repeat.

    Memory is bounded by the batch (8 MiB) or by a small multiple of the largest row, whichever
    is bigger: a row is never split, and a row bigger than the batch is parsed and written on its
    own (about 6x the largest row at the peak: ``docs/connectors/postgresql.md``, "Large values").
    """
    schema = arrow_schema(plans)
    statistics = statistics_columns(schema)

    def write(stream: CopyOutStream, land: Landing, owner: ParquetWrite) -> None:
        sink = _LandingSink(land)
        writer: pq.ParquetWriter | None = None
        pending: list[pa.RecordBatch] = []
        pending_bytes = 0
        group_bytes = row_group_bytes(len(plans))

        def flush() -> None:
            nonlocal writer, pending_bytes
            group = pa.Table.from_batches(pending, schema)
            if writer is None:  # opened on the first row group, which tells which columns repeat values
                writer = pq.ParquetWriter(sink, schema, write_statistics=statistics,
                                          use_dictionary=dictionary_columns(group))
            writer.write_table(group)
            if owner.on_batch is not None and stream.largest_row <= PROFILE_MAX_ROW_BYTES:
                owner.on_batch(group)  # past that, the profile is skipped (memory bound)
            pending.clear()
            pending_bytes = 0

        try:
            with closing(parsed_batches(stream, plans, schema)) as batches:
                for batch, size in batches:
                    pending.append(batch)
                    pending_bytes += size
                    del batch
                    if pending_bytes >= group_bytes:
                        flush()
            if pending:
                flush()
            if writer is None:  # no rows: the file still holds the schema
                writer = pq.ParquetWriter(sink, schema, write_statistics=statistics)
        finally:
            if writer is not None:
                writer.close()

    return ParquetWrite(schema, write)


def parsed_batches(stream: CopyOutStream, plans: list[ColumnPlan],
                   schema: pa.Schema) -> Generator[tuple[pa.RecordBatch, int], None, None]:
    """The COPY's rows as final batches of ``schema``, each with its size in memory.

    Three threads: one reads the COPY (:func:`prefetched`), one parses what it read, and the caller's
    encodes Parquet; a 900-column table spent as long parsing as encoding, one after the other. Close
    it (``contextlib.closing``) to end both threads.
    """
    names = [f"c{index}" for index in range(len(plans))]
    convert = csv_convert_options(plans, names)
    parse = pacsv.ParseOptions(newlines_in_values=True)
    final = final_batches(plans, schema)

    def parsed() -> Generator[tuple[pa.RecordBatch, int], None, None]:
        with closing(prefetched(stream.chunks(PARSE_BATCH_BYTES), stream.cancelled)) as chunks:
            for rows in chunks:
                table = parse_rows(rows, stream.largest_row, names, parse, convert)
                del rows
                for batch in table.to_batches():
                    yield final(batch), batch.get_total_buffer_size()

    return prefetched(parsed(), stream.cancelled, depth=1, name="da-copy-parse")


def csv_convert_options(plans: list[ColumnPlan], names: list[str]) -> pacsv.ConvertOptions:
    """How pyarrow reads the COPY's CSV of ``plans`` (columns named ``names``) into their read types."""
    return pacsv.ConvertOptions(
        column_types={name: plan.read_type for name, plan in zip(names, plans, strict=True)},
        null_values=[""],  # COPY writes NULL as an unquoted empty field, '' as ""
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        true_values=["t"],
        false_values=["f"],
    )


def parse_rows(rows: bytearray | memoryview, largest_row: int, names: list[str], parse: pacsv.ParseOptions,
               convert: pacsv.ConvertOptions) -> pa.Table:
    """Whole CSV rows parsed by pyarrow, in this thread.

    One thread: the export already runs the server, a reader and this writer; pyarrow's parallel parse
    cost a third more CPU in all (thread hand-offs) for no gain in time on two cores.
    """
    block = max(CSV_BLOCK_BYTES, largest_row + 1)  # no value may span more than two blocks
    read = pacsv.ReadOptions(column_names=names, block_size=block, use_threads=False)
    return pacsv.read_csv(pa.py_buffer(rows), read_options=read, parse_options=parse, convert_options=convert)


def row_group_bytes(columns: int) -> int:
    """The in-memory size a row group is gathered to: 8 MiB, more for a table of over 256 columns."""
    return min(MAX_ROW_GROUP_BYTES, max(ROW_GROUP_BYTES, columns * ROW_GROUP_COLUMN_BYTES))


def dictionary_columns(group: pa.Table) -> list[str]:
    """The columns worth Parquet's dictionary encoding, judged on a file's first row group.

    Those whose values repeat (at most half of them distinct) and dictionary (enum) columns. A column of
    distinct values (a key, a timestamp, a hash) gains nothing from a dictionary, and building one cost
    as much CPU as the rest of the write: pyarrow's fallback to plain values comes only past a 1 MiB
    dictionary, after most of a row group. Nested columns are written plain.
    """
    chosen = []
    for field, column in zip(group.schema, group.columns, strict=True):
        kind = field.type
        if pa.types.is_dictionary(kind):
            chosen.append(field.name)
        elif not pa.types.is_nested(kind) and group.num_rows > 0 and 2 * _distinct(column) <= group.num_rows:
            chosen.append(field.name)
    return chosen


def _distinct(column: pa.ChunkedArray) -> int:
    try:
        return int(pc.count_distinct(column, mode="all").as_py())
    except pa.ArrowNotImplementedError:  # a type pyarrow cannot hash: written plain
        return len(column)


def statistics_columns(schema: pa.Schema) -> list[str]:
    """Columns that get min/max statistics: fixed-width ones (numbers, dates, decimals...).

    pyarrow's min/max of a string or binary value costs about five times the
    value (a 64 MiB text took 460 MiB to write with them, 80 MiB without), and
    min/max of long texts rarely prunes anything.
    """
    return [f.name for f in schema if pa.types.is_primitive(f.type) or pa.types.is_decimal(f.type)
            or pa.types.is_dictionary(f.type)]


def export_to_landing(
    pgconns: list[Any], statements: list[bytes], writer: Writer, cancelled: threading.Event, *,
    workspace: str, relative: str, source_id: str, identifier: str, provenance: dict[str, Any],
    describe: Callable[[int, int], dict[str, Any]] | None = None, tap: CsvStreamProfile | None = None,
) -> LandedFile:
    """Run the COPY ``statements`` and land their output, in order, at ``relative``.

    One statement goes through ``writer``. Several (CSV only) are the ranges
    of one table read in one exported snapshot: the first streams into the
    landing file while the others, each on its own connection and thread,
    spill to unnamed temporary files that are appended in order afterwards.
    The provenance record gets ``row_count`` from the servers' COPY tags, and ``profile`` from
    ``describe`` (given the landed temporary's descriptor). On any error the temporary is removed
    by the landing. ``tap`` (CSV only): the streams' chunks are profiled as they are written
    (:mod:`connectors.profiling_stream`); ``describe`` then runs only when that failed. A tap that
    left chunks out (its parser behind a busy CPU) gives a profile whose ``rows`` is the COPY's and
    whose ``profiled_rows`` says how many rows its column figures describe.
    """
    with landing(workspace, relative, source_id=source_id, identifier=identifier) as land, ExitStack() as taps:
        if tap is not None:
            taps.callback(tap.close)  # on a failure too: its parser threads end
        if len(pgconns) == 1:
            stream = CopyOutStream(pgconns[0], statements[0], cancelled)
            stream.start()
            if tap is not None and writer is write_csv:
                write_csv(stream, land, tap.stream(header=True))
            else:
                writer(stream, land)
            rows, largest = stream.rows, stream.largest_row
        else:
            rows, largest = _parallel_csv(pgconns, statements, land, cancelled, Path(workspace), tap)
        streamed = tap.result() if tap is not None else None
        if streamed is not None and tap is not None and tap.partial:  # rows stay exact; the figures say of how many
            streamed = {**streamed, "rows": rows, "profiled_rows": streamed["rows"]}
        if streamed is not None:
            return land.commit(provenance={**provenance, "row_count": rows, "profile": streamed})
        described = {"profile": _profile(describe, land.fd, largest)} if describe is not None else {}
        return land.commit(provenance={**provenance, "row_count": rows, **described})


def _profile(describe: Callable[[int, int], dict[str, Any]], fd: int, largest_row: int) -> dict[str, Any]:
    """The landed file's profile; a file that cannot be profiled in bounded memory still lands, saying so."""
    if largest_row > PROFILE_MAX_ROW_BYTES:
        return {"skipped": f"a row of {largest_row} bytes: rows over {PROFILE_MAX_ROW_BYTES} bytes are not profiled"}
    try:
        return describe(fd, max(CSV_BLOCK_BYTES, 2 * largest_row + 1))
    except (pa.ArrowException, ValueError) as exc:  # the type only: a parse error's text may quote a value
        return {"skipped": f"not profiled ({type(exc).__name__})"}


def _parallel_csv(
    pgconns: list[Any], statements: list[bytes], land: Landing, cancelled: threading.Event, spill_dir: Path,
    tap: CsvStreamProfile | None = None,
) -> tuple[int, int]:
    """Rows copied, and the largest row's size (each stream profiled as it comes, with a ``tap``)."""
    with ThreadPoolExecutor(len(pgconns) - 1, thread_name_prefix="da-copy") as pool, ExitStack() as stack:
        # O_TMPFILE: no name, gone when closed or when the process dies
        spills = [stack.enter_context(tempfile.TemporaryFile(dir=spill_dir)) for _ in pgconns[1:]]
        feeds = [tap.stream(header=index == 0) if tap is not None else None for index in range(len(pgconns))]
        futures = [pool.submit(_copy_to_spill, *job, cancelled)
                   for job in zip(pgconns[1:], statements[1:], spills, feeds[1:], strict=True)]
        for future in futures:
            future.add_done_callback(lambda done: _stop_on_failure(done, cancelled))
        try:
            head = CopyOutStream(pgconns[0], statements[0], cancelled)
            head.start()
            write_csv(head, land, feeds[0])
        except BaseException:
            cancelled.set()
            wait(futures)
            _raise_helper_failure(futures)  # a helper's own error explains the head's cancellation
            raise
        rows = head.rows + sum(future.result()[0] for future in futures)
        largest = max([head.largest_row, *(future.result()[1] for future in futures)])
        for spill in spills:
            spill.seek(0)
            while chunk := spill.read(CHUNK_BYTES):
                land.write(chunk)
        return rows, largest


def _stop_on_failure(done: Future[tuple[int, int]], cancelled: threading.Event) -> None:
    if done.exception() is not None:
        cancelled.set()  # no point streaming the head when a tail failed


def _copy_to_spill(pgconn: Any, statement: bytes, spill: Any, feed: Feed | None,
                   cancelled: threading.Event) -> tuple[int, int]:
    stream = CopyOutStream(pgconn, statement, cancelled)
    stream.start()
    for chunk in stream.chunks():
        spill.write(chunk)
        if feed is not None:
            feed(chunk)
    return stream.rows, stream.largest_row


def _raise_helper_failure(futures: list[Future[tuple[int, int]]]) -> None:
    for future in futures:
        error = future.exception()
        if error is not None and not isinstance(error, CopyCancelled):
            raise error
