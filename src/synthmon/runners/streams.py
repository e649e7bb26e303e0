# httpcore's interface takes `timeout` parameters (httpcore/_backends/base.py).
# ruff: noqa: ASYNC109
"""httpcore's network backend on plain asyncio streams, for the HTTP runner.

httpx reaches the network through httpcore, whose default backend on asyncio is anyio:
a cancel scope around every read and write, and happy-eyeballs task groups around every
connect. synthmon opens a fresh connection for every run (as blackbox_exporter does per
probe), so that layer is paid on every run: measured, it was about a fifth of a run's
CPU (docs/benchmarks.md, "HTTP stack"). This backend does the same job with the event
loop's own streams and `asyncio.timeout`.

It keeps what the anyio backend promises httpcore (httpcore/_backends/anyio.py): the
same httpcore exceptions for the same failures, raised `from` the OS or TLS error so
`runners.network.explain` finds the cause; `ssl_object`, `client_addr`, `server_addr`,
`socket` and `is_readable` from `get_extra_info`; TLS without waiting for the peer's
close_notify on close (anyio's `standard_compatible=False`). Socket options, which
synthmon never sets, go to httpcore's own backend; Unix sockets (never used) are not
implemented, as in httpcore's base class.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
from httpcore._backends.base import SOCKET_OPTION as SocketOption
from httpcore._utils import is_socket_readable  # what the anyio backend uses too


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection: an asyncio StreamReader/StreamWriter pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            if self._writer.is_closing():
                raise ConnectionResetError("the connection is closed")
            self._writer.write(buffer)
            async with asyncio.timeout(timeout):
                await self._writer.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        transport = self._writer.transport
        if transport.get_extra_info("ssl_object") is not None:
            # Do not wait (up to ssl_shutdown_timeout) for a close_notify the peer may
            # never send: anyio's standard_compatible=False, what httpcore expects.
            transport.abort()
        else:
            transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError as exc:
            self._writer.transport.abort()
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:  # ssl.SSLError is an OSError
            self._writer.transport.abort()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        transport = self._writer.transport
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        if info == "is_readable":
            # httpcore asks before reusing a kept-alive connection: readable means the
            # server closed it (or sent something unasked).
            if self._reader.at_eof() or transport.is_closing():
                return True
            sock = transport.get_extra_info("socket")
            return sock is None or is_socket_readable(sock)
        return None


HAPPY_EYEBALLS_DELAY = 0.25  # seconds, as anyio.connect_tcp


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Connects with `asyncio.open_connection`: the resolved addresses raced with
    Happy Eyeballs, as anyio does (one address: a plain connect)."""

    def __init__(self) -> None:
        self._fallback = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if socket_options:
            return await self._fallback.connect_tcp(
                host, port, timeout, local_address, socket_options
            )
        local = (local_address, 0) if local_address else None
        try:
            async with asyncio.timeout(timeout):
                addresses = await _addresses(host, port)
                if len(addresses) == 1:
                    reader, writer = await asyncio.open_connection(
                        addresses[0], port, local_addr=local
                    )
                else:
                    # A host with IPv6 and IPv4 addresses where IPv6 is black-holed must
                    # not wait out the connect timeout: RFC 8305 with anyio's 250 ms.
                    # Python 3.11's staggered race leaves its attempt tasks cancelled
                    # but not finished when it returns: in a context of their own, so
                    # the run's leftover check (runners/leftovers.py) does not blame
                    # the journey for them. Cancelling the run cancels this task too.
                    reader, writer = await asyncio.get_running_loop().create_task(
                        asyncio.open_connection(
                            host,
                            port,
                            local_addr=local,
                            happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY,
                        ),
                        context=contextvars.Context(),
                    )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return AsyncioStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _addresses(host: str, port: int) -> list[str]:
    """The host's addresses for a TCP connect: an IP literal as is (no resolver round
    trip), a name through the loop's resolver (which raises socket.gaierror)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


BACKEND = AsyncioBackend()


def asyncio_transport(ssl_context: ssl.SSLContext) -> httpx.AsyncHTTPTransport:
    """httpx's own transport (its pool, its exception mapping) on the asyncio backend.

    httpx does not take a network backend, so the pool's is set after construction,
    before any connection exists; tests/core/test_http_stack.py fails if a new httpx or
    httpcore moves the attribute."""
    transport = httpx.AsyncHTTPTransport(verify=ssl_context, retries=0)
    pool = transport._pool
    assert hasattr(pool, "_network_backend"), "httpcore moved the pool's network backend"
    pool._network_backend = BACKEND
    return transport
