"""`synthmon healthcheck`: exit 0 when the local daemon answers /healthz.

For container HEALTHCHECKs, where the slim image has no curl. The address comes from
the same settings the daemon reads (config file plus `SYNTHMON_*` environment), so
changing `server.listen` never leaves a healthcheck probing the wrong port.
"""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

from synthmon.config.secrets import unresolved_secrets_allowed
from synthmon.config.settings import ServerConfig, load_settings
from synthmon.errors import ConfigError

# Where a daemon listening on every interface can be reached from inside its host.
_LOCAL = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}  # noqa: S104


def healthz_url(server: ServerConfig) -> str:
    host = _LOCAL.get(server.host, server.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{server.port}/healthz"


def healthcheck(config: str | None, timeout: float = 3.0) -> int:
    path = config if config and Path(config).exists() else None
    try:
        # Liveness needs only [server]: a missing account secret is not a dead daemon.
        with unresolved_secrets_allowed():
            settings = load_settings(path)
    except ConfigError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    url = healthz_url(settings.server)
    try:
        # Only ever a loopback URL built above, never user input.
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310
            ok = r.status == 200
    except OSError as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if not ok:
        print(f"unhealthy: {url} answered {r.status}", file=sys.stderr)
    return 0 if ok else 1
