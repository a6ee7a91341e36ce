"""A default a hand-written page repeats is the code's default.

The reference pages are generated from the code (``docs/_gen/reference.py``), so they cannot drift;
the guides repeat some defaults in prose because a reader needs them there ("capped at
`DA_API_MAX_BODY_BYTES` (1 MiB)", "`batch_size` (default 500)", "`--port`, default 8300", and the
rows of a table with a ``default`` column). Every such quote is found here and compared with the
value the code uses: the settings models, the ``da-sources`` parser, the API policy's closed
defaults, and for a ``DA_*`` variable its registry entry (where ``ApiSettings`` takes its limits'
defaults from) and any copy outside the server (the python client's token lifetime). A key that
several models hold with different defaults is compared with the model its page documents
(:data:`SCOPES`), never with "any of them". A bound ("(default 900, at most 86400)") is compared
with the field's ``le``/``ge``; "1 h" and "30 s" read as seconds. Numbers quoted without a name
("the first rows (10 by default)") are pinned one by one in :data:`PINNED`. Changing a default in
the code fails this test until the pages say the new value. A default quoted in another shape is
not seen: keep to these, or link to the generated reference instead of repeating the number.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from connectors.api.api_settings import VARIABLE, ApiSettings
from connectors.api.policy import ApiPolicy
from connectors.cli import build_parser
from connectors.environment import VARIABLES
from tests.docs_blocks import REPO

_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "s": 1, "min": 60, "h": 3600}
_NUMBER = r"\d[\d,]*(?:\.\d+)?(?: ?(?:KiB|MiB|GiB|B|s|min|h)\b)?"
_PLAIN = rf"(?P<value>{_NUMBER}|true|false)"
_QUOTED = r"(?P<value>`[^`]+`)"  # a word or list in backticks counts only after "default": `a`, `b` is a list
_NAME = r"`(?P<name>DA_[A-Z0-9_]+|[a-z][a-z0-9_]*|--[a-z][a-z0-9-]*)`(?: [a-z]+)?"
_END = r"(?=[,;)]| by default)"
# the shapes the pages use: `NAME` (VALUE), `NAME` (default VALUE), `NAME` seconds (default VALUE),
# `NAME` (VALUE by default), `NAME` (default VALUE, at most MAX), `NAME`, VALUE; `NAME`, default `VALUE`;
# (VALUE, `NAME`
_QUOTES = (
    re.compile(rf"{_NAME}\s+\((?:default\s+)?{_PLAIN}{_END}"),
    re.compile(rf"{_NAME}\s+\(default\s+{_NUMBER},\s+at (?P<bound>most|least)\s+(?P<value>{_NUMBER})\)"),
    re.compile(rf"{_NAME}\s+\(default\s+{_QUOTED}{_END}"),
    re.compile(rf"{_NAME},\s+(?:default\s+)?{_PLAIN}{_END}"),
    re.compile(rf"{_NAME},\s+default\s+{_QUOTED}{_END}"),
    re.compile(rf"\({_PLAIN},\s+{_NAME}"),
)


@dataclasses.dataclass(frozen=True)
class Quote:
    page: str
    name: str
    value: str
    kind: str = "default"  # or "most" / "least": `NAME` (default VALUE, at most MAX), (..., at least MIN)


@dataclasses.dataclass(frozen=True)
class Known:
    """A value the code has for a name, and where (``PostgreSQLSettings``, ``connectors/environment.py``)."""

    origin: str
    value: Any


def quotes(text: str, page: str = "") -> Iterator[Quote]:
    """Every ``name``-and-default quote in ``text`` (line breaks read as spaces)."""
    flat = " ".join(text.split())
    for shape in _QUOTES:
        for found in shape.finditer(flat):
            yield Quote(page, found.group("name"), found.group("value"), found.groupdict().get("bound") or "default")


def table_quotes(text: str, page: str = "") -> Iterator[Quote]:
    """Every row of a table with a ``default`` column: ``| `key` | `value` | ... |`` (``a / b`` rows split)."""
    column: int | None = None
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if "default" in cells:
            column = cells.index("default")
        elif not cells:
            column = None
        elif column is not None and column < len(cells) and not set(cells[0]) <= set("-: "):
            names = re.findall(r"`([a-z][a-z0-9_]*)`", cells[0])
            parts = re.findall(r"`([^`]+)`", cells[column].split("(")[0])
            parts = parts[0].split(" / ") if len(parts) == 1 else parts
            if names and len(parts) == len(names):
                yield from (Quote(page, name, f"`{part}`") for name, part in zip(names, parts, strict=True))
        if cells and column is None and len(names := re.findall(r"`([a-z][a-z0-9_]*)`", cells[0])) == 1:
            for said in re.finditer(rf"\(default {_PLAIN}\)", " ".join(cells[1:])):  # | `seed` | ... (default 0) |
                yield Quote(page, names[0], said.group("value"))


def _parsed(value: str) -> Any:
    """A quoted value as the code would hold it: ``1 MiB`` -> 1048576, ``5,000`` -> 5000, `` `x` `` -> ``x``."""
    if value in ("true", "false"):
        return value == "true"
    if value.startswith("`"):
        inner = value.strip("`")
        try:
            return json.loads(inner)  # 10, false, {}, [443, 5432]
        except ValueError:
            pass
        if inner.startswith("["):  # [public], [https, postgresql]: YAML's plain words
            return [part.strip() for part in inner.strip("[]").split(",") if part.strip()]
        return inner
    number, _, unit = value.replace(",", "").partition(" ")
    return float(number) * _UNITS.get(unit or "B", 1)


def _same(quoted: Any, actual: Any) -> bool:
    if isinstance(quoted, list) and isinstance(actual, list | tuple):  # a set of names, in any order
        return sorted(map(str, quoted)) == sorted(map(str, actual))
    if isinstance(quoted, int | float) and not isinstance(quoted, bool):
        quoted = float(quoted)
    if isinstance(quoted, float) and isinstance(actual, int | float) and not isinstance(actual, bool):
        return quoted == float(actual)
    return bool(quoted == actual)


def _models() -> Iterator[type[BaseModel]]:
    """Every settings model a page may quote, with the models they nest."""
    from connectors.api.tokens import TokenRequest
    from connectors.base import DataSourceConfig
    from connectors.pipeline_settings import PipelineSettings
    from connectors.rows import RowOptions
    from connectors.syncing.source_sync import SyncOptions
    from connectors.type_table import settings_model_for

    todo: list[Any] = [DataSourceConfig, PipelineSettings, SyncOptions, RowOptions, TokenRequest]
    todo += [settings_model_for(name) for name in ("local_file", "azure_blob", "s3", "postgresql")]
    seen: set[type[BaseModel]] = set()
    while todo:
        model = todo.pop()
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or model in seen:
            continue
        seen.add(model)
        yield model
        for field in model.model_fields.values():
            todo += [field.annotation, *_inner_types(field.annotation)]


def _inner_types(annotation: Any) -> list[Any]:
    found = list(getattr(annotation, "__args__", ()))
    return found + [inner for arg in found for inner in _inner_types(arg)]


def settings_defaults() -> dict[str, list[Known]]:
    """Each settings key (its alias where it has one) with its default in each model that holds it."""
    defaults: dict[str, list[Known]] = {}
    for model in _models():
        for name, field in model.model_fields.items():
            if not field.is_required():
                value = field.get_default(call_default_factory=True)
                defaults.setdefault(field.alias or name, []).append(Known(model.__name__, value))
    return defaults


def settings_bounds(kind: str) -> dict[str, list[Known]]:
    """Each settings key with a bound, ``most`` (``le``) or ``least`` (``ge``), in each model that has one."""
    bounds: dict[str, list[Known]] = {}
    for model in _models():
        for name, field in model.model_fields.items():
            for bound in (getattr(m, "le" if kind == "most" else "ge", None) for m in field.metadata):
                if bound is not None:
                    bounds.setdefault(field.alias or name, []).append(Known(model.__name__, bound))
    return bounds


def option_defaults() -> dict[str, list[Known]]:
    """Each option of ``da-sources`` and its subcommands with its default in each (``da-sources serve``)."""
    defaults: dict[str, list[Known]] = {}
    todo = [build_parser()]
    while todo:
        parser = todo.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += list(action.choices.values())
            for flag in action.option_strings:
                defaults.setdefault(flag, []).append(Known(parser.prog, action.default))
    return defaults


def _client_defaults() -> dict[str, Known]:
    """Variables whose default a program outside the server holds too (it cannot import the registry)."""
    from da_sources_client import deepanalyze

    return {deepanalyze.TOKEN_TTL_VARIABLE: Known("da_sources_client.deepanalyze", deepanalyze.TOKEN_TTL_DEFAULT)}


def variable_defaults() -> dict[str, list[Known]]:
    """Each ``DA_*`` variable's default: its registry entry (the number, where it is one; ``ApiSettings``
    takes its limits' defaults from there), and any copy outside the server."""
    registry = "connectors/environment.py"
    defaults = {v.name: [Known(registry, v.number if v.number is not None else v.default.split(" (")[0])]
                for v in VARIABLES}  # a path or "none": what it means is the registry's to say
    for name, copy in _client_defaults().items():
        defaults[name].append(copy)
    return defaults


