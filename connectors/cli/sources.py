"""``da-sources list | add | remove | test``: the sources file."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import types
import typing
from typing import Any, Literal

import yaml

from connectors.base import DataSourceConfig
from connectors.cli.common import (
    EXIT_FAILURE,
    PROG,
    Parser,
    UsageError,
    bounded,
    fail,
    open_registry,
    print_json,
    print_table,
    read_secret,
    source_id_arg,
)
from connectors.errors import ConfigurationError, DataSourceError
from connectors.ids import InvalidSourceIdError, check_distinct, check_source_id, is_valid_source_id, shown
from connectors.registry import InvalidSource, SourceRegistry, source_to_dict
from connectors.secrets.references import MASK, Secret, is_reference, redact
from connectors.secrets.store import check_name, default_store
from connectors.type_table import known_type_names, settings_model_for

__all__ = ["add_commands"]


def add_commands(commands: Any, as_json: argparse.ArgumentParser) -> None:
    """Add ``list``, ``add``, ``remove`` and ``test`` to the parser's subcommands.

    Args:
        commands: The subcommands of the ``da-sources`` parser (what ``add_subparsers`` returned).
        as_json: A parent parser giving ``--json`` to the commands that print data.
    """
    command = commands.add_parser("list", parents=[as_json], help="list the configured sources")
    command.set_defaults(handler=cmd_list)
    _add_add_command(commands)
    command = commands.add_parser("remove", help="remove a source from the sources file")
    command.add_argument("id", help="the source's id (an invalid entry of the file is removed by its id too)")
    command.set_defaults(handler=cmd_remove)
    command = commands.add_parser("test", parents=[as_json], help="check that a source answers")
    command.add_argument("id", type=source_id_arg)
    command.set_defaults(handler=cmd_test)


def _add_add_command(commands: Any) -> None:
    add = commands.add_parser("add", help="add a source (see 'add TYPE --help' for its options)")
    types_ = add.add_subparsers(dest="type", required=True, metavar="TYPE", parser_class=Parser)
    for type_name in sorted(known_type_names()):
        command = types_.add_parser(type_name, help=f"a source of type {type_name}")
        command.add_argument("id", type=source_id_arg, help="stable identifier: letters, digits, - and _, "
                             "a letter first, at most 63 characters (e.g. ds-azure-prod)")
        command.add_argument("--name", help="human-readable name (default: the id)")
        command.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                             help="any config key; VALUE is YAML, e.g. --set 'dsn={env: PG_DSN}'; a key "
                                  "metadata.X.Y sets the source's metadata, e.g. --set "
                                  "'metadata.dagster.item_sets=[{name: csv, glob: \"*.csv\"}]'")
        command.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE",
                             help="a metadata key (dots nest: dagster.max_items_per_tick=100); VALUE is YAML")
        command.set_defaults(handler=cmd_add, fields={})
        _add_settings_options(command, type_name)


def _add_settings_options(command: argparse.ArgumentParser, type_name: str) -> None:
    """One option per settings field; secret fields get -env / -secret / -prompt instead."""
    try:
        model = settings_model_for(type_name)
    except Exception:  # a broken plugin must not break every other command; it keeps --set
        return
    fields: dict[str, str] = {}
    secret_fields = model.secret_fields()
    for name, info in model.model_fields.items():
        flag = name.replace("_", "-")
        help_text = (info.description or name).rstrip(".") + (" (required)" if info.is_required() else "")
        if name in secret_fields:
            _add_secret_options(command, name, flag, help_text)
            fields[name] = "secret"
            continue
        kind: dict[str, Any] = {"metavar": name.upper(), **_argparse_kind(info.annotation)}
        command.add_argument(f"--{flag}", dest=f"opt_{name}", help=help_text, **kind)
        fields[name] = "plain"
    command.set_defaults(fields=fields)


def _add_secret_options(command: argparse.ArgumentParser, name: str, flag: str, help_text: str) -> None:
    group = command.add_mutually_exclusive_group()
    group.add_argument(f"--{flag}-env", dest=f"env_{name}", metavar="VAR", help=f"{help_text}: from $VAR")
    group.add_argument(f"--{flag}-secret", dest=f"secret_{name}", metavar="NAME",
                       help=f"{help_text}: from the credential store")
    command.add_argument(f"--{flag}-prompt", dest=f"prompt_{name}", action="store_true",
                         help=f"ask for it, keep it in the credential store as --{flag}-secret NAME or ID.{name}")


def _argparse_kind(annotation: Any) -> dict[str, Any]:
    """argparse keywords for a settings field's type (Optional unwrapped)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = args[0] if len(args) == 1 else str
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction, "default": None, "metavar": None}
    if origin is Literal:
        return {"choices": [str(c) for c in typing.get_args(annotation)], "metavar": None}
    if origin is list:
        return {"nargs": "+"}
    if annotation in (int, float, str):
        return {"type": annotation}
    return {"type": _yaml_value, "metavar": "YAML"}  # mappings and the like: written as YAML


