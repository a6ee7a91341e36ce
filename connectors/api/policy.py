"""The operator's policy: what an API caller may create and where the API's sources may reach.

Read from ``$DA_API_POLICY_FILE`` (default ``api-policy.yaml`` beside the sources file), a file
of the operator's that no route writes; a missing file means the closed defaults. Each knob is a
field of :class:`ApiPolicy` (``reach``: of :class:`ReachPolicy`), its meaning in its docstring; the
rules that hold whatever the file says: ``docs/design/api.md``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from connectors.base import DataSourceConfig, DataSourceConnector
from connectors.environment import read
from connectors.errors import ConfigurationError
from connectors.plugins import get_connector_class
from connectors.reach import ReachPolicy, ReachRefusedError
from connectors.secrets.references import is_reference, resolve_reference
from connectors.secrets.store import secrets_file_path

POLICY_FILE_ENV = "DA_API_POLICY_FILE"
POLICY_FILE_NAME = "api-policy.yaml"
MADE_THROUGH_API = "made_through_api"  # metadata.api.<this>: true on every source the API creates
BUILTIN_TYPES = frozenset({"azure_blob", "postgresql", "local_file", "s3"})
#: config fields only the operator sets (in the sources file, with the CLI)
OPERATOR_FIELDS: dict[str, frozenset[str]] = {
    "postgresql": frozenset({"allow_privileged_queries", "pool_max_size"}),  # pool_min_size stays below the max
    "azure_blob": frozenset({"credential"}),  # the server's own identity, sent to a caller's account
    "s3": frozenset({"credential", "profile"}),  # the server's own AWS identity and config files
}
OPERATOR_METADATA = frozenset({"api"})  # metadata.api.max_item_bytes and whatever joins it


class PolicyError(ReachRefusedError):
    """The operator's policy refuses this; the message names the field, never its value."""


@dataclass(frozen=True)
class ApiPolicy:
    """What API callers may create and reach.

    Each field's docstring is its meaning on the generated settings reference (``docs/_gen/reference.py``);
    the file's knobs are these fields, with ``reach`` spelled as its own fields.
    """

    connector_types: frozenset[str] = BUILTIN_TYPES
    """The connector types ``POST /v1/data-sources`` may create; a plugin's type only when listed."""
    local_roots: tuple[Path, ...] = ()
    """Folders a ``local_file`` root must lie beneath; none by default: no ``local_file`` source from the API."""
    reach: ReachPolicy = field(default_factory=ReachPolicy)
    """Where sources may connect: the knobs ``hosts``, ``ports``, ``schemes`` and ``postgres_require_auth``."""
    max_sources: int = 100
    """Most sources in the sources file: a create past it is refused (403)."""
    path: Path | None = None
    """The file the policy was read from (not a knob); a ``local_file`` root may not contain it."""

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ApiPolicy:
        """The operator's policy file (YAML or JSON).

        Args:
            path: the file (:func:`policy_file_path`).

        Returns:
            The policy it holds; the closed defaults when there is no such file.

        Raises:
            ConfigurationError: the file cannot be read or parsed, is not a mapping, or names an unknown knob.
        """
        file = Path(path).absolute()
        try:
            document = yaml.safe_load(file.read_text()) or {}
        except FileNotFoundError:
            return cls(path=file)
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigurationError(f"API policy {file}: cannot be read ({type(exc).__name__})") from None
        if not isinstance(document, Mapping):
            raise ConfigurationError(f"API policy {file}: expected a mapping of knobs")
        return cls.from_mapping(document, path=file)

    @classmethod
    def from_mapping(cls, document: Mapping[str, Any], path: Path | None = None) -> ApiPolicy:
        """A policy from its knobs, in the file's form (``hosts``, ``ports``... at the top level).

        Args:
            document: the knobs; a knob left out keeps its closed default.
            path: the file it came from, kept so a ``local_file`` root may not contain it.

        Returns:
            The policy.

        Raises:
            ConfigurationError: a knob is unknown.
        """
        known = {"connector_types", "local_roots", "hosts", "ports", "schemes", "postgres_require_auth",
                 "max_sources"}
        if unknown := sorted(set(document) - known):
            raise ConfigurationError(f"API policy: unknown knob(s) {', '.join(map(str, unknown))}")
        defaults, reach = cls(), ReachPolicy()
        ports = document.get("ports", sorted(reach.ports or ()))
        return cls(
            connector_types=frozenset(document.get("connector_types", defaults.connector_types)),
            local_roots=tuple(Path(os.path.realpath(p)) for p in document.get("local_roots", ())),
            reach=ReachPolicy(
                hosts=tuple(str(h) for h in document.get("hosts", ())),
                ports=None if ports == "any" else frozenset(int(p) for p in ports),
                schemes=frozenset(str(s).lower() for s in document.get("schemes", reach.schemes)),
                postgres_require_auth=document.get("postgres_require_auth", reach.postgres_require_auth)),
            max_sources=int(document.get("max_sources", defaults.max_sources)),
            path=path)

    def describe(self) -> str:
        """The policy as JSON (for ``da-sources serve`` logs and docs; holds no secret).

        Returns:
            The knobs in the file's form, as one JSON object.
        """
        reach = self.reach
        return json.dumps({"connector_types": sorted(self.connector_types),
                           "local_roots": [str(p) for p in self.local_roots], "hosts": list(reach.hosts),
                           "ports": "any" if reach.ports is None else sorted(reach.ports),
                           "schemes": sorted(reach.schemes), "postgres_require_auth": reach.postgres_require_auth,
                           "max_sources": self.max_sources})


