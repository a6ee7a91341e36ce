"""The reference pages, generated from the code at every build (mkdocs-gen-files runs this).

Nothing under ``reference/`` is committed, so these pages cannot drift from the code:

* ``reference/settings.md``: every connector type's settings model, the per-source Dagster and sync
  settings, the Component's attributes, the API's policy and limits, with their defaults (the API's
  meanings from its fields' docstrings: :func:`field_meanings`);
* ``reference/environment.md``: every ``DA_*`` variable, from :mod:`connectors.environment`;
* ``reference/cli.md``: every ``da-sources`` command, walked from its argparse parser;
* ``reference/python.md``: the public names of ``connectors`` and ``da_pipelines`` (mkdocstrings);
* ``reference/http-api.md`` and ``reference/openapi.json``: the HTTP API's OpenAPI schema, from the app;
* ``reference/modules.md``: every module of the two packages with its docstring's first line;
* ``benchmark-results/``: the result files committed under ``benchmarks/results/``, and an index of them.

Each ``*_page()`` function returns a page's markdown; the tests call them too.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import enum
import importlib
import inspect
import json
import tempfile
import textwrap
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

GENERATED = "<!-- generated from the code at build time by docs/_gen/reference.py; do not edit -->\n\n"


def _cell(text: object) -> str:
    """``text`` made safe for one table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _code(text: object) -> str:
    value = str(text).replace("\n", " ")  # a pipe in a code span does not split a table cell
    return f"``{value}``" if "`" in value else f"`{value}`"


# ---------------------------------------------------------------------------------------------- settings


def _type_name(annotation: Any) -> str:
    """A short, readable name of a field's type (``list[ItemSetSpec]``, ``int | None``, ``'a' | 'b'``)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(_type_name(a) for a in args)}]" if args else name
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def _default(field: FieldInfo) -> str:
    """The default as it is written in YAML/JSON (``"csv"``, ``null``, ``[]``); a computed one by its rule."""
    if field.is_required():
        return "required"
    factory = field.default_factory
    if factory is not None and getattr(factory, "__name__", "") == "<lambda>" and field.annotation is int:
        return "now (Unix seconds)"  # created_at: computed when the entry is made
    value = factory() if factory is not None else field.default  # type: ignore[call-arg]
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, list) and value and isinstance(value[0], BaseModel):
        value = [v.model_dump(mode="json", exclude_defaults=True) for v in value]
    if isinstance(value, enum.Enum):
        value = value.value
    return _code(json.dumps(value, default=str))


def _nested_models(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _nested_models(arg)


def model_table(model: type[BaseModel], heading: str, level: int = 3, seen: set[type] | None = None) -> list[str]:
    """A heading, the model's first docstring line and one row per field; then the models it nests."""
    seen = set() if seen is None else seen
    seen.add(model)
    doc = (model.__doc__ or "").strip().splitlines()
    lines = [f"{'#' * level} {heading}", "", doc[0] if doc else "", "",
             "| key | type | default | what it does |", "| --- | --- | --- | --- |"]
    nested: list[type[BaseModel]] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        lines.append(f"| {_code(key)} | {_code(_type_name(field.annotation))} | {_default(field)} "
                     f"| {_cell(field.description or '')} |")
        nested += [m for m in _nested_models(field.annotation) if m not in seen and m not in nested]
    lines.append("")
    for inner in nested:
        if inner not in seen:
            lines += model_table(inner, f"`{inner.__name__}`", min(level + 1, 4), seen)
    return lines


def field_meanings(cls: type) -> dict[str, str]:
    """Each dataclass field's docstring: the string literal right below the field, on one line.

    Args:
        cls: a dataclass whose source can be read.

    Returns:
        Field name to meaning, for the fields that have one.
    """
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
    meanings = {}
    for node, after in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            meanings[node.target.id] = " ".join(after.value.value.split())
    return meanings


def missing_meanings(cls: type) -> list[str]:
    """The fields of dataclass ``cls`` without a docstring (each must have one: it is their reference)."""
    meanings = field_meanings(cls)
    return [field.name for field in dataclasses.fields(cls) if not meanings.get(field.name)]


