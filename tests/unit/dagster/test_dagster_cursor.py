"""The sensor's pure decision: listing + cursor -> work + new cursor.

docs/RELIABILITY.md row 24.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.base import DataItem
from connectors.syncing.cursor import (
    BUCKETS,
    Cursor,
    bucket_of,
    decode_cursor,
    drop_known,
    encode_cursor,
    plan_tick,
)

T0 = 1_700_000_000


def item(path: str, modified_at: int, version: str | None = None) -> DataItem:
    return DataItem(name=path, path=path, size=10, modified_at=modified_at,
                    metadata={"version": version or f"{modified_at}"})


def paths(plan_work: list[DataItem]) -> list[str]:
    return sorted(i.path for i in plan_work)


def tick(items: list[DataItem], cursor: Cursor, max_items: int = 1000, lookback: int = 900):
    plan = plan_tick(items, cursor, max_items=max_items, lookback=lookback)
    # every cursor survives storage unchanged
    assert decode_cursor(encode_cursor(plan.cursor)) == plan.cursor
    return plan


def distinct_buckets(names: list[str]) -> None:
    assert len({bucket_of(n) for n in names}) == len(names), "test names share a bucket; rename them"


def test_sequence_of_ticks_requests_exactly_the_new_and_changed_items() -> None:
    names = ["sales.csv", "customers.csv", "old/archive.csv", "db.table", "late.csv", "ancient.csv"]
    distinct_buckets(names)
    listing = [item("sales.csv", T0 + 5000), item("customers.csv", T0 + 4000),
               item("old/archive.csv", T0), item("db.table", 0, version="snap-1")]

    first = tick(listing, Cursor())
    assert paths(first.work) == ["customers.csv", "db.table", "old/archive.csv", "sales.csv"]

    same = tick(listing, first.cursor)
    assert same.work == [] and same.backlog == 0

    listing.append(item("new.csv", T0 + 6000))
    added = tick(listing, same.cursor)
    assert paths(added.work) == ["new.csv"]

    listing[0] = item("sales.csv", T0 + 7000)  # overwritten: new version and time
    overwritten = tick(listing, added.cursor)
    assert paths(overwritten.work) == ["sales.csv"]

    # visible only now, with a last-modified time older than items seen before (within lookback)
    listing.append(item("late.csv", T0 + 6500))
    late = tick(listing, overwritten.cursor)
    assert paths(late.work) == ["late.csv"]

    # visible only now, far older than the lookback window (a file moved in with its old mtime)
    listing.append(item("ancient.csv", T0 - 86_400))
    ancient = tick(listing, late.cursor)
    assert paths(ancient.work) == ["ancient.csv"]

    # a table whose snapshot changed while its timestamp did not
    listing[3] = item("db.table", 0, version="snap-2")
    table = tick(listing, ancient.cursor)
    assert paths(table.work) == ["db.table"]

    assert tick(listing, table.cursor).work == []


def test_a_repeated_tick_with_the_old_cursor_asks_for_the_same_work() -> None:
    listing = [item(f"f{i}.csv", T0 + i) for i in range(50)]
    first = tick(listing, Cursor())
    again = tick(listing, Cursor())
    assert [i.path for i in first.work] == [i.path for i in again.work]


def test_work_per_tick_is_bounded_and_the_backlog_drains_without_loss_or_repeats() -> None:
    rng = random.Random(7)
    listing = [item(f"d/{i:05d}", T0 + rng.randrange(10_000)) for i in range(3000)]
    cursor, seen, ticks = Cursor(), [], 0
    while True:
        plan = tick(listing, cursor, max_items=200)
        assert len(plan.work) <= 200 + 3000 // BUCKETS + 10  # soft bound: whole buckets only
        seen.extend(i.path for i in plan.work)
        cursor, ticks = plan.cursor, ticks + 1
        if not plan.work and plan.backlog == 0:
            break
        # items arriving during the backlog are not lost either
        if ticks == 3:
            listing.append(item("arrived-midway", T0 - 5))
    assert sorted(seen) == sorted(i.path for i in listing)
    assert len(seen) == len(set(seen))
    assert ticks > 5


def test_unchanged_items_are_never_requested_again_after_the_boundary_moves() -> None:
    listing = [item(f"f{i}", T0 + i * 600) for i in range(20)]
    cursor = tick(listing, Cursor(), lookback=900).cursor
    for step in range(5):
        listing.append(item(f"g{step}", T0 + 20 * 600 + step * 600))
        plan = tick(listing, cursor, lookback=900)
        assert paths(plan.work) == [f"g{step}"]
        cursor = plan.cursor
    assert cursor.boundary is not None and cursor.boundary > T0 + 20 * 600 - 900


def test_a_deleted_item_requests_only_its_remaining_bucket_mates() -> None:
    listing = [item(f"f{i}", T0) for i in range(10)]
    cursor = tick(listing, Cursor(), lookback=0).cursor
    gone = listing.pop(4)
    plan = tick(listing, cursor, lookback=0)
    assert {bucket_of(i.path) for i in plan.work} <= {bucket_of(gone.path)}
    assert tick(listing, plan.cursor, lookback=0).work == []


def test_bucket_mates_known_to_have_landed_are_dropped_from_the_work() -> None:
    listing = [item(f"f{i}", T0 + i) for i in range(3000)]  # about 3 per bucket
    first = tick(listing, Cursor(), max_items=10_000, lookback=0)
    assert first.backlog == 0
    late = item("late-but-old", T0 - 1_000_000)
    listing.append(late)
    plan = tick(listing, first.cursor, max_items=10_000, lookback=0)
    assert late.path in paths(plan.work) and len(plan.work) > 1 and plan.coarse == set(paths(plan.work))
    known = {i.path: i.metadata["version"] for i in listing if i is not late}
    assert [i.path for i in drop_known(plan, known)] == [late.path]
    mate = next(i for i in plan.work if i is not late)
    stale = {**known, mate.path: "an older version"}
    assert sorted(i.path for i in drop_known(plan, stale)) == sorted([late.path, mate.path])


def test_exact_work_is_never_dropped() -> None:
    listing = [item("a", T0), item("b", T0 + 1)]
    plan = tick(listing, Cursor())
    assert plan.coarse == frozenset()
    assert drop_known(plan, {"a": "1700000000", "b": str(T0 + 1)}) == plan.work


def test_a_bad_or_foreign_cursor_starts_afresh() -> None:
    for text in ["", "not base64!", "eJwDAAAAAAE=", encode_cursor(Cursor())[:-4]]:
        assert decode_cursor(text) == Cursor()


def test_cursor_stays_small_on_a_large_source() -> None:
    """100,000 items drain in whole ticks of 5,000 and the cursor stays small (tick time: bench_sensor)."""
    listing = [item(f"data/{i // 1000}/{i:06d}.parquet", T0 + i // 10) for i in range(100_000)]
    cursor, ticks = Cursor(), 0
    while ticks < 40:
        plan = plan_tick(listing, cursor, max_items=5000)
        cursor, ticks = plan.cursor, ticks + 1
        if plan.backlog == 0:
            break
    assert plan.backlog == 0
    assert ticks <= 100_000 // 5000 + 1, ticks
    size = len(encode_cursor(cursor))
    assert size < 25_000, size


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1, max_size=8), st.integers(0, 5000), st.integers(0, 3)),
                max_size=40, unique_by=lambda t: t[0]),
       st.integers(1, 15))
def test_every_item_is_requested_once_per_version(spec: list[tuple[str, int, int]], budget: int) -> None:
    listing = [item(p, T0 + m, version=f"v{v}") for p, m, v in spec]
    cursor, requested = Cursor(), []
    for _ in range(200):
        plan = plan_tick(listing, cursor, max_items=budget, lookback=100)
        requested.extend((i.path, i.metadata["version"]) for i in plan.work)
        cursor = plan.cursor
        if plan.backlog == 0 and not plan.work:
            break
    assert sorted(set(requested)) == sorted((i.path, i.metadata["version"]) for i in listing)
