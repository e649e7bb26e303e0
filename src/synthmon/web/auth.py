"""Access control and response scrubbing of the status server (one middleware).

- Every request that changes something (any method but GET/HEAD/OPTIONS) needs
  ``Authorization: Bearer <server.api_token>`` when a token is configured. Without a
  token, changes are accepted only while the server listens on loopback.
- ``/metrics`` optionally needs basic auth or a bearer token (``server.metrics_auth``).
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
        scheme, _, given = authorization.partition(" ")
        given = given.strip()
        if self.metrics_token is not None:
            if scheme.lower() == "bearer" and _same(given, self.metrics_token.get_secret_value()):
                return None
            return "missing or wrong bearer token for /metrics"
        if self.metrics_username is not None and self.metrics_password is not None:
            expected = f"{self.metrics_username}:{self.metrics_password.get_secret_value()}"
            try:
                decoded = base64.b64decode(given, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            if scheme.lower() == "basic" and _same(decoded, expected):
                return None
            return "missing or wrong basic auth credentials for /metrics"
        return None


def access_policy(server: ServerConfig) -> AccessPolicy:
    """The server's access rules from `[server]`; warns once when changes are off."""
    auth = server.metrics_auth
    if server.api_token is None and not is_loopback(server.host):
        log.warning(
            "changes_disabled",
            listen=server.listen,
            hint="set server.api_token to use POST /api/pause and /api/resume",
        )
    return AccessPolicy(
        listen_host=server.host,
        api_token=server.api_token,
        metrics_token=auth.token if auth else None,
        metrics_username=auth.username if auth else None,
        metrics_password=auth.password if auth else None,
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
