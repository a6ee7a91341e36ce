"""Profiling while an export writes: CSV chunks parsed beside the export, Parquet batches profiled beside it.

A :class:`CsvStreamProfile` hands each COPY stream a ``feed`` (:meth:`CsvStreamProfile.stream`): the
stream's chunks go, in order, over a bounded queue to a parser thread of their own, which joins them
into blocks of about :data:`BLOCK_BYTES` (chunks hold whole rows, so blocks do too) and parses each
with one ``pyarrow.csv.read_csv`` on that thread; the batches go to one shared
:class:`~connectors.profiling.Profiler` under a lock (rows, nulls, min/max and the distinct sample do
not depend on the order streams are read in), while the server formats the next rows.

The profile never slows a big export down (``docs/design/profiling.md``): its parser threads run at
the lowest CPU priority, each stream's first :data:`ALWAYS_PROFILED_BYTES` are always profiled, and
past them a chunk that finds its parser's queue full is left out of the profile instead of waiting
(:attr:`CsvStreamProfile.partial`: the caller keeps the COPY's exact row count and records how many
rows the column figures describe). With ``exact``, every chunk waits for its parser.

Memory is bounded: at most :data:`QUEUED_CHUNKS` chunks (about 1 MiB each) wait per stream. When a
parse fails (a value that does not parse as its column's type, a row longer than :data:`BLOCK_BYTES`),
that parser drains its queue and :meth:`CsvStreamProfile.result` gives None: the caller profiles the
landed file as before.

A :class:`BackgroundProfiler` does the same for the Arrow batches a Parquet export already holds: the
profile's compute (min/max, the distinct sample) runs in its own thread while the writer encodes, with
at most :data:`QUEUED_BATCHES` batches waiting.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from connectors.profiling import Profiler

QUEUED_CHUNKS = 16
QUEUED_BATCHES = 4
QUEUED_GROUPS = 2  # BackgroundProfiler: row groups waiting for the profile
ALWAYS_PROFILED_BYTES = 16 << 20  # per stream: a small export's profile is always of every row
BLOCK_BYTES = 4 << 20  # a row over half of this fails the streamed parse (the landed file is profiled then)

Feed = Callable[[Any], None]
_PARSE = pacsv.ParseOptions(newlines_in_values=True)  # a quoted value may hold a newline (no cost measured)


class CsvStreamProfile:
    """One profile of a CSV written by one or more COPY streams (the first with a header row)."""

    def __init__(self, names: list[str], types: Mapping[str, pa.DataType],
                 source_types: Mapping[str, str] | None = None, sensitive: Iterable[str] = (),
                 exact: bool = False) -> None:
        self._names = names
        self._exact = exact
        self._schema = pa.schema([pa.field(n, types.get(n, pa.string())) for n in names])
        self._profiler = Profiler(self._schema, source_types, sensitive)
        self._positional = [f"c{index}" for index in range(len(names))]
        self._convert = pacsv.ConvertOptions(
            column_types={p: f.type for p, f in zip(self._positional, self._schema, strict=True)},
            null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False)
        self._lock = threading.Lock()
        self._threads: list[tuple[threading.Thread, queue.Queue[bytes | bytearray | None]]] = []
        self.failed = False
        self.partial = False  # chunks were left out: the column figures describe part of the rows

    def stream(self, header: bool) -> Feed:
        """Start a parser for one stream; the function that feeds it its chunks, in order.

        Args:
            header: Whether this stream starts with the header row (the first stream does).

        Returns:
            ``feed(chunk)``: call it with each chunk of the stream (whole rows) as it is written.
        """
        chunks: queue.Queue[bytes | bytearray | None] = queue.Queue(QUEUED_CHUNKS)
        thread = threading.Thread(target=self._parse, args=(chunks, header), daemon=True,
                                  name="da-profile")
        thread.start()
        self._threads.append((thread, chunks))
        waited = [0]  # bytes of this stream queued so far while waiting for room

        def feed(chunk: Any) -> None:
            if len(chunk) > BLOCK_BYTES:  # a row too long for the streamed parse: no copy of it is queued
                self.failed = True
            if self.failed:
                return
            data = chunk if isinstance(chunk, bytes | bytearray) else bytes(chunk)  # a bytearray: no copy
            if self._exact or waited[0] < ALWAYS_PROFILED_BYTES:
                waited[0] += len(data)
                chunks.put(data)
                return
            try:
                chunks.put_nowait(data)
            except queue.Full:  # the parser is behind: the export does not wait for it
                self.partial = True
        return feed

    def _parse(self, chunks: queue.Queue[bytes | bytearray | None], header: bool) -> None:
        """Parse the stream's chunks in blocks of about :data:`BLOCK_BYTES` (whole rows: chunks end on one)."""
        if not self._exact:
            _lowest_priority()
        block: list[bytes | bytearray] = []
        size, ended = 0, False
        try:
            while not ended:
                chunk = chunks.get()
                ended = chunk is None
                if chunk is not None and not self.failed:
                    block.append(chunk)
                    size += len(chunk)
                if block and (ended or size >= BLOCK_BYTES):
                    self._profile_block(b"".join(block), skip_header=header)
                    block, size, header = [], 0, False
        except (pa.ArrowException, ValueError, OSError):  # profiled from the landed file instead
            self.failed = True
            while not ended:  # the feeder never blocks on a parser that stopped
                ended = chunks.get() is None

    def _profile_block(self, data: bytes, skip_header: bool) -> None:
        """One block of whole rows, parsed on this thread alone (pyarrow's thread pool costs CPU, gains none)."""
        read = pacsv.ReadOptions(column_names=self._positional, skip_rows=1 if skip_header else 0,
                                 block_size=len(data) + 1, use_threads=False)
        table = pacsv.read_csv(pa.BufferReader(data), read_options=read, parse_options=_PARSE,
                               convert_options=self._convert)
        with self._lock:
            for batch in table.to_batches():
                self._profiler.add(pa.RecordBatch.from_arrays(batch.columns, schema=self._schema))

    def result(self) -> dict[str, Any] | None:
        """End every stream and wait for its parser; the profile, or None when a parse failed.

        Returns:
            The profile of every stream, or None (the file is then profiled after landing).
        """
        self.close()
        return None if self.failed else self._profiler.result()

    def close(self) -> None:
        """End the streams (after the last chunk, or when the export failed) and wait for the parsers."""
        for thread, chunks in self._threads:
            chunks.put(None)
            thread.join()
        self._threads = []


