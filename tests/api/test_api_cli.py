"""``da-sources api-keys`` and ``da-sources serve``, as a user runs them; and the library without FastAPI."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.harness import stop_process_group
from tests.helpers.cli import CONSOLE_SCRIPT, Cli

HIDE = """
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'fastapi', 'starlette', 'uvicorn', 'dagster'}:
            raise ModuleNotFoundError(f'No module named {name!r}', name=name)
sys.meta_path.insert(0, Hide())
"""


def test_the_library_imports_without_fastapi() -> None:
    code = HIDE + """
import connectors, connectors.api, connectors.api.api_keys, connectors.cli
from connectors.local_file import LocalFileConnector
assert not any(m.split('.')[0] in {'fastapi', 'starlette', 'uvicorn'} for m in sys.modules)
try:
    connectors.api.router
except ModuleNotFoundError as exc:
    print('router needs', exc.name)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "router needs 'fastapi'" or result.stdout.startswith("router needs")


def test_keys_create_list_revoke(cli: Cli) -> None:  # noqa: F811
    created = json.loads(cli("api-keys", "create", "deepanalyze", "--json").stdout)
    key = created.pop("key")
    assert key.startswith("dsk_") and created["scope"] == "manage"
    plain = cli("api-keys", "create", "viewer", "--read-only").stdout
    assert plain.splitlines()[0].startswith("dsk_") and "read" in plain
    keys_file = cli.sources_file.with_name("api-keys.json")
    assert key not in keys_file.read_text() and oct(keys_file.stat().st_mode & 0o777) == "0o600"
    listed = json.loads(cli("api-keys", "list", "--json").stdout)
    assert [(k["name"], k["scope"]) for k in listed] == [("deepanalyze", "manage"), ("viewer", "read")]
    assert key not in cli("api-keys", "list").stdout
    cli("api-keys", "create", "viewer", check=False)  # the name is taken
    cli("api-keys", "revoke", "viewer")
    assert [k["name"] for k in json.loads(cli("api-keys", "list", "--json").stdout)] == ["deepanalyze"]
    cli("api-keys", "revoke", "viewer", check=False)


def test_keys_file_follows_the_environment(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    other = tmp_path / "elsewhere" / "keys.json"
    cli("api-keys", "create", "x", env={"DA_API_KEYS_FILE": str(other)})
    assert other.exists() and not cli.sources_file.with_name("api-keys.json").exists()


def test_serve_refuses_a_public_address_without_keys(cli: Cli) -> None:  # noqa: F811
    result = cli("serve", "--host", "0.0.0.0", "--port", "1", check=False)  # noqa: S104
    assert "no API key" in result.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str, key: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.slow
def test_serve_runs_the_api_and_a_revoked_key_stops_working(cli: Cli) -> None:  # noqa: F811
    key = cli("api-keys", "create", "admin").stdout.split()[0]
    port = _free_port()
    command = [str(CONSOLE_SCRIPT), "serve", "--port", str(port)]
    server = subprocess.Popen(command, cwd=cli.cwd, env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if _get(f"{base}/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        assert _get(f"{base}/v1/data-sources")[0] == 401
        status, body = _get(f"{base}/v1/data-sources", key)
        assert status == 200 and json.loads(body)["object"] == "list"
        cli("api-keys", "revoke", "admin")
        assert _get(f"{base}/v1/data-sources", key)[0] == 401
    finally:
        stop_process_group(server)
        out, err = server.communicate(timeout=10)
    assert key not in out.decode() + err.decode()
