"""``da-sources``: manage sources and secrets, and fetch items, from a shell.

Commands: ``list``, ``add TYPE ID``, ``remove ID``, ``test ID``, ``ls ID [PATH]``,
``fetch ID IDENTIFIER... [--workspace DIR]``, ``lineage PATH``,
``secrets set|list|delete NAME`` and ``secrets keygen``. ``--sources FILE``
picks the sources file (default ``$DA_SOURCES_FILE`` or ``./sources.yaml``).

Secrets are never command-line arguments (they would land in shell history
and ``ps``): give a reference (``--password-env NAME``, ``--password-secret
NAME``) or ``--password-prompt``, which asks for it (or reads one line from a
pipe) and keeps it in the credential store.

Every error is one line on stderr, redacted, with a non-zero exit code.

Example:
    $ da-sources add local_file docs --name Docs --root /srv/docs --pattern '*.csv'
    $ da-sources ls docs
    $ da-sources fetch docs 2024/sales.csv --workspace ./workspace
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import shutil
import sys
import threading
import time
import types
import typing
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal, NoReturn

from connectors.base import DataSourceConfig, DataSourceConnector, FetchResult
from connectors.credentials import MASK, RedactingFilter, is_reference, redact
from connectors.errors import ConfigurationError, DataSourceError
from connectors.lineage import read_provenance
from connectors.progress import on_progress
from connectors.registry import SourceRegistry, known_type_names, settings_model_for
from connectors.secret_store import FernetFileStore, check_name, default_store

PROG = "da-sources"
WORKSPACE_ENV = "DA_WORKSPACE"
EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class UsageError(Exception):
    """A command line that cannot be parsed: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (argparse prints the usage block and exits)."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            # not echoed: a secret typed as an argument by mistake must not be printed back
            count = len(message.split(":", 1)[1].split())
            message = f"{count} unexpected argument(s); secrets are never arguments, they are prompted for"
        raise UsageError(f"{message} (see '{self.prog} --help')")


# --- entry point ------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``da-sources`` with ``argv`` (default: the process arguments); the exit code."""
    _configure_logging()
    try:
        args = build_parser().parse_args(argv)
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except DataSourceError as exc:
        return _fail(str(exc), EXIT_FAILURE)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        # the reader went away (da-sources ls x | head): not an error; keep Python quiet at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # the last line of defence: one line, never a traceback
        return _fail(f"{type(exc).__name__}: {exc}", EXIT_FAILURE)


def _fail(message: str, code: int) -> int:
    text = " ".join(redact(message).split())  # one line, whatever the message held
    print(f"{PROG}: error: {text}", file=sys.stderr)
    return code


def _configure_logging() -> None:
    # warnings from the library and the SDKs, redacted at the handler so every logger is covered
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)


# --- the parser -------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = _Parser(prog=PROG, description="Data sources for DeepAnalyze: configure, test, list, fetch.")
    parser.add_argument("--sources", metavar="FILE", help="sources file (default: $DA_SOURCES_FILE or ./sources.yaml)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    as_json = _Parser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON for scripts")

    command = commands.add_parser("list", parents=[as_json], help="list the configured sources")
    command.set_defaults(handler=cmd_list)
    _add_add_command(commands)
    command = commands.add_parser("remove", help="remove a source from the sources file")
    command.add_argument("id")
    command.set_defaults(handler=cmd_remove)
    command = commands.add_parser("test", parents=[as_json], help="check that a source answers")
    command.add_argument("id")
    command.set_defaults(handler=cmd_test)
    command = commands.add_parser("ls", parents=[as_json], help="list the items of a source")
    command.add_argument("id")
    command.add_argument("path", nargs="?", help="only items under this folder / prefix")
    command.set_defaults(handler=cmd_ls)
    _add_fetch_command(commands, as_json)
    command = commands.add_parser("lineage", parents=[as_json], help="where a landed file came from")
    command.add_argument("path")
    command.set_defaults(handler=cmd_lineage)
    _add_secrets_command(commands, as_json)
    return parser