def _pages() -> list[Path]:
    """The hand-written pages (the generated ones are built from the code and not committed)."""
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def api_settings_defaults() -> dict[str, list[Known]]:
    """Each field of ``ApiSettings`` with a plain default (``idle_seconds``: 300.0)."""
    return {f.name: [Known("ApiSettings", f.default)] for f in dataclasses.fields(ApiSettings)
            if f.default is not dataclasses.MISSING}


def policy_defaults() -> dict[str, list[Known]]:
    """Each knob of the operator's API policy with its closed default."""
    return {knob: [Known("ApiPolicy", value)] for knob, value in json.loads(ApiPolicy().describe()).items()}


def known_defaults() -> dict[str, list[Known]]:
    """Every name a page may quote a default of, with the values the code has for it and where."""
    known: dict[str, list[Known]] = {}
    for source in (api_settings_defaults(), settings_defaults(), option_defaults(), policy_defaults(),
                   variable_defaults()):
        for name, values in source.items():
            known.setdefault(name, []).extend(values)
    return known


# A key several models hold with different defaults is compared with the models the page documents.
SCOPES: dict[str, tuple[str, ...]] = {
    "docs/api.md": ("da-sources serve",),
    "docs/connectors/postgresql.md": ("PostgreSQLSettings", "RowOptions", "da-sources fetch"),
    "docs/connectors/azure_blob.md": ("AzureBlobSettings",),
    "docs/connectors/s3.md": ("S3Settings",),
    "docs/connectors/local_file.md": ("LocalFileSettings",),
}