def _yaml_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError("not valid YAML") from None


def cmd_list(args: argparse.Namespace) -> int:
    """``list``: one line per source (id, type, name, config with references, never values).

    Invalid entries of the file are listed too, each with its error on stderr
    (exit 1); the valid ones are what Dagster serves.
    """
    registry = open_registry(args)
    loaded = registry.load()
    if args.json:
        print_json([_source_summary(s, loaded.embedded) for s in loaded.sources]
                   + [_invalid_summary(i) for i in loaded.invalid])
    elif not loaded.sources and not loaded.invalid:
        print(f"no sources in {registry.path} (add one with '{PROG} add')")
    else:
        rows = [(s.id, s.type_name, redact(s.name), _config_text(s.config)) for s in loaded.sources]
        rows += [(bounded(shown(i.id)) if i.id is not None else "?", "?", "?", "INVALID (see the error)")
                 for i in loaded.invalid]
        print_table(("ID", "TYPE", "NAME", "CONFIG"), rows)
        if loaded.embedded:
            print(f"(the embedded sample: there is no {registry.path}; '{PROG} add' creates it)")
    for invalid in loaded.invalid:
        fail(f"entry {invalid.position} of {registry.path}: {invalid.error}", EXIT_FAILURE)
    return EXIT_FAILURE if loaded.invalid else 0


def _invalid_summary(invalid: InvalidSource) -> dict[str, Any]:
    return {"id": invalid.id if is_valid_source_id(invalid.id) else None, "position": invalid.position,
            "error": bounded(redact(str(invalid.error)))}


def _source_summary(source: DataSourceConfig, embedded: bool = False) -> dict[str, Any]:
    config = {k: (MASK if not is_reference(v) and _is_secret(v) else v) for k, v in source.config.items()}
    summary = {"id": source.id, "type": source.type_name, "name": source.name, "config": config,
               "created_at": source.created_at, "metadata": source.metadata}
    return {**summary, "embedded": True} if embedded else summary


def _is_secret(value: Any) -> bool:
    return isinstance(value, Secret)


def _config_text(config: dict[str, Any]) -> str:
    parts = []
    for key, value in config.items():
        if is_reference(value):
            kind, name = next(iter(value.items()))
            value = f"{{{kind}: {name}}}"
        else:
            value = redact(str(value))  # Secrets show as the mask; this catches a secret in any other value
        parts.append(f"{key}={value}")
    return " ".join(parts)


def cmd_add(args: argparse.Namespace) -> int:
    """``add TYPE ID``: validate, keep prompted secrets in the store, append to the sources file."""
    registry = open_registry(args, must_exist=False)
    config, prompts = _config_from_args(args)
    dotted = {k.removeprefix("metadata."): config.pop(k) for k in list(config) if k.startswith("metadata.")}
    metadata = _nested({**_pairs(args.metadata, "--metadata"), **dotted})
    source = DataSourceConfig(id=args.id, type=args.type, name=args.name or args.id, config=config,
                              metadata=metadata)
    _check_id_free(SourceRegistry(registry.path), source.id)
    source_to_dict(source)  # a literal secret is refused before any secret is asked for and stored
    if prompts:
        store = default_store()  # fails closed before anything is asked
        for field, secret_name in prompts.items():
            store.set(secret_name, read_secret(f"{field} for source {source.id}: "))
    registry.add(source)
    print(f"added source {source.id!r} ({source.type_name}) to {registry.path}")
    return 0


