"""Table statistics over columns holding NaN: min, max and mean of the numbers; NaN counted apart."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest

from tests.api.conftest import Api, start_api, use_own_secret_store
from tests.harness import PostgresServer


def test_stats_leave_nan_out_of_min_max_and_mean_and_count_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              postgres_server: PostgresServer) -> None:
    schema = f"s_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.m (n numeric, d double precision, r real, i integer)")
        conn.execute(f"INSERT INTO {schema}.m VALUES (1, 1, 1, 1), (3, 3, 3, 3), ('NaN', 'NaN', 'NaN', NULL)")
    use_own_secret_store(tmp_path, monkeypatch)
    api: Api
    for api in start_api(tmp_path):
        api.call("POST", "/v1/data-sources", expect=201, json={"id": "pg", "type": "postgresql", "name": "PG",
                                                               "config": {
            "host": postgres_server.host, "port": postgres_server.port, "dbname": postgres_server.dbname,
            "user": postgres_server.user, "password": postgres_server.password, "schemas": [schema]}})
        stats = api.call("GET", f"/v1/data-sources/pg/stats?item={schema}.m", expect=200).json()
    by_column = {c["column"]: c for c in stats["columns"]}
    for name in ("n", "d", "r"):
        column = by_column[name]
        assert (column["min"], column["max"], column["mean"], column["nan_count"]) == (1.0, 3.0, 2.0, 1), column
        assert column["count"] == 3
    assert (by_column["i"]["max"], by_column["i"]["nan_count"], by_column["i"]["count"]) == (3.0, 0, 2)
