"""Limits enforced while streaming (docs/RELIABILITY.md row 34), against a real PostgreSQL: a thread query or
table over the size cap stops the export at the cap, nothing past it is ever on disk, and the partial is
removed; the source's session is left clean."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.landing.atomic import Landing
from tests.api.conftest import Api, start_api, use_own_secret_store
from tests.harness import PostgresServer
from tests.helpers.api import pg_source

pytestmark = pytest.mark.integration
CAP = 1 << 20  # 1 MiB; the query below makes about 20 MiB
PREVIEW_CAP = 256 << 10


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    use_own_secret_store(tmp_path, monkeypatch)
    yield from start_api(tmp_path, max_item_bytes=CAP, preview_max_bytes=PREVIEW_CAP)


@pytest.fixture
def on_disk(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every landing's temporary after each write (the real write, observed)."""
    sizes: list[int] = []
    write = Landing.write

    def observed(self: Landing, data: Any) -> None:
        write(self, data)
        sizes.append(self.bytes_written)

    monkeypatch.setattr(Landing, "write", observed)
    return sizes


def _everything(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) if folder.exists() else []


def test_a_thread_query_over_the_cap_stops_at_the_cap(api: Api, postgres_server: PostgresServer,
                                                      pg_tables: tuple[str, str, str], on_disk: list[int]) -> None:  # noqa: F811
    role, password, schema = pg_tables
    api.call("POST", "/v1/data-sources", expect=201, json=pg_source(postgres_server, role, password, schema))
    thread = api.settings.workspace_base / "t1"
    thread.mkdir(parents=True)
    query = "select g, repeat('x', 1000) as pad from generate_series(1, 20000) g"  # ~20 MiB of CSV
    response = api.call("POST", "/v1/threads/t1/data", key="read",
                        json={"references": [{"source_id": "pg", "query": query, "name": "big"}]})
    assert max(on_disk, default=0) <= CAP  # never a byte past the cap on disk (before: all 20 MiB, then a 413)
    assert response.status_code == 413, response.text
    assert f"over the limit of {CAP} bytes" in response.json()["detail"]
    assert _everything(thread) == []  # the partial and the staging folder removed
    small = {"references": [{"source_id": "pg", "table": f"{schema}.customers"}]}
    assert api.call("POST", "/v1/threads/t1/data", key="read", json=small).status_code == 200  # the pool is fine


def test_a_fetch_job_over_the_cap_fails_at_the_cap(api: Api, postgres_server: PostgresServer,
                                                   pg_tables: tuple[str, str, str], on_disk: list[int]) -> None:  # noqa: F811
    import psycopg

    role, password, schema = pg_tables
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:  # small on disk (compressed), big as CSV
        conn.execute(f"CREATE TABLE {schema}.wide AS SELECT g, repeat('y', 4000) AS pad "
                     "FROM generate_series(1, 2000) g")
        conn.execute(f"GRANT SELECT ON {schema}.wide TO {role}")
    api.call("POST", "/v1/data-sources", expect=201, json=pg_source(postgres_server, role, password, schema))
    started = api.call("POST", "/v1/data-sources/pg/fetch", key="read",
                       json={"items": [f"{schema}.wide"], "workspace": "w"})
    if started.status_code == 413:  # refused before starting from its announced size: also within the rule
        return
    assert started.status_code == 202, started.text
    from tests.helpers.api import wait_job

    done = wait_job(api, "pg", started.json()["id"])
    assert done["status"] == "failed" and "over the limit" in done["errors"][0]["detail"]
    assert max(on_disk, default=0) <= CAP
    assert [p for p in _everything(api.settings.jobs_base / "w") if not p.startswith(".lineage")] == []


def test_a_preview_is_capped_in_bytes_as_well_as_rows(api: Api, postgres_server: PostgresServer,
                                                       pg_tables: tuple[str, str, str],  # noqa: F811
                                                       tmp_path: Path) -> None:
    import psycopg

    role, password, schema = pg_tables
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:  # 10 rows of 60 KB: 600 KB > the 256 KiB cap
        conn.execute(f"CREATE TABLE {schema}.fat AS SELECT g, repeat('z', 60000) AS pad "
                     "FROM generate_series(1, 10) g")
        conn.execute(f"GRANT SELECT ON {schema}.fat TO {role}")
    api.call("POST", "/v1/data-sources", expect=201, json=pg_source(postgres_server, role, password, schema))
    over = api.call("GET", f"/v1/data-sources/pg/preview?item={schema}.fat&limit=10", key="read")
    assert over.status_code == 413 and "preview cap" in over.text and len(over.content) < 1000
    assert api.call("GET", f"/v1/data-sources/pg/preview?item={schema}.fat&limit=2", key="read").status_code == 200
    files = tmp_path / "files"
    files.mkdir()
    (files / "fat.csv").write_text("g,pad\n" + "".join(f"{i},{'z' * 60000}\n" for i in range(10)))
    api.call("POST", "/v1/data-sources", expect=201, json={"id": "docs", "type": "local_file", "name": "Docs",
                                                            "config": {"root": str(files)}})
    over = api.call("GET", "/v1/data-sources/docs/preview?item=fat.csv&limit=10", key="read")
    assert over.status_code == 413 and "over the cap" in over.text and len(over.content) < 1000
    assert api.call("GET", "/v1/data-sources/docs/preview?item=fat.csv&limit=2", key="read").status_code == 200


def test_relationships_are_paged(api: Api, postgres_server: PostgresServer,
                                 pg_tables: tuple[str, str, str]) -> None:  # noqa: F811
    import psycopg

    role, password, schema = pg_tables
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        for name in ("r1", "r2"):
            conn.execute(f"CREATE TABLE {schema}.{name} (id int PRIMARY KEY, c int REFERENCES {schema}.customers(id))")
    api.call("POST", "/v1/data-sources", expect=201, json=pg_source(postgres_server, role, password, schema))
    first = api.call("GET", "/v1/data-sources/pg/relationships?limit=2", expect=200).json()
    assert len(first["data"]) == 2 and first["has_more"]
    rest = api.call("GET", f"/v1/data-sources/pg/relationships?limit=2&after={first['next_cursor']}",
                    expect=200).json()
    assert len(rest["data"]) == 1 and not rest["has_more"]
    assert len({(r["table"], r["name"]) for r in first["data"] + rest["data"]}) == 3
    api.call("GET", "/v1/data-sources/pg/relationships?after=bm9wZQ", expect=400)
