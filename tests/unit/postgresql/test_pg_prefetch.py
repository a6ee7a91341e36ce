"""``prefetched``: a Parquet export reads the COPY's next chunks while it parses the last (no server)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import closing

import pytest

from connectors.postgresql.export import CopyCancelled, prefetched

WAIT = 10  # seconds a liveness wait may take on a loaded machine; not a timing assertion


def counting(produced: list[int], ready: threading.Event, cancelled: threading.Event,
             count: int | None = None) -> Iterator[bytearray]:
    """Chunks b"0", b"1"... (forever when ``count`` is None); ``ready`` once three are produced."""
    index = 0
    while count is None or index < count:
        if cancelled.is_set():  # as CopyOutStream.chunks does at each chunk
            raise RuntimeError("cancelled")
        produced.append(index)
        if len(produced) >= 3:
            ready.set()
        yield bytearray(str(index).encode())
        index += 1


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "da-copy-read"]


def test_chunks_arrive_in_order_and_the_reader_ends() -> None:
    cancelled, ready = threading.Event(), threading.Event()
    assert [bytes(c) for c in prefetched(counting([], ready, cancelled, 5), cancelled)] == [
        b"0", b"1", b"2", b"3", b"4"]
    assert not cancelled.is_set()
    assert reader_threads() == []


def test_the_reader_runs_ahead_while_the_consumer_holds_a_chunk() -> None:
    """The server is not kept waiting for the parse: with a depth of 2, chunks 1 and 2 are read meanwhile."""
    cancelled, ready, produced = threading.Event(), threading.Event(), []
    with closing(prefetched(counting(produced, ready, cancelled, 10), cancelled, depth=2)) as chunks:
        assert bytes(next(chunks)) == b"0"
        assert ready.wait(WAIT), f"only {produced} were read while the first chunk was held"
        assert len(produced) <= 4  # bounded: the queue's depth, and one in the reader's hands
        assert [bytes(c) for c in chunks] == [str(i).encode() for i in range(1, 10)]


def test_a_consumer_that_stops_early_cancels_and_the_reader_has_ended_when_closed() -> None:
    """The caller may reuse the connection (abandon the COPY) only once the reader no longer touches it."""
    cancelled, ready = threading.Event(), threading.Event()
    chunks = prefetched(counting([], ready, cancelled), cancelled)
    assert bytes(next(chunks)) == b"0"
    chunks.close()
    assert cancelled.is_set()
    assert reader_threads() == []


def test_the_readers_error_is_raised_in_the_consumer() -> None:
    def failing() -> Iterator[bytearray]:
        yield bytearray(b"0")
        raise ValueError("the connection broke")

    cancelled = threading.Event()
    with pytest.raises(ValueError, match="connection broke"):
        list(prefetched(failing(), cancelled))
    assert reader_threads() == []


def test_a_cancellation_from_outside_while_the_consumer_waits_ends_both() -> None:
    """The export's task cancelled (``cancelled`` set by the connector) while the consumer waits for a chunk:
    the reader gives up handing it over, and the consumer must not wait for it forever."""
    cancelled, release = threading.Event(), threading.Event()

    def stalled() -> Iterator[bytearray]:
        yield bytearray(b"0")
        release.wait(WAIT)  # the server is slow to send the next rows
        yield bytearray(b"1")

    chunks = prefetched(stalled(), cancelled, depth=1)
    assert bytes(next(chunks)) == b"0"
    cancelled.set()
    release.set()
    with pytest.raises(CopyCancelled):
        next(chunks)
    assert reader_threads() == []


def test_a_stage_over_a_stage_closes_the_inner_one_and_both_threads_end() -> None:
    """The parse stage reads from the COPY's read-ahead (``export.parsed_batches``): closing the outer stage
    closes the inner generator from the outer thread, so the inner reader has ended too, even while
    someone else still holds the inner generator (no reliance on garbage collection)."""
    cancelled, ready, closed = threading.Event(), threading.Event(), []

    def parsing(chunks: Iterator[bytearray]) -> Iterator[bytes]:
        try:
            for chunk in chunks:
                yield bytes(chunk) * 2
        finally:
            closed.append(True)

    inner = prefetched(counting([], ready, cancelled), cancelled)
    stage = parsing(inner)
    outer = prefetched(stage, cancelled, depth=1, name="da-copy-parse")
    assert next(outer) == b"00"
    outer.close()
    assert closed == [True] and cancelled.is_set()
    assert reader_threads() == [] and [t for t in threading.enumerate() if t.name == "da-copy-parse"] == []
    del stage, inner