def _candidates(quote: Quote, known: list[Known]) -> list[Known]:
    """The values ``quote`` must match: all of a variable's; else those of the page's models, or the one value."""
    if quote.name.startswith("DA_"):
        return known
    scoped = [k for k in known if k.origin in SCOPES.get(quote.page, ())]
    return scoped or known


def mismatch(quote: Quote, known: list[Known]) -> str | None:
    """Why ``quote`` disagrees with the code, naming where the code has the value; None when it agrees."""
    candidates = _candidates(quote, known)
    shown = ", ".join(f"{k.origin}: {k.value!r}" for k in candidates)
    if len({repr(k.value) for k in candidates}) > 1 and not quote.name.startswith("DA_"):
        return f"{quote.page}: `{quote.name}` has several defaults ({shown}): add the page's model to SCOPES"
    if not all(_same(_parsed(quote.value), k.value) for k in candidates):
        said = quote.kind if quote.kind == "default" else f"at {quote.kind}"
        return f"{quote.page}: `{quote.name}` {said} {quote.value}, the code: {shown}"
    return None


def _found() -> list[Quote]:
    return [q for page in _pages() for text, name in [(page.read_text(), page.relative_to(REPO).as_posix())]
            for q in [*quotes(text, name), *table_quotes(text, name)]]


def test_every_quoted_default_is_the_codes() -> None:
    values = {"default": known_defaults(), "most": settings_bounds("most"), "least": settings_bounds("least")}
    checked = [(q, values[q.kind][q.name]) for q in _found()
               if q.name in values[q.kind]]  # other backticked words: no setting, option or variable
    wrong = [why for q, values in checked if (why := mismatch(q, values))]
    assert not wrong, "pages quote a default the code does not have:\n" + "\n".join(wrong)
    assert len(checked) >= 40, f"only {len(checked)} quoted defaults found: has the pages' wording changed?"


def test_a_variables_default_is_one_value_in_the_code() -> None:
    disagree = {name: values for name, values in variable_defaults().items()
                if not all(_same(values[0].value, v.value) for v in values[1:])}
    assert not disagree, f"the registry and a copy of a default disagree: {disagree}"


def test_the_api_limits_take_their_defaults_from_the_registry() -> None:
    """Every numeric ``DA_API_*`` variable sets one ``ApiSettings`` field, whose default is the registry's."""
    numeric = {v.name: v.number for v in VARIABLES if v.name.startswith("DA_API_") and v.number is not None}
    limits = {f.metadata[VARIABLE]: f.default for f in dataclasses.fields(ApiSettings) if VARIABLE in f.metadata}
    assert set(limits) == set(numeric)
    assert all(_same(number, limits[name]) for name, number in numeric.items())


