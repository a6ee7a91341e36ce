"""``da-sources serve``: the standalone app under uvicorn, refusing to listen beyond loopback without keys."""

from __future__ import annotations

import ipaddress

from connectors.api.keys import KeyStore
from connectors.api.settings import ApiSettings
from connectors.errors import ConfigurationError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost: treated as reachable from outside


def check_listen(host: str, settings: ApiSettings) -> None:
    """Refuse a non-loopback address while the keys file holds no key."""
    if not is_loopback(host) and not KeyStore(settings.keys_file).list():
        raise ConfigurationError(
            f"refusing to listen on {host}: no API key in {settings.keys_file}; create one with "
            "'da-sources api-keys create NAME' (or listen on 127.0.0.1)")


def serve(host: str, port: int, settings: ApiSettings) -> None:
    """Run the app until interrupted."""
    check_listen(host, settings)
    import uvicorn

    from connectors.api.app import create_app

    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", server_header=False)
