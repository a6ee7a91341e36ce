"""A Parquet export profiles whole row groups (tables of several batches): the same figures as batch by batch."""

from __future__ import annotations

import decimal

import pyarrow as pa

from connectors.profiling import Profiler

SCHEMA = pa.schema([("n", pa.int64()), ("amount", pa.decimal128(12, 2)), ("label", pa.string()),
                    ("mood", pa.dictionary(pa.int32(), pa.string()))])


def batch(start: int, rows: int) -> pa.RecordBatch:
    values = range(start, start + rows)
    return pa.RecordBatch.from_arrays([
        pa.array([None if v % 7 == 0 else v for v in values], pa.int64()),
        pa.array([decimal.Decimal(v) / 100 for v in values], pa.decimal128(12, 2)),
        pa.array([f"t{v % 13}" for v in values]),
        pa.array([("happy", "sad")[v % 2] for v in values]).dictionary_encode().cast(SCHEMA.field("mood").type),
    ], schema=SCHEMA)


def test_a_row_group_of_several_batches_profiles_as_its_batches_do() -> None:
    batches = [batch(1, 5000), batch(5001, 3000), batch(8001, 10)]
    one_by_one, grouped = Profiler(SCHEMA), Profiler(SCHEMA)
    for each in batches:
        one_by_one.add(each)
    grouped.add(pa.Table.from_batches(batches))
    by_batch, by_group = one_by_one.result(), grouped.result()
    assert by_group["rows"] == by_batch["rows"] == 8010
    for mine, theirs in zip(by_group["columns"], by_batch["columns"], strict=True):
        assert {k: mine[k] for k in ("nulls", "min", "max", "examples") if k in mine} == \
            {k: theirs[k] for k in ("nulls", "min", "max", "examples") if k in theirs}
    assert by_group["columns"][3]["distinct"] == 2 and by_group["columns"][2]["distinct"] == 13
    assert by_group["columns"][0]["nulls"] == len([v for v in range(1, 8011) if v % 7 == 0])


def test_a_wide_tables_columns_share_the_distinct_sample() -> None:
    """900 columns of 60,000 rows: each column samples its share of SAMPLE_BUDGET, not every row (memory)."""
    from connectors import profiling

    wide = pa.schema([(f"c{k}", pa.int64()) for k in range(900)])
    share = profiling.SAMPLE_BUDGET // 900
    rows = pa.array(range(3 * profiling.SAMPLE_PER_BATCH), pa.int64())
    profiler = Profiler(wide)
    for _ in range(3):
        profiler.add(pa.RecordBatch.from_arrays([rows] * 900, schema=wide))
    column = profiler._columns[0]
    assert column.sampled == share < profiling.SAMPLE_VALUES
    assert sum(len(a) for a in column.sample) == share
    narrow = Profiler(SCHEMA)
    narrow.add(batch(1, 5000))
    assert narrow._columns[0].limit == profiling.SAMPLE_VALUES  # a narrow table keeps the whole sample
