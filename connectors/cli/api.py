"""``da-sources serve`` and ``da-sources api-keys create | list | revoke``: the HTTP API and its keys.

``serve`` needs the ``api`` extra (``pip install 'da-sources[api]'``); the key
commands do not. Keys live in ``$DA_API_KEYS_FILE`` (default ``api-keys.json``
beside the sources file), hashed; ``create`` prints the key once.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from typing import TYPE_CHECKING, Any

from connectors.cli.common import Parser, iso_time, print_json, print_table
from connectors.environment import read
from connectors.errors import ConfigurationError

if TYPE_CHECKING:
    from connectors.api.api_keys import KeyStore
    from connectors.api.api_settings import ApiSettings

__all__ = ["add_commands"]


def add_commands(commands: Any, as_json: argparse.ArgumentParser) -> None:
    """Add ``serve`` and ``api-keys`` to the parser's subcommands.

    Args:
        commands: The subcommands of the ``da-sources`` parser (what ``add_subparsers`` returned).
        as_json: A parent parser giving ``--json`` to the commands that print data.
    """
    command = commands.add_parser("serve", help="run the HTTP API (needs the api extra)")
    command.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    command.add_argument("--port", type=int, default=8300, help="port (default 8300)")
    command.add_argument("--workspace", metavar="DIR", help="base folder of thread folders; fetch jobs land in "
                         "its .fetch-jobs (or $DA_API_JOBS_DIR) "
                         "(default: $DA_WORKSPACE or ./workspace)")
    command.add_argument("--umask", type=_octal, default=None,
                         help="file mode creation mask of the server (default $DA_UMASK or 007: files it lands are "
                         "0660 and folders 0770, for the workspace's group, never world-readable)")
    command.add_argument("--cors-origin", metavar="ORIGIN", action="append", default=[],
                         help="a browser origin allowed to call the API, e.g. https://ui.example.com; repeatable "
                         "(default: $DA_API_CORS_ORIGINS, comma-separated; none)")
    command.add_argument("--state-dir", metavar="DIR", help="our records of threads, outside the workspace "
                         "(default: $DA_STATE_DIR or da-sources-state beside the sources file)")
    command.set_defaults(handler=cmd_serve)
    keys = commands.add_parser("api-keys", help="API keys of the HTTP API")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=Parser)
    action = actions.add_parser("create", parents=[as_json], help="make a key; it is printed once")
    action.add_argument("name")
    action.add_argument("--read-only", action="store_true", help="browse, preview and fetch only")
    action.add_argument("--can-mint", action="store_true",
                        help="may mint thread tokens for DeepAnalyze's agent code (POST /v1/threads/T/tokens)")
    action.set_defaults(handler=cmd_keys_create)
    action = actions.add_parser("list", parents=[as_json], help="the keys (never the keys themselves)")
    action.set_defaults(handler=cmd_keys_list)
    action = actions.add_parser("revoke", help="remove a key, by id or name; it stops working at once")
    action.add_argument("key")
    action.set_defaults(handler=cmd_keys_revoke)


UMASK_ENV = "DA_UMASK"


def _octal(text: str) -> int:
    try:
        value = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an octal mask: {text!r}") from None
    if not 0 <= value <= 0o777:
        raise argparse.ArgumentTypeError(f"a mask is 000 to 777, not {text!r}")
    return value


def _umask_from_env() -> int:
    try:
        return _octal(read(UMASK_ENV) or "007")
    except argparse.ArgumentTypeError as exc:
        raise ConfigurationError(f"${UMASK_ENV}: {exc}") from None


def _settings(args: argparse.Namespace) -> ApiSettings:
    from connectors.api.api_settings import ApiSettings, cors_origins  # here: every other command starts faster

    overrides: dict[str, Any] = {"sources_file": args.sources}
    if getattr(args, "workspace", None):
        overrides["workspace_base"] = args.workspace
    if getattr(args, "state_dir", None):
        overrides["state_dir"] = args.state_dir
    if getattr(args, "cors_origin", None):
        overrides["cors_origins"] = cors_origins(args.cors_origin)
    return ApiSettings.from_env(**overrides)


def _store(args: argparse.Namespace) -> KeyStore:
    from connectors.api.api_keys import KeyStore  # here: every other command starts faster

    return KeyStore(_settings(args).keys_file)


def cmd_serve(args: argparse.Namespace) -> int:
    """``serve``: uvicorn on HOST:PORT until interrupted."""
    if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
        raise ConfigurationError("serve needs the api extra: pip install 'da-sources[api]'")
    from connectors.api.server import check_listen, serve

    settings = _settings(args)
    check_listen(args.host, settings)  # refused before the banner says it is listening
    umask = args.umask if args.umask is not None else _umask_from_env()
    os.umask(umask)  # before anything is written: the landed files' mode, with the workspace's setgid group
    print(f"da-sources API on http://{args.host}:{args.port} (sources: {settings.sources_file}, "
          f"keys: {settings.keys_file})", flush=True)
    serve(args.host, args.port, settings)
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    """``api-keys create NAME [--read-only]``: prints the key once."""
    store = _store(args)
    record, key = store.create(args.name, read_only=args.read_only, can_mint=args.can_mint)
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