def _add_fetch_command(commands: Any, as_json: argparse.ArgumentParser) -> None:
    command = commands.add_parser("fetch", parents=[as_json], help="land items in the workspace")
    command.add_argument("id")
    command.add_argument("identifiers", nargs="*", metavar="IDENTIFIER", help="items to fetch (see 'ls')")
    command.add_argument("--all", action="store_true", help="fetch every item the source lists")
    command.add_argument(
        "--workspace", metavar="DIR", help=f"workspace root (default: ${WORKSPACE_ENV} or ./workspace)"
    )
    command.add_argument("--concurrency", type=int, default=4, help="items fetched at once (default 4)")
    command.set_defaults(handler=cmd_fetch)


def _add_secrets_command(commands: Any, as_json: argparse.ArgumentParser) -> None:
    secrets = commands.add_parser("secrets", help="the credential store behind {secret: NAME}")
    actions = secrets.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=_Parser)
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


def _add_add_command(commands: Any) -> None:
    add = commands.add_parser("add", help="add a source (see 'add TYPE --help' for its options)")
    types_ = add.add_subparsers(dest="type", required=True, metavar="TYPE", parser_class=_Parser)
    for type_name in sorted(known_type_names()):
        command = types_.add_parser(type_name, help=f"a source of type {type_name}")
        command.add_argument("id", help="stable identifier, e.g. ds-azure-prod")
        command.add_argument("--name", help="human-readable name (default: the id)")
        command.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                             help="any config key; VALUE is YAML, e.g. --set 'dsn={env: PG_DSN}'")
        command.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE",
                             help="a free-form label")
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
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError("not valid YAML") from None


# --- commands ---------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    """``list``: one line per source (id, type, name, config with references, never values)."""
    sources = SourceRegistry(args.sources).list()
    if args.json:
        _print_json([_source_summary(s) for s in sources])
        return 0
    if not sources:
        print(f"no sources in {SourceRegistry(args.sources).path} (add one with '{PROG} add')")
        return 0
    rows = [(s.id, s.type_name, s.name, _config_text(s.config)) for s in sources]
    _print_table(("ID", "TYPE", "NAME", "CONFIG"), rows)
    return 0


def _source_summary(source: DataSourceConfig) -> dict[str, Any]:
    config = {k: (MASK if not is_reference(v) and _is_secret(v) else v) for k, v in source.config.items()}
    return {"id": source.id, "type": source.type_name, "name": source.name, "config": config,
            "created_at": source.created_at, "metadata": source.metadata}


def _is_secret(value: Any) -> bool:
    from connectors.credentials import Secret

    return isinstance(value, Secret)


def _config_text(config: dict[str, Any]) -> str:
    parts = []
    for key, value in config.items():
        if is_reference(value):
            kind, name = next(iter(value.items()))
            value = f"{{{kind}: {name}}}"
        parts.append(f"{key}={value}")
    return " ".join(parts)


def cmd_add(args: argparse.Namespace) -> int:
    """``add TYPE ID``: validate, keep prompted secrets in the store, append to the sources file."""
    registry = SourceRegistry(args.sources)
    config, prompts = _config_from_args(args)
    source = DataSourceConfig(id=args.id, type=args.type, name=args.name or args.id, config=config,
                              metadata=_pairs(args.metadata, "--metadata"))
    if any(existing.id == source.id for existing in registry.list()):
        raise ConfigurationError(f"source id {source.id!r} is taken", source_id=source.id)
    if prompts:
        store = default_store()  # fails closed before anything is asked
        for field, secret_name in prompts.items():
            store.set(secret_name, _read_secret(f"{field} for source {source.id}: "))
    registry.add(source)
    print(f"added source {source.id!r} ({source.type_name}) to {registry.path}")
    return 0


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
    import yaml

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