def _lowest_priority() -> None:
    """Let this thread run only on CPU nothing else wants (Linux: a thread is a task with its own nice)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class BackgroundProfiler:
    """A :class:`Profiler` fed from another thread: :meth:`add` queues a batch, :meth:`result` waits for all."""

    def __init__(self, profiler: Profiler) -> None:
        self._profiler = profiler
        # Parquet hands it whole row groups (about 8 MiB each): two queued bound the memory it holds
        self._batches: queue.Queue[pa.RecordBatch | pa.Table | None] = queue.Queue(QUEUED_GROUPS)
        self._thread: threading.Thread | None = threading.Thread(target=self._run, daemon=True, name="da-profile")
        self._thread.start()
        self.failed = False

    def _run(self) -> None:
        while (batch := self._batches.get()) is not None:
            if not self.failed:
                try:
                    self._profiler.add(batch)
                except (pa.ArrowException, ValueError, TypeError):
                    self.failed = True

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Queue ``batch`` (waits while :data:`QUEUED_BATCHES` are queued).

        Args:
            batch: Rows of the profiler's schema.
        """
        self._batches.put(batch)

    def close(self) -> None:
        """No more batches: wait for the queued ones (idempotent; call it when the export ends, however)."""
        if self._thread is not None:
            self._batches.put(None)
            self._thread.join()
            self._thread = None

    def result(self) -> dict[str, Any]:
        """The profile of every batch added, or why there is none.

        Returns:
            The profile, or ``{"skipped": reason}`` when a batch failed.
        """
        self.close()
        return {"skipped": "not profiled (a batch failed)"} if self.failed else self._profiler.result()
