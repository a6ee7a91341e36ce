"""``api-keys create --can-mint`` (DeepAnalyze's key) and ``serve --umask``, as a user runs them."""

from __future__ import annotations

import json

from tests.helpers.cli import Cli


def test_a_key_made_to_mint_says_so(cli: Cli) -> None:  # noqa: F811
    created = json.loads(cli("api-keys", "create", "deepanalyze", "--read-only", "--can-mint", "--json").stdout)
    assert created["scope"] == "read+mint"
    listed = json.loads(cli("api-keys", "list", "--json").stdout)
    assert [k["scope"] for k in listed] == ["read+mint"]


def test_serve_refuses_a_bad_umask(cli: Cli) -> None:  # noqa: F811
    result = cli("serve", "--umask", "999", check=False)
    assert result.returncode == 2 and "not an octal mask" in result.stderr
    result = cli("serve", "--port", "1", env={"DA_UMASK": "x"}, check=False)
    assert result.returncode == 1 and "$DA_UMASK" in result.stderr
