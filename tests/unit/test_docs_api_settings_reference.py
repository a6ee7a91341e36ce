"""The settings reference takes each HTTP API field's meaning and default from the code.

``ApiSettings``, ``ApiPolicy`` and ``ReachPolicy`` document each field with a docstring right below
it; ``docs/_gen/reference.py`` reads them, so the page cannot drift from the code, and the build
fails on a field without one.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from connectors.api.api_settings import ApiSettings
from connectors.api.policy import ApiPolicy
from connectors.reach import ReachPolicy

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "_gen" / "reference.py"


def _reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_reference", REFERENCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(page: str, heading: str) -> dict[str, list[str]]:
    """The table under ``heading``: first cell (backticks stripped) to all cells."""
    section = page.split(heading, 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| `"):
            rows[cells[0].strip("`")] = cells
    return rows


@pytest.mark.parametrize("cls", [ApiSettings, ApiPolicy, ReachPolicy])
def test_every_field_of_the_api_settings_has_a_meaning(cls: type) -> None:
    assert _reference().missing_meanings(cls) == []


def test_the_policy_knobs_show_their_meaning_and_default_from_the_code() -> None:
    reference = _reference()
    rows = _rows(reference.settings_page(), "### The operator's policy")
    meanings = {**reference.field_meanings(ApiPolicy), **reference.field_meanings(ReachPolicy)}
    knobs = json.loads(ApiPolicy().describe())
    assert set(rows) == set(knobs)
    for knob, default in knobs.items():
        assert rows[knob][1] == f"`{json.dumps(default)}`"
        assert rows[knob][2] == meanings[knob].replace("|", "\\|")


def test_the_settings_fields_show_their_meaning_and_default_from_the_code() -> None:
    reference = _reference()
    rows = _rows(reference.settings_page(), "### Paths and limits")
    meanings = reference.field_meanings(ApiSettings)
    fields = [f for f in dataclasses.fields(ApiSettings) if f.name != "policy"]
    assert set(rows) == {f.name for f in fields}
    for field in fields:
        assert rows[field.name][3] == meanings[field.name].replace("|", "\\|")
        if field.default is not dataclasses.MISSING:
            assert rows[field.name][1] == f"`{json.dumps(field.default, default=str)}`"
    assert rows["max_item_bytes"][1] == f"`{100 * 1024 * 1024}`"


@dataclasses.dataclass
class _HalfDocumented:
    explained: int = 1
    """What it is."""
    unexplained: int = 2


def test_a_field_without_a_meaning_is_found_and_fails_the_build() -> None:
    reference = _reference()
    assert reference.missing_meanings(_HalfDocumented) == ["unexplained"]
    with pytest.raises(ValueError, match=r"_HalfDocumented\.unexplained"):
        reference._dataclass_table(_HalfDocumented, frozenset(), "DA_API_")
