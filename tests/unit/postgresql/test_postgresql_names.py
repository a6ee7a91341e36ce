"""Identifiers and landed names of PostgreSQLConnector: pure functions, property-tested (no server)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors import NotFoundError, UnsafeNameError
from connectors.landing.names import safe_relative_path
from connectors.postgresql.catalog import format_identifier, landed_name, parse_identifier, quote_part

names = st.text(min_size=1, max_size=70)


@given(names, names)
def test_format_then_parse_gives_back_the_same_names(schema: str, table: str) -> None:
    try:
        parsed = parse_identifier(format_identifier(schema, table))
    except UnsafeNameError:
        assert any(c in schema + table for c in "/\\") or any(ord(c) < 32 or ord(c) == 127 for c in schema + table)
        return
    assert parsed == (schema, table)


@given(names, names)
def test_landed_names_are_safe_or_refused_never_altered(schema: str, table: str) -> None:
    try:
        name = landed_name(schema, table, "csv")
    except UnsafeNameError:
        return
    assert name == f"{schema}.{table}.csv" and safe_relative_path(name) == name
    assert "/" not in name or "/" in schema + table


@pytest.mark.parametrize("identifier, expected", [
    ('"My Schema"."t.1"', ("My Schema", "t.1")),
    ("Public.Orders", ("public", "orders")),  # bare parts fold to lower case, as in SQL
    ('public."Orders"', ("public", "Orders")),
    ('s."a""b"', ("s", 'a"b')),
    ('s."x""; DROP TABLE y; --"', ("s", 'x"; DROP TABLE y; --')),
    ("café.tablé", ("café", "tablé")),
])
def test_identifiers_parse_like_sql(identifier: str, expected: tuple[str, str]) -> None:
    assert parse_identifier(identifier) == expected


@pytest.mark.parametrize("identifier", ["table_only", "a.b.c", 'a."unterminated', "a..b", ".a", "a.", '""."t"'])
def test_malformed_identifiers_are_not_found(identifier: str) -> None:
    with pytest.raises(NotFoundError, match="schema.table"):
        parse_identifier(identifier)


@pytest.mark.parametrize("identifier", ['s."a/b"', 's."a\\b"', 's."a\x00b"', "s.a\tb", 's."../x"'])
def test_names_that_cannot_be_files_are_refused(identifier: str) -> None:
    with pytest.raises(UnsafeNameError):
        parse_identifier(identifier)


def test_quoting_rules() -> None:
    assert quote_part("orders") == "orders"
    assert [quote_part(n) for n in ("Orders", "t.1", "a b", 'a"b', "1abc")] == [
        '"Orders"', '"t.1"', '"a b"', '"a""b"', '"1abc"']