def _meanings(*classes: type) -> dict[str, str]:
    """The field meanings of ``classes``; the build fails on a field without one."""
    if missing := [f"{cls.__name__}.{name}" for cls in classes for name in missing_meanings(cls)]:
        raise ValueError(f"give these fields a docstring (their meaning on the reference): {', '.join(missing)}")
    return {name: text for cls in classes for name, text in field_meanings(cls).items()}


def _dataclass_table(cls: type, skip: frozenset[str], variable_prefix: str) -> list[str]:
    """One row per field of a dataclass: its default, the declared variable that sets it, if any, its meaning."""
    from connectors.environment import VARIABLES

    declared = {v.name for v in VARIABLES}
    meanings = _meanings(cls)
    lines = ["| field | default | variable | what it does |", "| --- | --- | --- | --- |"]
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        if field.default is not dataclasses.MISSING:
            default: object = _code(json.dumps(field.default, default=str))
        elif field.default_factory is not dataclasses.MISSING:
            default = _code(json.dumps(field.default_factory(), default=str))
        else:
            default = "required (`from_env` sets it)"
        variable = f"{variable_prefix}{field.name.upper()}"
        shown = f"[{_code(variable)}](environment.md)" if variable in declared else ""
        lines.append(f"| {_code(field.name)} | {default} | {shown} | {_cell(meanings[field.name])} |")
    return lines + [""]


def _policy_table() -> list[str]:
    """One row per knob of the policy file, with its closed default and its meaning (from the fields)."""
    from connectors.api.policy import ApiPolicy
    from connectors.reach import ReachPolicy

    meanings = _meanings(ApiPolicy, ReachPolicy)
    lines = ["| knob | default | what it does |", "| --- | --- | --- |"]
    for knob, default in json.loads(ApiPolicy().describe()).items():
        lines.append(f"| {_code(knob)} | {_code(json.dumps(default))} | {_cell(meanings[knob])} |")
    return lines + [""]


def settings_page() -> str:
    """Every connector type's ``config`` keys, ``metadata.dagster``, ``metadata.sync``, the Component, the API."""
    from connectors.api.api_settings import ApiSettings
    from connectors.base import DataSourceConfig
    from connectors.pipeline_settings import PipelineSettings
    from connectors.syncing.source_sync import SyncOptions
    from connectors.type_table import settings_model_for

    lines = [GENERATED + "# Settings reference", "",
             "Every key a source's `config` and `metadata` accept, with its default, read from the pydantic",
             "models that validate them. Any value may be a secret reference, `{env: NAME}` or `{secret: NAME}`",
             "([sources](../concepts/sources.md)).", "",
             "## A source", ""]
    lines += model_table(DataSourceConfig, "A sources-file entry (`DataSourceConfig`)")[2:]
    lines += ["## Connector types (`config`)", ""]
    for type_name in ("local_file", "azure_blob", "s3", "postgresql"):
        model = settings_model_for(type_name)
        lines += model_table(model, f"`{type_name}` ({model.__name__})")
    lines += ["## Dagster, per source (`metadata.dagster`)", ""]
    lines += model_table(PipelineSettings, "`metadata.dagster` (PipelineSettings)")
    lines += ["## Syncs (`metadata.sync`)", ""]
    lines += model_table(SyncOptions, "`metadata.sync` (SyncOptions)")
    lines += _component_section()
    lines += ["## The HTTP API", "", "### The operator's policy (`api-policy.yaml`)", "",
              "Each knob with its default (no policy file: these closed defaults); the rules that hold whatever",
              "the file says are on the [HTTP API page](../api.md).", ""]
    lines += _policy_table()
    lines += ["### Paths and limits (`ApiSettings`)", "",
              "Set through the [environment variables](environment.md) of the HTTP API.", ""]
    lines += _dataclass_table(ApiSettings, frozenset({"policy"}), "DA_API_")
    return "\n".join(lines)


