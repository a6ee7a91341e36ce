"""``da-sources secrets set | list | delete | keygen``: the credential store behind ``{secret: NAME}``."""

from __future__ import annotations

import argparse
from typing import Any

from connectors.cli.common import Parser, print_json, read_secret
from connectors.errors import ConfigurationError
from connectors.secrets.store import FernetFileStore, check_name, default_store

__all__ = ["add_commands"]


def add_commands(commands: Any, as_json: argparse.ArgumentParser) -> None:
    """Add ``secrets`` and its actions to the parser's subcommands.

    Args:
        commands: The subcommands of the ``da-sources`` parser (what ``add_subparsers`` returned).
        as_json: A parent parser giving ``--json`` to the commands that print data.
    """
    secrets = commands.add_parser("secrets", help="the credential store behind {secret: NAME}")
    actions = secrets.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=Parser)
    action = actions.add_parser("set", help="store a secret (asked for, or one line from a pipe)")
    action.add_argument("name")
    action.set_defaults(handler=cmd_secrets_set)
    action = actions.add_parser("list", parents=[as_json], help="the names of the stored secrets")
    action.set_defaults(handler=cmd_secrets_list)
    action = actions.add_parser("delete", help="remove a secret")
    action.add_argument("name")
    action.set_defaults(handler=cmd_secrets_delete)
    action = actions.add_parser("keygen", help="print a new key for DA_SECRETS_KEY")
    action.set_defaults(handler=cmd_secrets_keygen)


def cmd_secrets_set(args: argparse.Namespace) -> int:
    """``secrets set NAME``: store (or replace) a secret; the value is asked for, never an argument."""
    store = default_store()
    check_name(args.name)
    replaced = store.get(args.name) is not None
    store.set(args.name, read_secret(f"value of secret {args.name}: "))
    print(f"{'replaced' if replaced else 'stored'} secret {args.name!r}")
    return 0


def cmd_secrets_list(args: argparse.Namespace) -> int:
    """``secrets list``: the names only."""
    names = default_store().names()
    if args.json:
        print_json(names)
    else:
        print("\n".join(names) if names else "no secrets stored")
    return 0


def cmd_secrets_delete(args: argparse.Namespace) -> int:
    """``secrets delete NAME``."""
    if not default_store().delete(args.name):
        raise ConfigurationError(f"no secret {args.name!r} in the credential store")
    print(f"deleted secret {args.name!r}")
    return 0


def cmd_secrets_keygen(args: argparse.Namespace) -> int:
    """``secrets keygen``: a new Fernet key to export as ``DA_SECRETS_KEY``."""
    print(FernetFileStore.generate_key())
    return 0