def _read_secret(prompt: str) -> str:
    """A secret from the terminal without echo, or one line from a pipe."""
    if sys.stdin.isatty():
        value = getpass.getpass(prompt)
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise ConfigurationError("no secret value given")
    return value


def cmd_remove(args: argparse.Namespace) -> int:
    """``remove ID``."""
    registry = SourceRegistry(args.sources)
    removed = registry.remove(args.id)
    print(f"removed source {removed.id!r} from {registry.path}")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    """``test ID``: exit 0 when the source answers, 1 (with the reason) when not."""
    ok, reason = asyncio.run(_test(SourceRegistry(args.sources), args.id))
    if args.json:
        _print_json({"id": args.id, "ok": ok, "error": None if ok else redact(reason)})
    elif ok:
        print(f"source {args.id!r}: ok")
    return 0 if ok else _fail(reason, EXIT_FAILURE)


async def _test(registry: SourceRegistry, source_id: str) -> tuple[bool, str]:
    connector = registry.create_connector(source_id)
    try:
        await connector.connect()
        if await connector.test_connection():
            return True, ""
        return False, f"source '{source_id}': the source does not answer with these settings"
    except DataSourceError as exc:
        return False, str(exc)
    finally:
        await connector.disconnect()


def cmd_ls(args: argparse.Namespace) -> int:
    """``ls ID [PATH]``: size, modification time and identifier of each item."""

    async def run(connector: DataSourceConnector) -> int:
        items = await connector.list_items(args.path)
        if args.json:
            _print_json([{"name": i.name, "path": i.path, "size": i.size, "modified_at": i.modified_at,
                          "metadata": i.metadata} for i in items])
            return 0
        rows = [(_human_size(i.size), _iso_time(i.modified_at), i.path) for i in items]
        _print_table(("SIZE", "MODIFIED", "PATH"), rows, align_right=(0,))
        return 0

    return asyncio.run(_with_connector(args, run))


async def _with_connector(args: argparse.Namespace, run: Callable[[DataSourceConnector], Any]) -> int:
    async with SourceRegistry(args.sources) as registry:
        result: int = await run(await registry.connector(args.id))
        return result


def cmd_fetch(args: argparse.Namespace) -> int:
    """``fetch ID IDENTIFIER... | --all``: land items under ``<workspace>/<ID>/``."""
    if not args.identifiers and not args.all:
        raise UsageError("give at least one IDENTIFIER, or --all")
    workspace = Path(args.workspace or os.environ.get(WORKSPACE_ENV) or "workspace").absolute() / args.id

    async def run(connector: DataSourceConnector) -> int:
        identifiers = list(args.identifiers)
        if args.all:
            identifiers += [item.path for item in await connector.list_items()]
        bar = ProgressBar(sys.stderr, len(identifiers)) if sys.stderr.isatty() else None
        with on_progress(bar):
            results = await _fetch_all(connector, identifiers, str(workspace), args.concurrency, bar)
        return _report_fetch(results, args.json)

    return asyncio.run(_with_connector(args, run))


async def _fetch_all(
    connector: DataSourceConnector, identifiers: list[str], workspace: str, concurrency: int,
    bar: ProgressBar | None,
) -> list[FetchResult]:
    # the connector's own fetch_many (batched where it can), a chunk at a time so the bar counts items
    chunk = max(1, concurrency) * 4
    results: list[FetchResult] = []
    try:
        for start in range(0, len(identifiers), chunk):
            batch = await connector.fetch_many(identifiers[start : start + chunk], workspace, concurrency=concurrency)
            for result in batch:
                if bar is not None:
                    bar.item_done(result.identifier)
            results.extend(batch)
        return results
    finally:
        if bar is not None:
            bar.close()


