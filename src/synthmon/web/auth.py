"""Access control and response scrubbing of the status server (one middleware).

- Every request that changes something (any method but GET/HEAD/OPTIONS) needs
  ``Authorization: Bearer <server.api_token>`` when a token is configured. Without a
  token, changes are accepted only while the server listens on loopback.
- ``/metrics`` optionally needs basic auth or a bearer token (``server.metrics_auth``).
- Every other read (``/api``, status pages, ``/artifacts``: what synthetic accounts saw)
  needs ``server.read_auth`` (or the api token) when it is configured; without it,
  reads are served only while the server listens on loopback, unless
  ``server.public_read`` opens them on purpose. ``/healthz`` and ``/readyz`` are
  always open (orchestrators probe them without credentials), and so is ``/static/``
  (the pages' CSS, script and icon: nothing about the monitored systems).
- ``[status_page] public = true`` opens the status pages themselves (``/`` and
  ``/journeys/...``), which then show only journeys tagged for the public and no
  errors, artifacts or URLs; ``/api`` and ``/artifacts`` keep their rules.
- A refused request gets 401 and reaches no handler: nothing changes.
- Comparisons are constant-time (`hmac.compare_digest`).
- Text responses (JSON, HTML) pass through the secret scrubber.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from dataclasses import dataclass

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from pydantic import SecretStr

from synthmon.config.settings import ServerConfig
from synthmon.safety.scrub import Scrubber

log = structlog.get_logger("synthmon.web")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Probes of orchestrators and load balancers: never behind credentials.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
OPEN_PREFIXES = ("/static/",)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    listen_host: str
    api_token: SecretStr | None = None
    metrics_token: SecretStr | None = None
    metrics_username: str | None = None
    metrics_password: SecretStr | None = None
    read_token: SecretStr | None = None
    read_username: str | None = None
    read_password: SecretStr | None = None
    public_read: bool = False
    # `[status_page] public = true`: the pages are the public face (docs/status-page.md).
    public_pages: bool = False

    def is_open(self, path: str) -> bool:
        """Reads that need no credentials whatever the read rules."""
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return True
        return self.public_pages and (path == "/" or path.startswith("/journeys/"))

    def check_change(self, authorization: str) -> str | None:
        """None if a changing request may pass, else why not."""
        if self.api_token is None:
            if is_loopback(self.listen_host):
                return None
            return (
                f"changes are disabled: the server listens on {self.listen_host} (not loopback) "
                "and no server.api_token is configured"
            )
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not _same(
            given.strip(), self.api_token.get_secret_value()
        ):
            return "missing or wrong bearer token (Authorization: Bearer <server.api_token>)"
        return None

    def check_metrics(self, authorization: str) -> str | None:
        return _check_credentials(
            authorization,
            self.metrics_token,
            self.metrics_username,
            self.metrics_password,
            "/metrics",
        )

    @property
    def read_scheme(self) -> str | None:
        if self.read_token is not None:
            return "Bearer"
        return "Basic" if self.read_username is not None else None

    def check_read(self, authorization: str) -> str | None:
        """None if a read (/api, pages, artifacts) may pass, else why not."""
        if self.read_scheme is None:
            if self.public_read or is_loopback(self.listen_host):
                return None
            return (
                f"reading is disabled: the server listens on {self.listen_host} (not "
                "loopback) and no server.read_auth is configured; set server.read_auth "
                "(or server.public_read = true to serve reads to anyone reaching the port)"
            )
        scheme, _, given = authorization.partition(" ")
        if (
            self.api_token is not None
            and scheme.lower() == "bearer"
            and _same(given.strip(), self.api_token.get_secret_value())
        ):
            return None  # whoever may change things may read them
        return _check_credentials(
            authorization, self.read_token, self.read_username, self.read_password, "reading"
        )


def _check_credentials(
    authorization: str,
    token: SecretStr | None,
    username: str | None,
    password: SecretStr | None,
    what: str,
) -> str | None:
    """None when `authorization` carries the bearer `token` or basic `username:password`
    (whichever is configured; nothing configured passes), else why not."""
    scheme, _, given = authorization.partition(" ")
    given = given.strip()
    if token is not None:
        if scheme.lower() == "bearer" and _same(given, token.get_secret_value()):
            return None
        return f"missing or wrong bearer token for {what}"
    if username is not None and password is not None:
        expected = f"{username}:{password.get_secret_value()}"
        try:
            decoded = base64.b64decode(given, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        if scheme.lower() == "basic" and _same(decoded, expected):
            return None
        return f"missing or wrong basic auth credentials for {what}"
    return None


def access_policy(server: ServerConfig, *, public_pages: bool = False) -> AccessPolicy:
    """The server's access rules from `[server]`; warns once when changes are off."""
    auth, read = server.metrics_auth, server.read_auth
    if server.api_token is None and not is_loopback(server.host):
        log.warning(
            "changes_disabled",
            listen=server.listen,
            hint="set server.api_token to use POST /api/pause and /api/resume",
        )
    if read is None and not server.public_read and not is_loopback(server.host):
        log.warning(
            "reads_disabled",
            listen=server.listen,
            hint="set server.read_auth to read /api, the status pages and /artifacts "
            "(or server.public_read = true to open them to anyone reaching the port)",
        )
    return AccessPolicy(
        listen_host=server.host,
        api_token=server.api_token,
        metrics_token=auth.token if auth else None,
        metrics_username=auth.username if auth else None,
        metrics_password=auth.password if auth else None,
        read_token=read.token if read else None,
        read_username=read.username if read else None,
        read_password=read.password if read else None,
        public_read=server.public_read,
        public_pages=public_pages,
    )


def _unauthorized(message: str, challenge: str) -> web.Response:
    return web.json_response(
        {"error": message}, status=401, headers={"WWW-Authenticate": challenge}
    )


def guard(policy: AccessPolicy, scrub: Scrubber) -> Middleware:
    """The middleware: refuse unauthorised requests, scrub what goes out."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        authorization = request.headers.get("Authorization", "")
        if request.method not in SAFE_METHODS:
            problem = policy.check_change(authorization)
            if problem is not None:
                log.warning(
                    "request_refused",
                    method=request.method,
                    path=request.path,
                    remote=request.remote,
                    error=problem,
                )
                return _unauthorized(problem, 'Bearer realm="synthmon"')
        elif request.path == "/metrics":
            problem = policy.check_metrics(authorization)
            if problem is not None:
                scheme = "Bearer" if policy.metrics_token is not None else "Basic"
                return _unauthorized(problem, f'{scheme} realm="synthmon metrics"')
        elif not policy.is_open(request.path):
            problem = policy.check_read(authorization)
            if problem is not None:
                log.warning(
                    "request_refused",
                    method=request.method,
                    path=request.path,
                    remote=request.remote,
                    error=problem,
                )
                if policy.read_scheme is None:
                    # No credential would help: nothing to challenge for.
                    return web.json_response({"error": problem}, status=403)
                return _unauthorized(problem, f'{policy.read_scheme} realm="synthmon"')
        response = await handler(request)
        if (
            scrub
            and isinstance(response, web.Response)
            and isinstance(response.body, bytes)
            and response.content_type.startswith(("application/json", "text/"))
            and request.path != "/metrics"
        ):
            text = response.body.decode(response.charset or "utf-8", errors="replace")
            cleaned = scrub(text)
            if cleaned != text:
                response.body = cleaned.encode(response.charset or "utf-8")
        return response

    return middleware