def _component_section() -> list[str]:
    try:
        import da_pipelines
    except ModuleNotFoundError:  # built without the dagster extra
        return ["## The Dagster Component", "", "Install `da-sources[dagster]` to generate this section.", ""]
    component = da_pipelines.DataSourceComponent
    lines = ["## The Dagster Component (`defs.yaml` attributes)", "",
             f"`{component.__module__}.{component.__qualname__}`; see [the Component](../dagster/component.md).", "",
             "| attribute | default | what it does |", "| --- | --- | --- |"]
    for name, field in component.model_fields.items():
        lines.append(f"| {_code(name)} | {_default(field) if name != 'defs_state' else 'local filesystem'} "
                     f"| {_cell(field.description or '')} |")
    return lines + [""]


# ----------------------------------------------------------------------------------------- environment


def environment_page() -> str:
    """Every declared ``DA_*`` variable, by group."""
    from connectors.environment import VARIABLES

    lines = [GENERATED + "# Environment variables", "",
             "Every `DA_*` variable the project reads, and Dagster's own that its files set, from the one",
             "registry in the code (`connectors/environment.py`); a test fails on a `DA_*` name in the code that",
             "is not declared there, and the code reads them through `connectors.environment.read`.", ""]
    groups: dict[str, list[Any]] = {}
    for variable in VARIABLES:
        groups.setdefault(variable.group, []).append(variable)
    for group, variables in groups.items():
        lines += [f"## {group}", "", f"Read by {variables[0].read_by}.", "",
                  "| variable | default | what it does |", "| --- | --- | --- |"]
        lines += [f"| {_code(v.name)} | {_cell(v.default)} | {_cell(v.description)} |" for v in variables]
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- CLI


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, child in action.choices.items():
                if child not in found.values():
                    child.description = child.description or helps.get(name)
                    found[name] = child
    return found