def _lost_retries_interval() -> int:
    from da_pipelines.lost_retries import lost_retries_sensor

    return int(lost_retries_sensor([]).minimum_interval_seconds or 0)


def _jobs_page() -> int:
    import inspect

    from connectors.api.fetching import list_jobs

    return int(inspect.signature(list_jobs).parameters["limit"].default)


def _header_cap() -> int:
    from connectors.api.server import MAX_HEADER_BYTES

    return MAX_HEADER_BYTES


# Numbers a page says without naming a setting: (page, its wording with the number as group 1, where in the code).
PINNED: tuple[tuple[str, str, str, Callable[[], Any]], ...] = (
    ("docs/api.md", r"the first rows \((\d+) by default\)", "ApiSettings.preview_rows",
     lambda: ApiSettings.preview_rows),
    ("docs/api.md", r"headers \(at most (\d+ KiB)\)", "connectors.api.server.MAX_HEADER_BYTES", _header_cap),
    ("docs/api.md", r"the list is paged \(`\?limit=`, default (\d+)", "list_jobs' limit", _jobs_page),
    ("docs/dagster-lost-retry.md", r"on by default, every (\d+) s\b", "lost_retries_sensor's interval",
     _lost_retries_interval),
)


@pytest.mark.parametrize(("page", "wording", "origin", "actual"), PINNED, ids=[p[2] for p in PINNED])
def test_a_number_said_without_a_name_is_the_codes(page: str, wording: str, origin: str,
                                                   actual: Callable[[], Any]) -> None:
    said = re.findall(wording, " ".join((REPO / page).read_text().split()))
    assert said, f"{page} no longer says {wording!r}: update PINNED"
    assert all(_same(_parsed(value), actual()) for value in said), f"{page} says {said}, {origin} is {actual()}"


def test_a_changed_default_is_caught() -> None:
    page = ("capped at `DA_API_MAX_BODY_BYTES` (2 MiB), `--port`, default 8301, jobs (`DA_API_MAX_JOBS`, 17;\n"
            "`batch_size` (default 501) and (101 MiB, `DA_API_MAX_ITEM_BYTES`; `DA_SOURCES_TOKEN_TTL` (3601)")
    known = known_defaults()
    found = list(quotes(page))
    assert {q.name for q in found} == {"DA_API_MAX_BODY_BYTES", "--port", "DA_API_MAX_JOBS", "batch_size",
                                        "DA_API_MAX_ITEM_BYTES", "DA_SOURCES_TOKEN_TTL"}
    table = ("| key | default | what |\n| --- | --- | --- |\n| `statement_timeout` | `3601` | seconds |\n"
             "| `ports` | `[443]` | ports |\n| `pool_min_size` / `pool_max_size` | `1` / `5` | the pool |\n\n"
             "| option | meaning |\n| --- | --- |\n| `seed` | the sample's seed (default 1) |\n")
    found += table_quotes(table, "docs/connectors/postgresql.md")
    assert {q.name for q in found} >= {"statement_timeout", "ports", "pool_min_size", "pool_max_size", "seed"}
    assert all(mismatch(q, known[q.name]) for q in found)
    bounded = list(quotes("`ttl_seconds` (default 900, at most 86401); `part_bytes` (default 1 MiB, at least 2 KiB)"))
    assert [q.kind for q in bounded] == ["default", "default", "most", "least"]
    assert mismatch(bounded[2], settings_bounds("most")["ttl_seconds"])
    assert mismatch(bounded[3], settings_bounds("least")["part_bytes"])
    assert mismatch(next(quotes("`statement_timeout` (default 2 h)")), known["statement_timeout"])


def test_a_key_with_several_defaults_is_compared_with_the_pages_model() -> None:
    several = [Known("RowOptions", 0), Known("OtherOptions", 1)]
    assert mismatch(Quote("docs/elsewhere.md", "seed", "1"), several)  # "any of them" would pass it
    assert "several defaults" in (mismatch(Quote("docs/elsewhere.md", "seed", "0"), several) or "")
    assert mismatch(Quote("docs/connectors/postgresql.md", "seed", "0"), several) is None
    assert "RowOptions: 0" in (mismatch(Quote("docs/connectors/postgresql.md", "seed", "1"), several) or "")
