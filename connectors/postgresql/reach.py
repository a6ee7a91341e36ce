"""A PostgreSQL connection under a :class:`~connectors.reach.ReachPolicy`: TCP to checked addresses only.

libpq would resolve the host itself, read files named by the settings
(``passfile``, ``service``, ``sslkey``...), use a Unix socket for a host that
is a folder, and send a cleartext password to a server that asks for one.
Under a policy none of that happens: only the options in :data:`ALLOWED_OPTIONS`
pass (also inside a ``dsn``), the host is a name or address resolved and
checked here and pinned with ``hostaddr``, ``passfile`` is the null device and
``require_auth`` is the policy's.
"""

from __future__ import annotations

import os
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from connectors.reach import ReachPolicy, ReachRefusedError

# The package's public surface is its connector; these are the names other packages and the docs use.
__all__ = ["refused_options", "socket_host"]

#: what a policy-bound connection may set; any other libpq option (files, services, sockets,
#: gss, hostaddr, require_auth, options...) is refused
ALLOWED_OPTIONS = frozenset({
    "host", "port", "dbname", "user", "password", "sslmode", "connect_timeout", "application_name",
    "client_encoding", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
    "target_session_attrs",
})


def refused_options(params: dict[str, Any]) -> list[str]:
    """The libpq options of ``params`` a policy-bound connection may not set.

    Args:
        params: Parsed connection parameters (values are secrets and are not returned).

    Returns:
        The refused option names, sorted; empty when all are allowed.
    """
    return sorted(key for key in params if key not in ALLOWED_OPTIONS)


def socket_host(host: str) -> bool:
    """Whether libpq would take ``host`` for a Unix socket (a folder, an abstract socket, or none).

    Args:
        host: One host of a connection string.

    Returns:
        True for a socket host, which a reach policy cannot resolve and refuses.
    """
    return not host or host.startswith(("/", "@")) or (len(host) > 1 and host[1] == ":")


async def pinned_params(conninfo: str, kwargs: dict[str, Any], reach: ReachPolicy) -> tuple[str, dict[str, Any]]:
    """``("", params)`` to connect with: checked options, each host resolved and pinned with ``hostaddr``.

    Raises:
        ReachRefusedError: an option, a socket host, a port or an address the policy does not allow.
    """
    try:
        params: dict[str, Any] = conninfo_to_dict(conninfo, **kwargs)
    except psycopg.Error:
        raise ReachRefusedError("config.dsn: not a valid connection string") from None
    if bad := refused_options(params):
        raise ReachRefusedError(f"config: the libpq option(s) {', '.join(bad)} may not be set here")
    hosts = str(params.get("host") or "").split(",")
    ports = str(params.get("port") or "5432").split(",")
    if len(ports) == 1:
        ports = ports * len(hosts)
    if len(ports) != len(hosts):
        raise ReachRefusedError("config.port: give one port, or one per host")
    addresses = [await _address_of(host.strip(), port.strip(), reach) for host, port in zip(hosts, ports, strict=True)]
    params["hostaddr"] = ",".join(addresses)
    params["passfile"] = os.devnull  # never the server user's ~/.pgpass
    if reach.postgres_require_auth:
        params["require_auth"] = reach.postgres_require_auth
    return "", params


async def _address_of(host: str, port_text: str, reach: ReachPolicy) -> str:
    if socket_host(host):
        raise ReachRefusedError("config.host: a Unix-socket host (a folder, or none) may not be used here")
    try:
        port = int(port_text)
    except ValueError:
        raise ReachRefusedError("config.port: not a port number") from None
    reach.check_target(host, port, "postgresql", where="config.host")
    return (await reach.resolve(host, port, where="config.host"))[0]
