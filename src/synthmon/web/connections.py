"""Inbound connections of the status server, bounded (docs/config.md, `[server]`).

Half-open connections (connected, headers never finished) used to be held until
aiohttp's 75 s keep-alive timer, so a few thousand of them exhausted the process's file
descriptors: journeys could no longer open sockets (false alerts) and `/healthz` stopped
answering. Three limits now:

- **idle timeout**: a connection that has not sent a complete request within
  `idle_timeout` of connecting, or of its last response, is closed (aiohttp's
  keep-alive timer, which also covers the header phase of the first request);
- **a cap**: at most `max_connections` at once, and never more than a quarter of the
  descriptor limit (RLIMIT_NOFILE), so outbound runs always keep the rest;
- **eviction, not refusal**: at the cap, a new connection closes the *oldest idle*
  one (no request in progress) instead of being refused, so a flood of idle sockets
  cannot lock out a probe of `/healthz` or a Prometheus scrape that sends its request
  at once. Only when every connection is busy is the new one closed.
"""

from __future__ import annotations

import asyncio
import resource
import time

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_protocol import RequestHandler

log = structlog.get_logger("synthmon.web")

# Inbound connections may use at most this share of the descriptor limit.
FD_SHARE = 0.25
LOG_EVERY = 10.0  # seconds between connection_limit log lines during a flood


def fd_budget(configured: int) -> int:
    """`configured`, lowered to a share of RLIMIT_NOFILE (at least 8)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return configured
    return max(8, min(configured, int(soft * FD_SHARE)))


class ConnectionGuard:
    """The protocol factory in front of aiohttp's `web.Server`: caps and evicts."""

    def __init__(self, *, max_connections: int) -> None:
        self._server: web.Server | None = None
        self.limit = fd_budget(max_connections)
        self._born: dict[RequestHandler, float] = {}
        self._busy: set[RequestHandler] = set()
        self._evicted = self._refused = 0
        self._logged_at = 0.0

    def attach(self, server: web.Server) -> None:
        """aiohttp's protocol factory, once the runner is set up."""
        self._server = server

    def factory(self) -> asyncio.Protocol:
        assert self._server is not None, "attach() first"
        now = time.monotonic()
        # A handler has no transport before connection_made (called soon after this
        # factory) and after the connection is lost: older than a second, it is gone.
        for handler in [
            h for h, born in self._born.items() if h.transport is None and now - born > 1.0
        ]:
            del self._born[handler]
        if len(self._born) >= self.limit:
            victim = next((h for h in self._born if h not in self._busy), None)
            if victim is not None:
                del self._born[victim]
                victim.force_close()
                self._evicted += 1
            else:
                self._refused += 1
                self._report()
                # Every slot is serving a request: this one is closed once connected.
                refused = self._server()
                asyncio.get_running_loop().call_soon(refused.force_close)
                return refused
            self._report()
        handler = self._server()
        self._born[handler] = now
        return handler

    def _report(self) -> None:
        now = time.monotonic()
        if now - self._logged_at < LOG_EVERY:
            return
        self._logged_at = now
        log.warning(
            "connection_limit",
            limit=self.limit,
            evicted_idle=self._evicted,
            refused_all_busy=self._refused,
            hint="more connections than [server] max_connections (or a quarter of the "
            "file descriptor limit); idle ones are closed first",
        )
        self._evicted = self._refused = 0

    @property
    def middleware(self) -> Middleware:
        """Marks a connection busy while one of its requests is handled."""

        @web.middleware
        async def busy(request: web.Request, handler: Handler) -> web.StreamResponse:
            proto = request.protocol
            self._busy.add(proto)
            try:
                return await handler(request)
            finally:
                self._busy.discard(proto)

        return busy
