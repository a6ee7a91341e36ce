"""Which table datasets sync by their cursor, where their folder is, and what a count sample reads (pure)."""

from __future__ import annotations

from connectors.base import DataSourceConfig
from connectors.postgresql.slicing import block_sample_percent
from connectors.rows import RowOptions
from connectors.syncing.datasets import Dataset
from da_pipelines.incremental_tables import data_version, folder_name, is_incremental


def source(incremental: dict[str, object]) -> DataSourceConfig:
    return DataSourceConfig(id="pg", type="postgresql", name="PG", config={"host": "db", "dbname": "d", "user": "u",
                                                                "incremental": incremental})


def table(name: str) -> Dataset:
    return Dataset(path=("pg", "t"), name=name, kind="table")


def test_a_table_is_incremental_when_its_parsed_name_is_configured() -> None:
    configured = source({'"Sales Data"."Orders"': {"cursor": "at"}, "public.items": {"cursor": "at"}})
    assert is_incremental(table('"Sales Data"."Orders"'), configured)
    assert is_incremental(table("PUBLIC.Items"), configured)  # bare names fold to lower case
    assert not is_incremental(table('"Sales Data".orders'), configured)  # quoted: case kept
    assert not is_incremental(table("public.other"), configured)
    assert not is_incremental(Dataset(path=("pg", "tables"), name="tables", kind="all_tables"), configured)
    assert not is_incremental(table("a/../b.t"), configured)  # hostile: no match, no error
    assert folder_name(table('"Sales Data"."Orders"')) == "Sales Data.Orders"


def test_the_data_version_follows_the_cursor_and_the_rows() -> None:
    assert data_version(None).value == "none"
    first = data_version({"cursor_max": "2026-01-01 00:00:00+00", "row_count": 10}).value
    late = data_version({"cursor_max": "2026-01-01 00:00:00+00", "row_count": 11}).value  # a late commit
    assert first != late and "cursor=2026-01-01" in first


def test_a_count_sample_reads_blocks_only_of_a_large_analyzed_table_without_a_where() -> None:
    assert block_sample_percent(RowOptions(sample=100), "table", 1_000_000) == 0.04
    assert block_sample_percent(RowOptions(sample=100), "view", 1_000_000) is None
    assert block_sample_percent(RowOptions(sample=100), "table", -1) is None  # never analyzed
    assert block_sample_percent(RowOptions(sample=100, where="id > 1"), "table", 1_000_000) is None
    assert block_sample_percent(RowOptions(sample=0.1), "table", 1_000_000) is None  # a fraction: by hash
    assert block_sample_percent(RowOptions(sample=200_000), "table", 1_000_000) is None  # most blocks anyway
