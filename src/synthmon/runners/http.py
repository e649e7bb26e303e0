"""The HTTP runner: a fresh httpx client per run (own cookies and connections) on a
shared SSL context, with synthetic tagging and the allowed-hosts guard."""

from __future__ import annotations

import base64
import dataclasses
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence

import certifi
import httpx
from typing_extensions import override  # typing.override from Python 3.12

from synthmon.errors import HostNotAllowedError
from synthmon.journeys.context import Context, NoTrace, RunRecord
from synthmon.journeys.shadow import ShadowError
from synthmon.model import Attr, RunRequest, RunResult, RunTrace, Target
from synthmon.runners.base import (
    Pace,
    add_baggage,
    baggage,
    basic_credentials,
    classify,
    describe,
    execute,
    run_cleanups,
    run_trace,
)
from synthmon.runners.leftovers import RunScope
from synthmon.runners.network import cap_body
from synthmon.runners.streams import asyncio_transport
from synthmon.runners.tls import ChainCache, TlsCapture

TransportFactory = Callable[[ssl.SSLContext], httpx.AsyncBaseTransport]


def default_transport(ssl_context: ssl.SSLContext) -> httpx.AsyncBaseTransport:
    # httpx's transport on plain asyncio streams instead of anyio (runners/streams.py).
    return asyncio_transport(ssl_context)


class TaggingTransport(httpx.AsyncBaseTransport):
    """Refuses hosts the target does not allow (before anything is sent, redirects
    included) and tags every request so the backend can recognise synthetic traffic."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        target: Target,
        *,
        trace: RunTrace,
        headers: Sequence[tuple[str, str]],
        pace: Callable[[], Awaitable[None]],
        on_response: Callable[[httpx.Request, httpx.Response], None] | None = None,
        baggage: str | None = None,
    ) -> None:
        self._inner = inner
        self._target = target
        self._trace = trace
        self._headers = headers
        self._on_response = on_response
        self._pace = pace
        self._baggage = baggage

    @override  # httpx calls it for every request of the client
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self._target.allows(request.url.host):
            raise HostNotAllowedError(str(request.url), tuple(self._target.allowed_hosts))
        for name, value in self._headers:
            request.headers[name] = value
        if self._baggage is not None:
            request.headers["baggage"] = add_baggage(request.headers.get("baggage"), self._baggage)
        # The target's max_requests_per_second, shared with every other run.
        await self._pace()
        # The HTTP client span (docs/tracing.md); the backend's spans become its children.
        span = self._trace.span(request.method, _request_attributes(request), client=True)
        request.headers["traceparent"] = span.traceparent()
        try:
            response = await self._inner.handle_async_request(request)
        except BaseException as exc:
            span.end({"error.type": type(exc).__name__}, error=str(exc) or type(exc).__name__)
            raise
        status = response.status_code
        span.end(
            {
                "http.response.status_code": status,
                "network.protocol.version": response.http_version.removeprefix("HTTP/"),
            },
            error=str(status) if status >= 400 else None,
        )
        # Bounded memory whatever the target sends (and errors that say "body").
        t = self._target
        cap_body(
            response, request, t.max_response_bytes, t.max_response_source or f"target {t.name!r}"
        )
        if self._on_response is not None:
            self._on_response(request, response)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def _request_attributes(request: httpx.Request) -> dict[str, Attr]:
    url = request.url
    if url.userinfo:
        url = url.copy_with(username=None, password=None)
    attributes: dict[str, Attr] = {
        "http.request.method": request.method,
        "url.full": str(url),
        "server.address": url.host,
    }
    if url.port is not None:
        attributes["server.port"] = url.port
    return attributes


class TargetBasicAuth:
    """HTTP basic auth for requests to the target's own origin only: a redirect or a
    call to another allowed host (a CDN, an API domain) never gets the credentials.
    A callable `auth=` (httpx wraps it in its FunctionAuth)."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        url = httpx.URL(base_url)
        self._origin = (url.scheme, url.host, url.port)
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._header = f"Basic {token}"

    def __call__(self, request: httpx.Request) -> httpx.Request:
        if (request.url.scheme, request.url.host, request.url.port) == self._origin:
            request.headers["Authorization"] = self._header
        return request


