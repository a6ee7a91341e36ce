"""``da-sources serve`` and ``da-sources api-keys create | list | revoke``: the HTTP API and its keys.

``serve`` needs the ``api`` extra (``pip install 'da-sources[api]'``); the key
commands do not. Keys live in ``$DA_API_KEYS_FILE`` (default ``api-keys.json``
beside the sources file), hashed; ``create`` prints the key once.
"""

from __future__ import annotations

import argparse
import importlib.util
from typing import Any

from connectors.api.keys import KeyStore
from connectors.api.settings import ApiSettings
from connectors.cli.common import Parser, iso_time, print_json, print_table
from connectors.errors import ConfigurationError


def add_commands(commands: Any, as_json: argparse.ArgumentParser) -> None:
    """Add ``serve`` and ``api-keys`` to the parser's subcommands."""
    command = commands.add_parser("serve", help="run the HTTP API (needs the api extra)")
    command.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    command.add_argument("--port", type=int, default=8300, help="port (default 8300)")
    command.add_argument("--workspace", metavar="DIR", help="base folder of fetch workspaces "
                         "(default: $DA_WORKSPACE or ./workspace)")
    command.set_defaults(handler=cmd_serve)
    keys = commands.add_parser("api-keys", help="API keys of the HTTP API")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=Parser)
    action = actions.add_parser("create", parents=[as_json], help="make a key; it is printed once")
    action.add_argument("name")
    action.add_argument("--read-only", action="store_true", help="browse, preview and fetch only")
    action.set_defaults(handler=cmd_keys_create)
    action = actions.add_parser("list", parents=[as_json], help="the keys (never the keys themselves)")
    action.set_defaults(handler=cmd_keys_list)
    action = actions.add_parser("revoke", help="remove a key, by id or name; it stops working at once")
    action.add_argument("key")
    action.set_defaults(handler=cmd_keys_revoke)


def _settings(args: argparse.Namespace) -> ApiSettings:
    overrides: dict[str, Any] = {"sources_file": args.sources}
    if getattr(args, "workspace", None):
        overrides["workspace_base"] = args.workspace
    return ApiSettings.from_env(**overrides)


def _store(args: argparse.Namespace) -> KeyStore:
    return KeyStore(_settings(args).keys_file)


def cmd_serve(args: argparse.Namespace) -> int:
    """``serve``: uvicorn on HOST:PORT until interrupted."""
    if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
        raise ConfigurationError("serve needs the api extra: pip install 'da-sources[api]'")
    from connectors.api.server import check_listen, serve

    settings = _settings(args)
    check_listen(args.host, settings)  # refused before the banner says it is listening
    print(f"da-sources API on http://{args.host}:{args.port} (sources: {settings.sources_file}, "
          f"keys: {settings.keys_file})", flush=True)
    serve(args.host, args.port, settings)
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    """``api-keys create NAME [--read-only]``: prints the key once."""
    store = _store(args)
    record, key = store.create(args.name, read_only=args.read_only)
    if args.json:
        print_json({**record.public(), "key": key})
    else:
        print(key)
        print(f"(key {record.id}, {record.scope}; stored hashed in {store.path}: copy it now, "
              "it is never shown again)")
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    """``api-keys list``: id, name, scope, creation time."""
    keys = _store(args).list()
    if args.json:
        print_json([k.public() for k in keys])
    elif not keys:
        print("no API keys (make one with 'da-sources api-keys create NAME')")
    else:
        print_table(("ID", "NAME", "SCOPE", "CREATED"), [(k.id, k.name, k.scope, iso_time(k.created_at)) for k in keys])
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    """``api-keys revoke KEY``."""
    revoked = _store(args).revoke(args.key)
    print(f"revoked API key {revoked.id} ({revoked.name!r})")
    return 0