def _arguments(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        name = ", ".join(action.option_strings) or str(action.metavar or action.dest)
        if action.option_strings and action.nargs != 0:
            name += f" {action.metavar or action.dest.upper()}"
        default = "" if not action.default or action.default == argparse.SUPPRESS or action.nargs == 0 \
            else action.default
        rows.append(f"| {_code(name)} | {_cell(action.help or '')} | {_cell(default)} |")
    if not rows:
        return []
    return ["| argument | what | default |", "| --- | --- | --- |", *rows, ""]


def _walk(parser: argparse.ArgumentParser, path: list[str], level: int) -> list[str]:
    lines = [f"{'#' * level} `{' '.join(path)}`", ""]
    if parser.description:
        lines += [_cell(parser.description), ""]
    lines += ["```text", parser.format_usage().strip(), "```", ""]
    lines += _arguments(parser)
    for name, child in _subcommands(parser).items():
        lines += _walk(child, [*path, name], min(level + 1, 4))
    return lines


def cli_page() -> str:
    """Every command, subcommand and argument of ``da-sources``, from its parser."""
    import os

    from connectors.cli import build_parser

    os.environ["COLUMNS"] = "100"  # stable usage lines, whatever the terminal
    parser = build_parser()
    parser.prog = "da-sources"
    lines = [GENERATED + "# CLI reference", "",
             "Every `da-sources` command, walked from its argparse parser (`connectors.cli.build_parser`);",
             "the guide is [the CLI](../cli.md).", ""]
    lines += ["```text", parser.format_usage().strip(), "```", ""] + _arguments(parser)
    for name, child in _subcommands(parser).items():
        lines += _walk(child, ["da-sources", name], 2)
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- Python API


def _public(module_name: str) -> list[str]:
    """``module.NAME`` for each public name, at the module that defines it (so moved modules follow)."""
    import importlib

    module = importlib.import_module(module_name)
    paths = []
    for name in sorted(getattr(module, "__all__", [])):
        if hasattr(getattr(module, name), "__qualname__"):  # not a value (da_pipelines.defs)
            paths.append(_defined_at(module_name, name))
    return paths


def _defined_at(module_name: str, name: str) -> str:
    """Where ``module_name.name`` is defined: the path mkdocstrings documents it at."""
    import importlib

    obj = getattr(importlib.import_module(module_name), name)
    return f"{obj.__module__}.{obj.__qualname__}"


BUILT_IN_NAMES = (("connectors.local_file", "LocalFileConnector"), ("connectors.azure_blob", "AzureBlobConnector"),
                  ("connectors.s3", "S3Connector"), ("connectors.postgresql", "PostgreSQLConnector"),
                  ("connectors.registry", "SourceRegistry"), ("connectors.testing", "MemoryConnector"))
API_NAMES = (("connectors.api", "create_app"), ("connectors.api.api_settings", "ApiSettings"))
DAGSTER_NAMES = (("da_pipelines.resources", "WorkspaceResource"), ("da_pipelines.resources", "SourceResource"),
                 ("da_pipelines.resources", "LocalFileResource"), ("da_pipelines.resources", "AzureBlobResource"),
                 ("da_pipelines.resources", "S3Resource"), ("da_pipelines.resources", "PostgreSQLResource"),
                 ("da_pipelines.translator", "DataSourceTranslator"), ("da_pipelines.factory", "build_source_defs"),
                 ("da_pipelines.factory", "SourceDefs"), ("da_pipelines.jobs", "SyncConfig"))


def _config_fields(module_name: str, name: str) -> list[str]:
    """The fields of a Dagster resource or config class as a table (mkdocstrings shows none of a model's)."""
    obj = getattr(importlib.import_module(module_name), name)
    if not (isinstance(obj, type) and issubclass(obj, BaseModel)):
        return []
    return model_table(obj, f"Fields of `{name}`", 5)


def python_page() -> str:
    """mkdocstrings directives for the public names of ``connectors`` and ``da_pipelines``."""
    lines = [GENERATED + "# Python API", "",
             "The public names: `from connectors import ...` (the connector library, no Dagster) and",
             "`da_pipelines` (the Dagster code location and Component). Each is documented where it is defined.", "",
             "## `connectors`", ""]
    for path in _public("connectors"):
        lines += [f"::: {path}", "    options:", "      heading_level: 3", ""]
    lines += ["## The built-in connectors", ""]
    for module, name in BUILT_IN_NAMES:
        lines += [f"::: {_defined_at(module, name)}", "    options:", "      heading_level: 3", ""]
    lines += ["## The HTTP API in Python (`connectors.api`)", "",
              "`connectors.api.router` is the FastAPI `APIRouter` to include in an app of your own;",
              "`create_app` builds the standalone app `da-sources serve` runs, from `ApiSettings`",
              "([the routes](http-api.md), [the variables](environment.md)).", ""]
    for module, name in API_NAMES:
        lines += [f"::: {_defined_at(module, name)}", "    options:", "      heading_level: 3", ""]
    lines += ["## `da_pipelines`", "",
              "`da_pipelines.defs`: the `dagster.Definitions` of the sources file, built on first access.", ""]
    try:  # the package's names, then its Components' (da_pipelines.components, where dg finds them)
        paths = _public("da_pipelines") + _public("da_pipelines.components")
    except ModuleNotFoundError:  # built without the dagster extra
        paths = []
    for path in dict.fromkeys(paths):
        lines += [f"::: {path}", "    options:", "      heading_level: 3", ""]
    if paths:
        lines += ["### Building blocks", "",
                  "For a code location of your own: the resources a source's assets use, the translator that",
                  "makes every asset key and its metadata, and one source's definitions put together.", ""]
        for module, name in DAGSTER_NAMES:
            lines += [f"::: {module}.{name}", "    options:", "      heading_level: 4", ""]
            lines += _config_fields(module, name)
    lines += ["## `da_sources_client` (DeepAnalyze's side)", "",
              "`pip install da-sources-client` ([clients/python](../deepanalyze.md)): the HTTP client, and",
              "`da_sources_client.deepanalyze`, the glue for DeepAnalyze's chat route. No dependency of its own.", ""]
    for path in dict.fromkeys(_public("da_sources_client") + _public("da_sources_client.deepanalyze")):
        lines += [f"::: {path}", "    options:", "      heading_level: 3", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ OpenAPI


def openapi_schema() -> dict[str, Any]:
    """The OpenAPI schema of ``da-sources serve``'s app, built with throwaway settings (no file is read)."""
    from connectors.api.api_settings import ApiSettings
    from connectors.api.app import create_app

    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        settings = ApiSettings(sources_file=base / "sources.yaml", keys_file=base / "api-keys.json",
                               audit_log=base / "api-audit.jsonl", workspace_base=base / "workspace")
        schema: dict[str, Any] = create_app(settings).openapi()
    return schema


def _schema_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if schema.get("type") == "array":
        return f"list of {_schema_name(schema.get('items', {}))}"
    if "anyOf" in schema:
        return " or ".join(_schema_name(s) for s in schema["anyOf"])
    return str(schema.get("type", "object"))


def _operation(method: str, path: str, op: dict[str, Any]) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", ""]
    if op.get("summary"):
        lines += [f"**{_cell(op['summary'])}**", ""]
    if op.get("description"):
        lines += [op["description"].strip(), ""]
    params = op.get("parameters", [])
    if params:
        lines += ["| parameter | in | type | required | what |", "| --- | --- | --- | --- | --- |"]
        for p in params:
            lines.append(f"| {_code(p['name'])} | {p['in']} | {_code(_schema_name(p.get('schema', {})))} "
                         f"| {'yes' if p.get('required') else 'no'} | {_cell(p.get('description', ''))} |")
        lines.append("")
    body = op.get("requestBody", {}).get("content", {})
    for media, content in body.items():
        lines += [f"Body ({media}): {_schema_link(content.get('schema', {}))}", ""]
    responses = op.get("responses", {})
    errors = [status for status, answer in responses.items() if _is_error(status, answer)]
    shown = [(status, answer) for status, answer in responses.items() if status not in errors]
    if shown or errors:
        lines += ["| status | answer |", "| --- | --- |"]
        for status, answer in shown:
            contents: list[dict[str, Any]] = list(answer.get("content", {}).values())
            schema = contents[0].get("schema") if contents else None
            linked = _schema_link(schema) if schema else ""
            lines.append(f"| {status} | {_cell(answer.get('description', ''))} {linked} |")
        if errors:
            lines.append(f"| {', '.join(errors)} | an [error](#errors): [`ErrorBody`](#schema-errorbody) |")
        lines.append("")
    return lines


def _is_error(status: str, answer: dict[str, Any]) -> bool:
    contents: list[dict[str, Any]] = list(answer.get("content", {}).values())
    ref = str(contents[0].get("schema", {}).get("$ref", "")) if contents else ""
    return status[:1] in "45" and ref.endswith("/ErrorBody")


def _error_table(schema: dict[str, Any]) -> list[str]:
    """Each error status the routes answer, with what it means (its first description)."""
    meanings: dict[str, str] = {}
    for methods in schema["paths"].values():
        for op in methods.values():
            for status, answer in op.get("responses", {}).items():
                if _is_error(status, answer):
                    meanings.setdefault(status, answer.get("description", ""))
    lines = ["## Errors", "", "Every error answers `{\"detail\": ...}` ([`ErrorBody`](#schema-errorbody)).", "",
             "| status | meaning |", "| --- | --- |"]
    return lines + [f"| {status} | {_cell(meanings[status])} |" for status in sorted(meanings)] + [""]


def _schema_link(schema: dict[str, Any]) -> str:
    name = _schema_name(schema)
    if "$ref" in schema:
        return f"[`{name}`](#schema-{name.lower()})"
    return f"`{name}`"


def http_api_page(schema: dict[str, Any]) -> str:
    """One section per tag, one per route (parameters, body, answers), then every schema's fields."""
    lines = [GENERATED + "# HTTP API reference", "",
             f"{schema['info']['title']} {schema['info']['version']}: rendered from the OpenAPI schema of the app",
             "(`connectors.api.create_app`), without any script from the network; the raw schema is",
             "[openapi.json](openapi.json). The guide is [the HTTP API](../api.md).", ""]
    by_tag: dict[str, list[list[str]]] = {}
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            tag = (op.get("tags") or ["other"])[0]
            by_tag.setdefault(tag, []).append(_operation(method, path, op))
    for tag, operations in by_tag.items():
        lines += [f"## {tag}", ""]
        for operation in operations:
            lines += operation
    lines += _error_table(schema)
    lines += ["## Schemas", ""]
    for name, body in schema.get("components", {}).get("schemas", {}).items():
        lines += [f"### `{name}` {{#schema-{name.lower()}}}", ""]
        if body.get("description"):
            lines += [body["description"].strip(), ""]
        props = body.get("properties", {})
        if props:
            required = set(body.get("required", []))
            lines += ["| field | type | required | what |", "| --- | --- | --- | --- |"]
            for field, spec in props.items():
                lines.append(f"| {_code(field)} | {_code(_schema_name(spec))} | {'yes' if field in required else 'no'} "
                             f"| {_cell(spec.get('description', ''))} |")
            lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ modules


def _first_line(path: Path) -> str:
    """The first line of a module's docstring, read without importing it."""
    import ast

    doc = ast.get_docstring(ast.parse(path.read_text()))
    return doc.strip().splitlines()[0] if doc else ""


def modules_page(root: Path | None = None) -> str:
    """Every module of ``connectors`` and ``da_pipelines``, with the first line of its docstring."""
    root = Path(__file__).resolve().parents[2] if root is None else root
    lines = [GENERATED + "# Module index", "",
             "Every module of the two packages, as the tree holds it now, with the first line of its",
             "docstring. The overview is [the code layout](../layout.md).", ""]
    for package in ("connectors", "da_pipelines"):
        lines += [f"## `{package}`", "", "| module | what it is |", "| --- | --- |"]
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            lines.append(f"| `{name}` | {_cell(_first_line(path))} |")
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- benchmark results


def benchmark_results(root: Path | None = None) -> dict[str, str]:
    """The result files committed under ``benchmarks/results/``, by page name, plus an index of them."""
    root = Path(__file__).resolve().parents[2] if root is None else root
    files = sorted((root / "benchmarks" / "results").glob("*.md"))
    pages = {f"benchmark-results/{f.name}": f"<!-- copied at build time from benchmarks/results/{f.name} -->\n\n"
             + f.read_text() for f in files}
    lines = [GENERATED + "# Benchmark results", "",
             "Every result file committed under `benchmarks/results/`, written by the benchmark itself with the",
             "commit, the machine and the date of its run; the figures the [benchmarks page](../benchmarks.md)",
             "quotes come from these.", "", "| result file | run |", "| --- | --- |"]
    for f in files:
        facts = [line.removeprefix("- ") for line in f.read_text().splitlines()
                 if line.startswith(("- commit:", "- date:", "- machine:"))]
        lines.append(f"| [{f.name}]({f.name}) | {_cell('; '.join(facts))} |")
    if not files:
        lines.append("| (none committed yet) | |")
    pages["benchmark-results/index.md"] = "\n".join(lines) + "\n"
    return pages


# --------------------------------------------------------------------------------------------- the build


PAGES: dict[str, Callable[[], str]] = {
    "reference/settings.md": settings_page,
    "reference/environment.md": environment_page,
    "reference/cli.md": cli_page,
    "reference/python.md": python_page,
    "reference/modules.md": modules_page,
}


def main() -> None:
    import mkdocs_gen_files

    for name, page in PAGES.items():
        with mkdocs_gen_files.open(name, "w") as out:
            out.write(page())
    schema = openapi_schema()
    with mkdocs_gen_files.open("reference/openapi.json", "w") as out:
        json.dump(schema, out, indent=1)
    with mkdocs_gen_files.open("reference/http-api.md", "w") as out:
        out.write(http_api_page(schema))
    for name, text in benchmark_results().items():
        with mkdocs_gen_files.open(name, "w") as out:
            out.write(text)


if __name__ in ("__main__", "<run_path>"):
    main()