def _check_id_free(registry: SourceRegistry, source_id: str) -> None:
    """Refuse an id taken, or mapping to a taken Dagster name, before any secret is asked for."""
    loaded = registry.load()
    ids = [s.id for s in loaded.sources] + [i.id for i in loaded.invalid if i.id is not None]
    if source_id in ids:
        raise ConfigurationError(f"source id {source_id!r} is taken", source_id=source_id)
    check_distinct(source_id, ids)


def _config_from_args(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    """The config given by the options, and the secrets to prompt for (field -> store name)."""
    config = _pairs(args.set, "--set")
    prompts: dict[str, str] = {}
    for field, kind in args.fields.items():
        if kind == "plain":
            value = getattr(args, f"opt_{field}")
            if value is not None:
                config[field] = value
            continue
        env, stored = getattr(args, f"env_{field}"), getattr(args, f"secret_{field}")
        if getattr(args, f"prompt_{field}"):
            if env:
                raise UsageError(f"--{field.replace('_', '-')}-prompt cannot go with an -env reference")
            stored = check_name(stored or f"{args.id}.{field}")
            prompts[field] = stored
        if env:
            config[field] = {"env": env}
        elif stored:
            config[field] = {"secret": stored}
    return config, prompts


def _pairs(items: list[str], option: str) -> dict[str, Any]:
    pairs: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} expects KEY=VALUE")
        try:
            pairs[key] = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            raise UsageError(f"{option} {key}=...: the value is not valid YAML") from None
    return pairs


def _nested(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"dagster.item_sets": v}`` as ``{"dagster": {"item_sets": v}}`` (later keys win)."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, last = key.split(".")
        level = nested
        for part in parents:
            child = level.get(part)
            if not isinstance(child, dict):
                child = level[part] = {}
            level = child
        level[last] = value
    return nested


def cmd_remove(args: argparse.Namespace) -> int:
    """``remove ID``: removes the entry, valid or not (how a broken entry is dropped).

    An id that breaks the rule is a usage error, unless the file holds an entry
    with exactly that id (written by hand): then that entry is removed.
    """
    registry = SourceRegistry(open_registry(args).path)
    if not is_valid_source_id(args.id) and args.id not in [i.id for i in registry.load().invalid]:
        try:
            check_source_id(args.id)
        except InvalidSourceIdError as exc:
            raise UsageError(f"argument id: {exc}") from None
    if open_registry(args).load().embedded:
        raise ConfigurationError(f"there is no sources file {str(registry.path)!r}: the embedded sample is "
                                 "served while there is none, and cannot be removed")
    removed = next((s for s in registry.load().sources if s.id == args.id), None)
    registry.discard(args.id)
    print(f"removed source {shown(args.id)} from {registry.path}")
    if removed is not None:
        _delete_owned_secrets(removed)
    return 0


def _delete_owned_secrets(source: DataSourceConfig) -> None:
    """Delete the secrets stored for this source alone (``<id>.<field>``, as ``add --X-prompt`` and the API
    name them), as the API's DELETE does; a secret another source may share is kept."""
    owned = [v["secret"] for k, v in source.config.items() if is_reference(v) and v.get("secret") == f"{source.id}.{k}"]
    if not owned:
        return
    store = default_store()
    for name in owned:
        store.delete(name)
        print(f"deleted secret {name!r} from the credential store")


def cmd_test(args: argparse.Namespace) -> int:
    """``test ID``: exit 0 when the source answers, 1 (with the reason) when not."""
    ok, reason = asyncio.run(_test(open_registry(args), args.id))
    if args.json:
        print_json({"id": args.id, "ok": ok, "error": None if ok else bounded(redact(reason))})
    elif ok:
        print(f"source {args.id!r}: ok")
    return 0 if ok else fail(reason, EXIT_FAILURE)


async def _test(registry: SourceRegistry, source_id: str) -> tuple[bool, str]:
    """Whether the source answers, and else the cause: the connector's own error when it gave one."""
    connector = registry.create_connector(source_id)
    try:
        await connector.connect()
        if await connector.test_connection():
            return True, ""
        return False, f"source '{source_id}': the source does not answer with these settings"
    except DataSourceError as exc:
        return False, str(exc)
    finally:
        with contextlib.suppress(Exception):  # a failing close must not hide the cause above
            await connector.disconnect()
