"""A default a hand-written page repeats is the code's default.

The reference pages are generated from the code (``docs/_gen/reference.py``), so they cannot drift;
the guides repeat some defaults in prose because a reader needs them there ("capped at
`DA_API_MAX_BODY_BYTES` (1 MiB)", "`batch_size` (default 500)", "`--port`, default 8300", and the
rows of a table with a ``default`` column). Every such quote is found here and compared with the
value the code uses: the settings models, the ``da-sources`` parser, the API policy's closed
defaults, and for a ``DA_*`` variable its registry entry and, for the HTTP API's, what
:meth:`ApiSettings.from_env` reads with the variable unset. Changing a default in the code fails
this test until the pages say the new value. A default quoted in another shape is not seen: keep
to these, or link to the generated reference instead of repeating the number.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from connectors.api.api_settings import ApiSettings
from connectors.api.policy import ApiPolicy
from connectors.cli import build_parser
from connectors.environment import VARIABLES
from tests.docs_blocks import REPO

_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
_NUMBER = r"\d[\d,]*(?:\.\d+)?(?: ?(?:KiB|MiB|GiB|B)\b)?"
_PLAIN = rf"(?P<value>{_NUMBER}|true|false)"
_QUOTED = r"(?P<value>`[^`]+`)"  # a word or list in backticks counts only after "default": `a`, `b` is a list
_NAME = r"`(?P<name>DA_[A-Z0-9_]+|[a-z][a-z0-9_]*|--[a-z][a-z0-9-]*)`(?: [a-z]+)?"
_END = r"(?=[,;)]| by default)"
# the shapes the pages use: `NAME` (VALUE), `NAME` (default VALUE), `NAME` seconds (default VALUE),
# `NAME` (VALUE by default), `NAME`, VALUE; `NAME`, default `VALUE`; (VALUE, `NAME`
_QUOTES = (
    re.compile(rf"{_NAME}\s+\((?:default\s+)?{_PLAIN}{_END}"),
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


def quotes(text: str, page: str = "") -> Iterator[Quote]:
    """Every ``name``-and-default quote in ``text`` (line breaks read as spaces)."""
    flat = " ".join(text.split())
    for shape in _QUOTES:
        for found in shape.finditer(flat):
            yield Quote(page, found.group("name"), found.group("value"))


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
    from connectors.base import DataSourceConfig
    from connectors.pipeline_settings import PipelineSettings
    from connectors.rows import RowOptions
    from connectors.syncing.source_sync import SyncOptions
    from connectors.type_table import settings_model_for

    todo: list[Any] = [DataSourceConfig, PipelineSettings, SyncOptions, RowOptions]
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


def settings_defaults() -> dict[str, list[Any]]:
    """Each settings key (its alias where it has one) with the defaults it has in the models that hold it."""
    defaults: dict[str, list[Any]] = {}
    for model in _models():
        for name, field in model.model_fields.items():
            if field.is_required():
                continue
            value = field.get_default(call_default_factory=True)
            defaults.setdefault(field.alias or name, []).append(value)
    return defaults


def option_defaults() -> dict[str, list[Any]]:
    """Each option of ``da-sources`` and its subcommands with its defaults."""
    defaults: dict[str, list[Any]] = {}
    todo = [build_parser()]
    while todo:
        parser = todo.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += list(action.choices.values())
            for flag in action.option_strings:
                defaults.setdefault(flag, []).append(action.default)
    return defaults


def variable_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, list[Any]]:
    """Each ``DA_*`` variable's default: its registry entry (the number, where it is one), and for the
    HTTP API's limits also the value ``ApiSettings.from_env`` reads with every variable unset and the
    dataclass's own default (three places in the code that must agree)."""
    for variable in VARIABLES:
        monkeypatch.delenv(variable.name, raising=False)
    monkeypatch.chdir(tmp_path)
    read = ApiSettings.from_env()
    defaults: dict[str, list[Any]] = {}
    for variable in VARIABLES:
        head = variable.default.split(" (")[0]
        if not re.fullmatch(_NUMBER, head):
            defaults[variable.name] = [head]  # a path or "none": what it means is the registry's to say
            continue
        defaults[variable.name] = [_parsed(head)]
        field = variable.name.removeprefix("DA_API_").lower()
        if variable.name.startswith("DA_API_") and hasattr(read, field):
            defaults[variable.name] += [getattr(read, field), api_settings_defaults()[field][0]]
    return defaults