def policy_file_path(sources_file: Path) -> Path:
    """Where the operator's policy is read from.

    Args:
        sources_file: the sources file.

    Returns:
        ``$DA_API_POLICY_FILE``, else ``api-policy.yaml`` beside the sources file; absolute.
    """
    return Path(read(POLICY_FILE_ENV) or sources_file.with_name(POLICY_FILE_NAME)).absolute()


def mark_made_through_api(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Mark a source's metadata as written through the API (callers never set ``metadata.api`` themselves).

    Args:
        metadata: the new source's metadata.

    Returns:
        A copy with ``api.made_through_api: true``.
    """
    api = metadata.get("api")
    return {**metadata, "api": {**(api if isinstance(api, Mapping) else {}), MADE_THROUGH_API: True}}


def made_through_api(source: DataSourceConfig) -> bool:
    """Whether the API created a source: Dagster and the CLI then hold it to the policy's reach too.

    Args:
        source: a stored source.

    Returns:
        True when its ``metadata.api.made_through_api`` is true.
    """
    api = source.metadata.get("api")
    return isinstance(api, Mapping) and api.get(MADE_THROUGH_API) is True


def reach_for(source: DataSourceConfig, sources_file: Path) -> ReachPolicy | None:
    """The policy's reach for a source the API made (checked at connect time wherever it runs), else None.

    A source an API caller wrote may point at a name that later resolves to an
    internal address; Dagster and the CLI serve it from the same sources file, so
    they check its hosts at connect time like the API does. The operator's own
    sources (not made through the API) reach where the operator says.

    Args:
        source: a stored source.
        sources_file: the sources file, beside which the policy file is found by default.

    Returns:
        The reach rules to check at connect time, or None for the operator's own sources.
    """
    return ApiPolicy.load(policy_file_path(sources_file)).reach if made_through_api(source) else None


def protected_paths(settings: Any) -> list[Path]:
    """The server's own files and folders, which a ``local_file`` root must neither contain nor lie beneath.

    Args:
        settings: the API's settings (its keys file, sources file, audit log, workspace, jobs and state folders).

    Returns:
        Those paths and the credential store, the policy file and ``$DAGSTER_HOME``, links resolved.
    """
    paths = [settings.keys_file, settings.sources_file, settings.audit_log, settings.workspace_base,
             secrets_file_path()]
    paths += [p for p in (getattr(settings, "jobs_base", None), getattr(settings, "state_dir", None)) if p]
    if settings.policy.path is not None:
        paths.append(settings.policy.path)
    if os.environ.get("DAGSTER_HOME"):
        paths.append(Path(os.environ["DAGSTER_HOME"]))
    return [Path(os.path.realpath(p)) for p in paths]


def check_local_root(root: Any, settings: Any) -> None:
    """Refuse a ``local_file`` root outside the operator's ``local_roots`` or touching a protected path.

    Args:
        root: the root as configured (untrusted); links are resolved before it is checked.
        settings: the API's settings, with the policy.

    Raises:
        PolicyError: it is not an absolute path, lies beneath no ``local_roots`` folder, or contains
            or lies beneath one of :func:`protected_paths`.
    """
    if not isinstance(root, str) or not os.path.isabs(root):
        raise PolicyError("config.root: must be an absolute folder path")
    real = Path(os.path.realpath(root))
    if not any(real == base or base in real.parents for base in settings.policy.local_roots):
        raise PolicyError("config.root: not beneath a folder the operator's policy lists (local_roots)")
    for path in protected_paths(settings):
        if real == path or path in real.parents or real in path.parents:
            raise PolicyError("config.root: contains or lies beneath a file of the server's own (keys, secrets, "
                              "sources, audit log, Dagster home or workspace)")


def connector_for(source: DataSourceConfig, settings: Any) -> DataSourceConnector:
    """A connector of a source, bound to the operator's policy.

    Args:
        source: a stored source.
        settings: the API's settings, with the policy.

    Returns:
        The connector (not connected): a ``local_file`` root is checked now, hosts when it connects.

    Raises:
        PolicyError: a ``local_file`` root the policy refuses.
        ConfigurationError: a reference in the root cannot be resolved, or the type is unknown.
    """
    if source.type_name == "local_file":
        root: Any = source.config.get("root")  # an operator's source may reference it: checked resolved, never shown
        check_local_root(resolve_reference(root, where="config.root") if is_reference(root) else root, settings)
    connector = get_connector_class(source.type_name)(source)
    connector.reach = settings.policy.reach
    return connector


def check_request(type_name: str, changes: Mapping[str, Any], metadata: Mapping[str, Any] | None,
                  current: DataSourceConfig | None, source_id: str) -> None:
    """Refuse operator knobs and foreign references in a create or an update's changes.

    Args:
        type_name: the source's connector type.
        changes: the ``config`` keys the caller sets.
        metadata: the ``metadata`` the caller sets, if any.
        current: the stored source for an update; None for a create.
        source_id: the source's id (its own secrets are named ``<id>.<field>``).

    Raises:
        PolicyError: an operator-only field or ``metadata.api`` is set, or a reference names anything
            but this source's own stored secret for that field.
    """
    for key in sorted(OPERATOR_FIELDS.get(type_name, frozenset()) & set(changes)):
        raise PolicyError(f"config.{key}: set by the operator (sources file), not through the API")
    for key in sorted(OPERATOR_METADATA & set(metadata or {})):
        raise PolicyError(f"metadata.{key}: set by the operator (sources file), not through the API")
    for key, value in sorted(changes.items()):
        if _holds_reference(value) and not _own_reference(key, value, current, source_id):
            raise PolicyError(f"config.{key}: a reference here may only name this source's own stored secret; "
                              "give the value itself (a secret field's value is stored write-only)")


def check_changeable(source: DataSourceConfig) -> None:
    """Refuse to change the config of a source holding the operator's references (``env``, shared secrets).

    A changed host or root would send them elsewhere; such a source is changed in
    the sources file, with the CLI.

    Args:
        source: the stored source.

    Raises:
        PolicyError: its config holds a reference other than its own write-only secrets.
    """
    for key, value in sorted(source.config.items()):
        if _holds_reference(value) and value != {"secret": f"{source.id}.{key}"}:
            raise PolicyError(f"config.{key}: this source holds the operator's references; change it in the "
                              "sources file (da-sources), not through the API")


def _holds_reference(value: Any) -> bool:
    if is_reference(value) or (isinstance(value, Mapping) and set(value) & {"env", "secret"}):
        return True
    if isinstance(value, Mapping):
        return any(_holds_reference(v) for v in value.values())
    return isinstance(value, list) and any(_holds_reference(v) for v in value)


def _own_reference(key: str, value: Any, current: DataSourceConfig | None, source_id: str) -> bool:
    own = {"secret": f"{source_id}.{key}"}
    return current is not None and value == own and current.config.get(key) == own


def check_reach(type_name: str, config: Mapping[str, Any], settings: Any) -> None:
    """The static part of the reach rules on literal values: roots, hosts, ports, schemes, libpq options.

    Names are resolved and their addresses checked again when the connector connects.

    Args:
        type_name: the source's connector type; a type without reach rules passes.
        config: the source's config as the caller wrote it.
        settings: the API's settings, with the policy.

    Raises:
        PolicyError: a root, host, port, scheme or libpq option the policy does not allow.
    """
    if type_name == "local_file":
        check_local_root(config.get("root"), settings)
    elif type_name == "postgresql":
        _check_postgresql(config, settings.policy.reach)
    elif type_name == "azure_blob":
        _check_azure(config, settings.policy.reach)
    elif type_name == "s3":
        _check_s3(config, settings.policy.reach)


def _check_postgresql(config: Mapping[str, Any], reach: ReachPolicy) -> None:
    from psycopg import Error as PsycopgError
    from psycopg.conninfo import conninfo_to_dict

    from connectors.postgresql.reach import refused_options, socket_host

    params: dict[str, Any] = {}
    if isinstance(config.get("dsn"), str):
        try:
            params = dict(conninfo_to_dict(config["dsn"]))
        except PsycopgError:
            raise PolicyError("config.dsn: not a valid connection string") from None
        if bad := refused_options(params):
            raise PolicyError(f"config.dsn: the libpq option(s) {', '.join(bad)} may not be set through the API")
    host = config.get("host", params.get("host", ""))
    port = config.get("port", params.get("port", 5432))
    if isinstance(host, str):
        for name in (part.strip() for part in host.split(",")):
            if socket_host(name):
                raise PolicyError("config.host: a Unix-socket host (a folder, or none) may not be used here")
            _checked(reach.check_target, name, _port(port), "postgresql", where="config.host")


def _check_s3(config: Mapping[str, Any], reach: ReachPolicy) -> None:
    from connectors.azure_blob.reach import check_url

    endpoint = config.get("endpoint_url")
    if endpoint is None:
        region = config.get("region", "us-east-1")
        endpoint = f"https://s3.{region}.amazonaws.com" if isinstance(region, str) else None
    if not isinstance(endpoint, str) or urlsplit(endpoint).scheme == "":
        raise PolicyError("config.endpoint_url: not an http(s) URL with a host")
    _checked(check_url, endpoint.partition("?")[0], reach, "config.endpoint_url")


def _check_azure(config: Mapping[str, Any], reach: ReachPolicy) -> None:
    from connectors.azure_blob.reach import check_url

    url = config.get("account_url")
    if isinstance(config.get("connection_string"), str):
        parts = {k.strip().lower(): v.strip() for k, _, v in
                 (p.partition("=") for p in config["connection_string"].split(";"))}
        url = parts.get("blobendpoint") or (
            f"{parts.get('defaultendpointsprotocol', 'https')}://{parts.get('accountname', '')}.blob."
            f"{parts.get('endpointsuffix', 'core.windows.net')}")
    if isinstance(url, str):
        if urlsplit(url).scheme == "":
            raise PolicyError("config.account_url: not an http(s) URL with a host")
        _checked(check_url, url.partition("?")[0], reach)


def _port(value: Any) -> int:
    try:
        return int(str(value).split(",")[0])
    except ValueError:
        raise PolicyError("config.port: not a port number") from None


def _checked(check: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    try:
        check(*args, **kwargs)
    except ReachRefusedError as exc:
        raise PolicyError(exc.message) from None