class HttpRunner:
    """Runs `kind="http"` journeys.

    Creating an SSL context costs ~30 ms of CPU, so one is built per verify mode and
    shared; the transport (connection pool) and cookie jar stay per run.
    """

    def __init__(
        self,
        *,
        user_agent: str,
        pace: Pace,
        tag_headers: Sequence[tuple[str, str]] = (),
        transport_factory: TransportFactory = default_transport,
        ssl_context: ssl.SSLContext | None = None,
        follow_redirects: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Required (STYLE 14): a daemon that forgot the rate limits does not type-check.
        self._pace = pace
        self._user_agent = user_agent
        self._tag_headers = tuple(tag_headers)
        self._transport_factory = transport_factory
        self._ssl = ssl_context or ssl.create_default_context(cafile=certifi.where())
        self._ssl_insecure: ssl.SSLContext | None = None
        self._ssl_private: dict[str, ssl.SSLContext] = {}  # per target ca_file
        self._follow_redirects = follow_redirects
        self._clock = clock
        # Certificates are read off the runs' own connections; parsed once per change.
        self.tls_chains = ChainCache()

    def _ssl_for(self, target: Target) -> ssl.SSLContext:
        if target.verify_tls and target.ca_file is not None:
            ctx = self._ssl_private.get(target.ca_file)
            if ctx is None:
                ctx = self._ssl_private[target.ca_file] = ssl.create_default_context(
                    cafile=target.ca_file
                )
            return ctx
        if target.verify_tls:
            return self._ssl
        if self._ssl_insecure is None:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self._ssl_insecure = ctx
        return self._ssl_insecure

    def client_factory(
        self,
        target: Target,
        *,
        trace_id: str,
        timeout: float,
        extra_headers: Sequence[tuple[str, str]] = (),
        on_response: Callable[[httpx.Request, httpx.Response], None] | None = None,
        basic_auth: tuple[str, str] | None = None,
        trace: RunTrace | None = None,
        journey: str | None = None,
    ) -> Callable[[], httpx.AsyncClient]:
        """A factory for the per-run client (also used by browser journeys' ctx.http).
        `basic_auth` (username, password) goes to the target's origin only; `trace`
        gets a client span per request, `journey` names the run in the baggage."""
        auth = TargetBasicAuth(target.base_url, *basic_auth) if basic_auth else None
        headers = (*self._tag_headers, *target.headers, *extra_headers)
        pace, name = self._pace, target.name
        run_trace_ = trace if trace is not None else NoTrace(trace_id)
        tag = baggage(journey) if journey is not None else None

        async def pace_target() -> None:
            await pace(name)

        def make() -> httpx.AsyncClient:
            transport = TaggingTransport(
                self._transport_factory(self._ssl_for(target)),
                target,
                trace=run_trace_,
                headers=headers,
                on_response=on_response,
                pace=pace_target,
                baggage=tag,
            )
            return httpx.AsyncClient(
                base_url=target.base_url,
                transport=transport,
                headers={"user-agent": self._user_agent},
                auth=auth,
                timeout=timeout,
                follow_redirects=self._follow_redirects,
                trust_env=False,
            )

        return make

    async def run(self, request: RunRequest) -> RunResult:
        journey, target, run_id = request.journey, request.target, request.run_id
        last: list[str] = []
        tls = TlsCapture(self.tls_chains)

        def seen(request: httpx.Request, response: httpx.Response) -> None:
            last[:] = [f"{response.status_code} from {request.method} {request.url}"]
            tls(request, response)

        def describe_exc(exc: BaseException) -> tuple[str, str]:
            etype, msg = describe(exc, journey.filename)
            # A bare assert says little at 3 a.m.; what the target last answered helps.
            if last and isinstance(exc, AssertionError):
                msg = f"{msg} (last response: {last[0]})"
            return etype, msg

        run = RunRecord(classify=classify, describe=describe_exc, clock=self._clock)
        peers = {t.name: t for t in request.peers if t.name != target.name}
        trace = run_trace(request)

        def peer_client(name: str) -> httpx.AsyncClient:
            # ctx.shadow's other side: that target's own tagging and allowed hosts.
            peer = peers.get(name)
            if peer is None:
                raise ShadowError(
                    f"compare_to={name!r}: no other target of that name; known: {sorted(peers)}"
                )
            return self.client_factory(
                peer,
                trace_id=run_id,
                timeout=journey.timeout,
                extra_headers=request.extra_headers,
                trace=trace,
                journey=journey.name,
            )()

        ctx = Context(
            journey=journey.name,
            target=target,
            run_id=run_id,
            trace_id=run_id,
            run=run,
            http_factory=self.client_factory(
                target,
                trace_id=run_id,
                timeout=journey.timeout,
                extra_headers=request.extra_headers,
                on_response=seen,
                basic_auth=basic_credentials(request.account),
                trace=trace,
                journey=journey.name,
            ),
            account=request.account,
            run_source=request.run_source,
            peer_http_factory=peer_client,
            trace=trace,
        )
        started_at = time.time()
        cleanup_failures = 0
        async with RunScope(journey.name, target.name, run_id) as scope:
            try:
                result = await execute(
                    journey,
                    ctx,
                    run,
                    started_at=started_at,
                    attempt=request.attempt,
                    clock=self._clock,
                )
            finally:
                try:
                    cleanup_failures = await run_cleanups(journey, ctx, run)
                finally:
                    await ctx.aclose()
        chains = tls.chains
        if cleanup_failures or scope.left_behind or chains:
            result = dataclasses.replace(
                result,
                cleanup_failures=cleanup_failures,
                left_behind=scope.left_behind,
                tls=chains,
            )
        return result
