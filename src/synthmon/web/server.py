"""The status server: /metrics, /healthz, /readyz and the JSON API.

An aiohttp app run with AppRunner/TCPSite: explicit start and stop, and no signal
handlers of its own (the daemon owns signals).

/metrics is rendered in a thread of its own, never on the event loop: at 5,000 pairs
the text takes a good fraction of a second to build, and every run due meanwhile
would start late. Scrapes that arrive while a render is under way share it. The
thread still holds the GIL while it formats, so the bulk of the text (the per-pair
families) is written by a `TextSource` (sinks/pairtext.py) rather than sample by
sample by prometheus_client: docs/metrics.md, "Rendering".
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from typing import Any, Protocol

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

from synthmon.web.connections import ConnectionGuard

ACCEPT_BACKLOG = 16  # pending connections; a status server needs few


class StatusSource(Protocol):
    """What the server asks the daemon."""

    def readiness(self) -> tuple[bool, dict[str, Any]]: ...

    def journeys_json(self) -> list[dict[str, Any]]: ...


class TextSource(Protocol):
    """A collector of the registry that writes its own families as exposition text."""

    def excluded(self) -> AbstractContextManager[None]:
        """While entered, its families are absent from the registry's collect() in
        this thread (so prometheus_client does not write them a second time)."""
        ...

    def render(self) -> str: ...


class WithoutCreated:
    """The registry without `_created` samples: synthmon's counters start at process
    start, which `process_start_time_seconds`-style reasoning and `rate()` handle; one
    extra series per counter and histogram is a cost with no query behind it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            # Each collect() builds fresh Metric objects: editing them is safe.
            if metric.type in ("counter", "histogram", "summary"):
                metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric


def render(exposed: WithoutCreated, text_sources: Sequence[TextSource]) -> bytes:
    """/metrics: the registry, then each text source's families (each family once,
    whole). Runs in the render thread."""
    with ExitStack() as stack:
        for text in text_sources:
            stack.enter_context(text.excluded())
        head = generate_latest(exposed)
        tail = "".join(text.render() for text in text_sources)
    return head + tail.encode()


def gzip_body(body: bytes) -> bytes:
    # Level 1: most of the size win (the text is repetitive) for a fraction of level 6's
    # CPU at 5,000 pairs.
    return gzip.compress(body, compresslevel=1, mtime=0)


class StatusServer:
    def __init__(
        self,
        source: StatusSource,
        registry: CollectorRegistry,
        *,
        guard: Middleware,
        host: str = "127.0.0.1",
        port: int = 9321,
        extra_routes: Sequence[Callable[[web.Application], None]] = (),
        max_connections: int = 256,
        idle_timeout: float = 10.0,
        text_sources: Sequence[TextSource] = (),
    ) -> None:
        self._source = source
        self._registry = registry
        self._text_sources = tuple(text_sources)
        self._host = host
        self._port = port
        # Bounded inbound connections (web/connections.py): half-open sockets must
        # not take the descriptors journeys need.
        self.connections = ConnectionGuard(max_connections=max_connections)
        self._idle_timeout = idle_timeout
        self._server: asyncio.Server | None = None
        # Access control and response scrubbing (`web.auth.guard`): required, so no
        # server can be built that forgets them.
        self.app = web.Application(middlewares=[self.connections.middleware, guard])
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/readyz", self._readyz)
        self.app.router.add_get("/api/journeys", self._journeys)
        # /api/journeys/{name} and the rest of the history API: web/api.py; the HTML
        # pages (/, /journeys/{name}, /static/): web/pages/.
        for install in extra_routes:
            install(self.app)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self._exposed = WithoutCreated(registry)
        self._render_thread: ThreadPoolExecutor | None = None
        self._rendering: asyncio.Future[bytes] | None = None

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        self._render_thread = ThreadPoolExecutor(1, thread_name_prefix="synthmon-metrics")
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=2.0,
            # Closes a connection that sent no complete request within this long of
            # connecting or of its last response (aiohttp's keep-alive timer).
            keepalive_timeout=self._idle_timeout,
        )
        await self._runner.setup()
        assert self._runner.server is not None
        self.connections.attach(self._runner.server)
        # Our own listener instead of TCPSite: every accepted connection passes the
        # guard's cap first. asyncio accepts up to `backlog` sockets per wake-up before
        # the guard sees any of them, so a small backlog bounds that burst too.
        self._server = await asyncio.get_running_loop().create_server(
            self.connections.factory,
            self._host,
            self._port,
            reuse_address=True,
            backlog=ACCEPT_BACKLOG,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._render_thread is not None:
            self._render_thread.shutdown(wait=False, cancel_futures=True)
            self._render_thread = None

    async def _metrics(self, request: web.Request) -> web.Response:
        if self._rendering is None:
            assert self._render_thread is not None, "server not started"
            rendering = asyncio.get_running_loop().run_in_executor(
                self._render_thread, render, self._exposed, self._text_sources
            )
            self._rendering = rendering
            rendering.add_done_callback(lambda _: setattr(self, "_rendering", None))
        # shield: a scraper hanging up must not cancel the render others wait for.
        body = await asyncio.shield(self._rendering)
        headers = {"Content-Type": CONTENT_TYPE_LATEST}
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            # Prometheus asks for gzip. Compressed in the render thread (zlib lets go of
            # the GIL), so the loop writes ~1/10 of the bytes (docs/metrics.md).
            assert self._render_thread is not None
            body = await asyncio.get_running_loop().run_in_executor(
                self._render_thread, gzip_body, body
            )
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    async def _healthz(self, request: web.Request) -> web.Response:
        # Answering at all means the process and its event loop are alive.
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        ready, checks = self._source.readiness()
        return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)

    async def _journeys(self, request: web.Request) -> web.Response:
        return web.json_response({"journeys": self._source.journeys_json()})
