"""A view's version follows its data; ``modified_at`` is honest (0: unknown)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from psycopg import sql

from connectors.postgresql import MODIFIED_AT_UNKNOWN
from tests.conformance import run
from tests.harness import PostgresServer
from tests.helpers.postgresql import admin, pg_connector

pytestmark = pytest.mark.integration

# name -> definition; {s} is the schema
VIEWS = {
    "plain": "CREATE VIEW {s}.plain AS SELECT id, amount FROM {s}.base WHERE id < 100",
    "nested": "CREATE VIEW {s}.nested AS SELECT id FROM {s}.plain WHERE amount > 0",
    "joined": "CREATE VIEW {s}.joined AS SELECT b.id, o.label FROM {s}.base b JOIN {s}.other o USING (id)",
    "aggregate": "CREATE VIEW {s}.aggregate AS SELECT count(*) AS n, sum(amount) AS total FROM {s}.base",
    "subquery": "CREATE VIEW {s}.subquery AS SELECT 1 AS one WHERE EXISTS (SELECT FROM {s}.other WHERE id = 7)",
    "cte": "CREATE VIEW {s}.cte AS WITH x AS (SELECT id FROM {s}.other) SELECT count(*) AS n FROM x",
    "union": "CREATE VIEW {s}.union AS SELECT id FROM {s}.base UNION ALL SELECT id FROM {s}.other",
    "partitioned": "CREATE VIEW {s}.partitioned AS SELECT * FROM {s}.parts",
    "inherited": "CREATE VIEW {s}.inherited AS SELECT * FROM {s}.parent",
    "over_matview": "CREATE VIEW {s}.over_matview AS SELECT * FROM {s}.snap",
    "immutable_functions": "CREATE VIEW {s}.immutable_functions AS SELECT upper(label) AS u, id + 1 AS n "
                           "FROM {s}.other",
    "now": "CREATE VIEW {s}.now AS SELECT id FROM {s}.base WHERE now() > '2000-01-01'",
    "current_user": "CREATE VIEW {s}.current_user AS SELECT id, current_user AS who FROM {s}.base",
    "stable_function": "CREATE VIEW {s}.stable_function AS SELECT {s}.lookup() AS n",
    "random": "CREATE VIEW {s}.random AS SELECT random() AS r",
    "sequence": "CREATE VIEW {s}.sequence AS SELECT last_value FROM {s}.seq",
    "catalog_activity": "CREATE VIEW {s}.catalog_activity AS SELECT count(*) AS n FROM pg_stat_activity",
}
VOLATILE = {"now", "current_user", "stable_function", "random", "sequence", "catalog_activity"}
SETUP = """
CREATE TABLE {s}.base (id int PRIMARY KEY, amount numeric);
INSERT INTO {s}.base VALUES (1, 10), (2, 20);
CREATE TABLE {s}.other (id int, label text);
INSERT INTO {s}.other VALUES (1, 'a');
CREATE TABLE {s}.parts (id int, k int) PARTITION BY RANGE (k);
CREATE TABLE {s}.parts_1 PARTITION OF {s}.parts FOR VALUES FROM (0) TO (10);
CREATE TABLE {s}.parts_2 PARTITION OF {s}.parts FOR VALUES FROM (10) TO (20);
CREATE TABLE {s}.parent (id int);
CREATE TABLE {s}.child () INHERITS ({s}.parent);
CREATE MATERIALIZED VIEW {s}.snap AS SELECT id, amount FROM {s}.base;
CREATE UNIQUE INDEX ON {s}.snap (id);
CREATE SEQUENCE {s}.seq;
CREATE FUNCTION {s}.lookup() RETURNS bigint STABLE LANGUAGE sql AS 'SELECT count(*) FROM {s}.other';
"""


@pytest.fixture
def schema(postgres_server: PostgresServer) -> Iterator[str]:
    name = "views_" + __import__("uuid").uuid4().hex[:8]
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        conn.execute(SETUP.format(s=name))  # type: ignore[arg-type]
        for definition in VIEWS.values():
            conn.execute(definition.format(s=name))  # type: ignore[arg-type]
    yield name
    with admin(postgres_server) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def listing(server: PostgresServer, schema: str) -> dict[str, dict[str, Any]]:
    async def body() -> dict[str, dict[str, Any]]:
        async with pg_connector(server, [schema]) as pg:
            return {item.name: {"version": item.metadata["version"], "modified_at": item.modified_at}
                    for item in await pg.list_items()}

    return run(body())


def versions(server: PostgresServer, schema: str) -> dict[str, str]:
    return {name: facts["version"] for name, facts in listing(server, schema).items()}


# statement -> the views whose data it can change (every other stable view must keep its version)
CHANGES: list[tuple[str, set[str]]] = [
    ("UPDATE {s}.base SET amount = amount + 1 WHERE id = 1", {"plain", "nested", "joined", "aggregate", "union"}),
    ("INSERT INTO {s}.other VALUES (7, 'seven')", {"joined", "subquery", "cte", "union", "immutable_functions"}),
    ("DELETE FROM {s}.other WHERE id = 7", {"joined", "subquery", "cte", "union", "immutable_functions"}),
    ("INSERT INTO {s}.parts VALUES (1, 15)", {"partitioned"}),
    ("UPDATE {s}.parts SET k = 3", {"partitioned"}),
    ("INSERT INTO {s}.child VALUES (5)", {"inherited"}),
    ("REFRESH MATERIALIZED VIEW {s}.snap", {"over_matview"}),
    ("UPDATE {s}.base SET amount = amount + 1 WHERE id = 2", {"plain", "nested", "joined", "aggregate", "union"}),
    ("REFRESH MATERIALIZED VIEW CONCURRENTLY {s}.snap", {"over_matview"}),
    ("TRUNCATE {s}.other", {"joined", "subquery", "cte", "union", "immutable_functions"}),
    ("CREATE OR REPLACE VIEW {s}.plain AS SELECT id, amount FROM {s}.base WHERE id < 50",
     {"plain", "nested"}),
]


def test_a_view_version_changes_when_a_relation_it_reads_changes_and_only_then(
    postgres_server: PostgresServer, schema: str
) -> None:
    before = versions(postgres_server, schema)
    again = versions(postgres_server, schema)
    stable = set(VIEWS) - VOLATILE
    assert {v: again[v] for v in stable} == {v: before[v] for v in stable}, "nothing changed yet"
    for statement, affected in CHANGES:
        with admin(postgres_server) as conn:  # a session that ends publishes its statistics at once
            conn.execute(statement.format(s=schema))  # type: ignore[arg-type]
        after = versions(postgres_server, schema)
        changed = {v for v in stable if after[v] != before[v]}
        assert changed == affected, statement
        before = after


def test_a_view_whose_data_cannot_be_tracked_gets_a_new_version_at_every_listing(
    postgres_server: PostgresServer, schema: str
) -> None:
    first, second = versions(postgres_server, schema), versions(postgres_server, schema)
    for view in VOLATILE:
        assert first[view].startswith("view-volatile-") and first[view] != second[view], view
    assert not any(first[v].startswith("view-volatile-") for v in set(VIEWS) - VOLATILE)


def test_a_materialized_view_changes_on_refresh_not_on_its_base_table(
    postgres_server: PostgresServer, schema: str
) -> None:
    steps: list[tuple[str, Callable[[str, str], bool]]] = [
        ("UPDATE {s}.base SET amount = 99 WHERE id = 1", str.__eq__),  # not refreshed: it still shows the same
        ("REFRESH MATERIALIZED VIEW {s}.snap", str.__ne__),
        ("UPDATE {s}.base SET amount = 98 WHERE id = 1", str.__eq__),
        ("REFRESH MATERIALIZED VIEW CONCURRENTLY {s}.snap", str.__ne__),
    ]
    before = versions(postgres_server, schema)["snap"]
    for statement, expected in steps:
        with admin(postgres_server) as conn:
            conn.execute(statement.format(s=schema))  # type: ignore[arg-type]
        after = versions(postgres_server, schema)["snap"]
        assert expected(after, before), statement
        before = after


def test_modified_at_is_unknown_not_the_time_of_the_listing(postgres_server: PostgresServer, schema: str) -> None:
    assert MODIFIED_AT_UNKNOWN == 0
    facts = listing(postgres_server, schema)
    assert {f["modified_at"] for f in facts.values()} == {MODIFIED_AT_UNKNOWN}