def _report_fetch(results: list[FetchResult], as_json: bool) -> int:
    if as_json:
        _print_json([{"identifier": r.identifier, "path": r.path,
                      "error": None if r.ok else redact(str(r.error))} for r in results])
    for result in results:
        if result.ok and not as_json:
            print(result.path)
        elif not result.ok:
            print(f"{PROG}: error: {redact(str(result.error))}", file=sys.stderr)
    return 0 if all(r.ok for r in results) else EXIT_FAILURE


def cmd_lineage(args: argparse.Namespace) -> int:
    """``lineage PATH``: the provenance record of a landed file."""
    record = read_provenance(args.path)
    if args.json:
        _print_json(record)
        return 0
    width = max((len(key) for key in record), default=0)
    for key, value in record.items():
        shown = value if isinstance(value, str) else json.dumps(value, default=str)
        print(f"{key:<{width}}  {redact(shown)}")
    return 0


def cmd_secrets_set(args: argparse.Namespace) -> int:
    """``secrets set NAME``: store (or replace) a secret; the value is asked for, never an argument."""
    store = default_store()
    check_name(args.name)
    replaced = store.get(args.name) is not None
    store.set(args.name, _read_secret(f"value of secret {args.name}: "))
    print(f"{'replaced' if replaced else 'stored'} secret {args.name!r}")
    return 0


def cmd_secrets_list(args: argparse.Namespace) -> int:
    """``secrets list``: the names only."""
    names = default_store().names()
    if args.json:
        _print_json(names)
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


# --- output -----------------------------------------------------------------------


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _print_table(
    header: tuple[str, ...], rows: Sequence[tuple[str, ...]], align_right: tuple[int, ...] = ()
) -> None:
    """Columns sized to their content; on a terminal, lines are cut to its width."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    limit = shutil.get_terminal_size((100, 24)).columns if sys.stdout.isatty() else None
    for row in [header, *rows]:
        cells = [str(c).rjust(w) if i in align_right else str(c).ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        print(_fit("  ".join(cells).rstrip(), limit))


def _fit(line: str, limit: int | None) -> str:
    if limit is None or len(line) <= limit:
        return line
    return line[: max(limit - 1, 0)] + "…"


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _iso_time(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


class ProgressBar:
    """A one-line progress bar on a terminal: items done, bytes done, the current item.

    It is the ``on_progress`` listener (called from worker threads, hence the
    lock) and is told when each item finishes; redraws at most 10 times a second.
    """

    def __init__(self, stream: IO[str], items: int, width: int | None = None) -> None:
        self.stream = stream
        self.items = items
        self.done_items = 0
        self._bytes: dict[str, tuple[int, int | None]] = {}
        self._current = ""
        self._lock = threading.Lock()
        self._last_draw = 0.0
        self._width = width

    def __call__(self, identifier: str, done: int, total: int | None) -> None:
        with self._lock:
            self._bytes[identifier] = (done, total)
            self._current = identifier
            self._draw(force=False)

    def item_done(self, identifier: str) -> None:
        """Count one more finished item (landed or failed)."""
        with self._lock:
            self.done_items += 1
            self._draw(force=self.done_items == self.items)  # the final state is always shown

    def render(self) -> str:
        """The bar's text, cut to the terminal width."""
        done = sum(d for d, _ in self._bytes.values())
        total = sum(t or d for d, t in self._bytes.values())
        fraction = self.done_items / self.items if self.items else 1.0
        if self.items == 1 and total:
            fraction = done / total  # one large item: show its bytes
        filled = int(fraction * 20)
        text = (f"[{'#' * filled}{'.' * (20 - filled)}] {self.done_items}/{self.items} items "
                f"{_human_size(done)}/{_human_size(total)} {self._current}")
        width = self._width or shutil.get_terminal_size((80, 24)).columns
        return _fit(text, width - 1)

    def _draw(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        self.stream.write("\r\x1b[K" + self.render())
        self.stream.flush()

    def close(self) -> None:
        """Leave the terminal on a fresh line."""
        with self._lock:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


if __name__ == "__main__":
    sys.exit(main())
