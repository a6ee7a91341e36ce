"""``ApiSettings.from_env`` reads each limit's ``DA_API_*`` variable, and keeps the default where it is unset.

The default itself is the registry's (``connectors.environment``); ``tests/unit/test_docs_defaults.py``
checks that every numeric ``DA_API_*`` variable has its field.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from connectors.api.api_settings import VARIABLE, ApiSettings
from connectors.environment import VARIABLES, default_number
from connectors.errors import ConfigurationError

LIMITS = [f for f in dataclasses.fields(ApiSettings) if VARIABLE in f.metadata]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for variable in VARIABLES:
        monkeypatch.delenv(variable.name, raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_unset_limits_are_the_registrys_defaults(clean_env: pytest.MonkeyPatch) -> None:
    settings = ApiSettings.from_env()
    assert len(LIMITS) >= 15
    for field in LIMITS:
        value = getattr(settings, field.name)
        assert value == default_number(field.metadata[VARIABLE]) and type(value) is type(field.default)


@pytest.mark.parametrize("field", LIMITS, ids=[f.name for f in LIMITS])
def test_each_limit_variable_sets_its_field(clean_env: pytest.MonkeyPatch, field: dataclasses.Field[object]) -> None:
    clean_env.setenv(field.metadata[VARIABLE], "7")
    value = getattr(ApiSettings.from_env(), field.name)
    assert value == 7 and type(value) is type(field.default)


@pytest.mark.parametrize("text", ["0", "-3", "ten", "1.5"])
def test_a_limit_that_is_no_positive_whole_number_is_refused(clean_env: pytest.MonkeyPatch, text: str) -> None:
    clean_env.setenv("DA_API_MAX_JOBS", text)
    with pytest.raises(ConfigurationError, match=r"\$DA_API_MAX_JOBS must be"):
        ApiSettings.from_env()
