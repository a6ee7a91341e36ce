"""The CSV profile computed from COPY chunks says what a read of the landed file says."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pyarrow as pa
import pytest

from connectors import profiling_stream
from connectors.profiling import profile_csv
from connectors.profiling_stream import CsvStreamProfile

NAMES = ["id", "note", "total"]
TYPES = {"id": pa.int64(), "total": pa.decimal128(10, 2)}


def rows(first: int, last: int) -> list[bytes]:
    """PostgreSQL-style CSV rows: a quoted newline, a quoted empty string (not null), nulls (empty)."""
    made = []
    for i in range(first, last):
        note = {0: '"line one\nline two"', 1: '""', 2: ""}.get(i % 5, f"n{i}")
        total = "" if i % 7 == 0 else f"{i}.25"
        made.append(f"{i},{note},{total}\n".encode())
    return made


def chunks(lines: list[bytes], per_chunk: int) -> list[bytes]:
    """Whole rows per chunk, as ``CopyOutStream.chunks`` gives them."""
    return [b"".join(lines[i:i + per_chunk]) for i in range(0, len(lines), per_chunk)]


def landed_profile(tmp_path: Path, lines: list[bytes]) -> dict[str, object]:
    path = tmp_path / "landed.csv"
    path.write_bytes(b"id,note,total\n" + b"".join(lines))
    fd = os.open(path, os.O_RDONLY)
    try:
        return profile_csv(fd, 1 << 20, NAMES, TYPES, {"id": "integer"}, {"secret"})
    finally:
        os.close(fd)


@pytest.mark.parametrize("block_bytes", [64, 1 << 20])  # many blocks of a few rows, or one block
def test_two_streams_in_blocks_profile_as_the_landed_file_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_bytes: int
) -> None:
    monkeypatch.setattr(profiling_stream, "BLOCK_BYTES", block_bytes)
    head, tail = rows(0, 300), rows(300, 500)
    tap = CsvStreamProfile(NAMES, TYPES, {"id": "integer"}, {"secret"})
    feeds = [tap.stream(header=True), tap.stream(header=False)]
    for chunk in [b"id,note,total\n" + chunks(head, 2)[0], *chunks(head, 2)[1:]]:
        feeds[0](bytearray(chunk))
    for chunk in chunks(tail, 1):
        feeds[1](memoryview(chunk))
    streamed = tap.result()
    assert streamed == landed_profile(tmp_path, head + tail)
    assert streamed is not None and streamed["rows"] == 500
    note = streamed["columns"][1]  # type: ignore[index]
    assert note["nulls"] == 100 and note["min"] == "" and note["max"] == "n99"
    assert note["examples"] == ["line one\nline two", ""] and note["distinct"] == 202  # 200 n's, the newline, ""
    assert streamed["columns"][2]["nulls"] == 72  # type: ignore[index]


def test_a_value_that_does_not_parse_as_its_type_gives_no_streamed_profile() -> None:
    tap = CsvStreamProfile(NAMES, TYPES)
    feed = tap.stream(header=False)
    feed(b"1,a,1.25\n")
    feed(b"two,b,2.25\n")
    feed(b"3,c,3.25\n")  # fed after the parser stopped: the feeder is never blocked
    assert tap.result() is None


def _slowed(monkeypatch: pytest.MonkeyPatch, gate: threading.Event, niceness: list[int]) -> None:
    """A parser that waits for ``gate`` before each block (and notes its thread's CPU priority)."""
    original = CsvStreamProfile._profile_block

    def slow(self: CsvStreamProfile, data: bytes, skip_header: bool) -> None:
        niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        gate.wait(30)
        original(self, data, skip_header)

    monkeypatch.setattr(CsvStreamProfile, "_profile_block", slow)
    monkeypatch.setattr(profiling_stream, "ALWAYS_PROFILED_BYTES", 24)  # two rows: room in the queue
    monkeypatch.setattr(profiling_stream, "QUEUED_CHUNKS", 2)
    monkeypatch.setattr(profiling_stream, "BLOCK_BYTES", 64)


def _feed_all(tap: CsvStreamProfile, lines: list[bytes]) -> threading.Thread:
    feed = tap.stream(header=False)
    feeder = threading.Thread(target=lambda: [feed(bytearray(c)) for c in chunks(lines, 1)], daemon=True)
    feeder.start()
    return feeder


def test_a_parser_behind_a_busy_cpu_leaves_chunks_out_and_never_holds_the_export(
        monkeypatch: pytest.MonkeyPatch) -> None:
    gate, niceness = threading.Event(), list[int]()
    _slowed(monkeypatch, gate, niceness)
    tap = CsvStreamProfile(NAMES, TYPES)
    feeder = _feed_all(tap, rows(0, 400))
    feeder.join(30)
    assert not feeder.is_alive(), "the export waited for its profile"
    gate.set()
    profile = tap.result()
    assert tap.partial and profile is not None and 0 < profile["rows"] < 400  # type: ignore[operator]
    assert niceness and set(niceness) == {19}  # the parser ran at the lowest priority


def test_an_exact_profile_waits_for_its_parser_and_describes_every_row(monkeypatch: pytest.MonkeyPatch) -> None:
    gate, niceness = threading.Event(), list[int]()
    _slowed(monkeypatch, gate, niceness)
    tap = CsvStreamProfile(NAMES, TYPES, exact=True)
    feeder = _feed_all(tap, rows(0, 400))
    feeder.join(0.5)
    assert feeder.is_alive()  # held by its parser, as it must be when every row is wanted
    gate.set()
    feeder.join(30)
    profile = tap.result()
    assert not tap.partial and profile is not None and profile["rows"] == 400
    assert set(niceness) == {os.getpriority(os.PRIO_PROCESS, 0)}  # the process's own priority