def _pages() -> list[Path]:
    """The hand-written pages (the generated ones are built from the code and not committed)."""
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def api_settings_defaults() -> dict[str, list[Any]]:
    """Each field of ``ApiSettings`` with a plain default (``idle_seconds``: 300.0)."""
    return {f.name: [f.default] for f in dataclasses.fields(ApiSettings) if f.default is not dataclasses.MISSING}


def policy_defaults() -> dict[str, list[Any]]:
    """Each knob of the operator's API policy with its closed default."""
    return {knob: [value] for knob, value in json.loads(ApiPolicy().describe()).items()}


def known_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, list[Any]]:
    """Every name a page may quote a default of, with the values the code has for it."""
    known: dict[str, list[Any]] = {}
    for source in (api_settings_defaults(), settings_defaults(), option_defaults(), policy_defaults(),
                   variable_defaults(monkeypatch, tmp_path)):
        for name, values in source.items():
            known.setdefault(name, []).extend(values)
    return known


def _agrees(name: str, quoted: Any, actual: list[Any]) -> bool:
    """A variable's default must be the same everywhere the code has it; a settings key or an option
    named in several models (``seed``, ``--workspace``) must match one of them."""
    agree = [_same(quoted, value) for value in actual]
    return all(agree) if name.startswith("DA_") else any(agree)


def test_every_quoted_default_is_the_codes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    known = known_defaults(monkeypatch, tmp_path)
    found = [q for page in _pages() for text, name in [(page.read_text(), page.relative_to(REPO).as_posix())]
             for q in [*quotes(text, name), *table_quotes(text, name)]]
    checked = [q for q in found if q.name in known]  # other backticked words are no setting, option or variable
    wrong = [f"{q.page}: `{q.name}` {q.value}, the code: {known[q.name]}" for q in checked
             if not _agrees(q.name, _parsed(q.value), known[q.name])]
    assert not wrong, "pages quote a default the code does not have:\n" + "\n".join(wrong)
    assert len(checked) >= 40, f"only {len(checked)} quoted defaults found: has the pages' wording changed?"


def test_a_variables_default_is_one_value_in_the_code(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    disagree = {name: values for name, values in variable_defaults(monkeypatch, tmp_path).items()
                if len(values) > 1 and not all(_same(values[0], v) for v in values[1:])}
    assert not disagree, f"connectors/environment.py, ApiSettings.from_env and ApiSettings disagree: {disagree}"


def test_a_changed_default_is_caught(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    page = ("capped at `DA_API_MAX_BODY_BYTES` (2 MiB), `--port`, default 8301, jobs (`DA_API_MAX_JOBS`, 17;\n"
            "`batch_size` (default 501) and (101 MiB, `DA_API_MAX_ITEM_BYTES`")
    known = known_defaults(monkeypatch, tmp_path)
    found = list(quotes(page))
    assert len(found) == 5
    assert {q.name for q in found} == {"DA_API_MAX_BODY_BYTES", "--port", "DA_API_MAX_JOBS", "batch_size",
                                        "DA_API_MAX_ITEM_BYTES"}
    table = ("| key | default | what |\n| --- | --- | --- |\n| `statement_timeout` | `3601` | seconds |\n"
             "| `ports` | `[443]` | ports |\n| `pool_min_size` / `pool_max_size` | `1` / `5` | the pool |\n")
    found += table_quotes(table)
    assert {q.name for q in found} >= {"statement_timeout", "ports", "pool_min_size", "pool_max_size"}
    assert not any(_agrees(q.name, _parsed(q.value), known[q.name]) for q in found)
