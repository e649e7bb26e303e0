"""The HTTP runner's network layer (runners/streams.py): httpx on plain asyncio streams.

Driven through a daemon built as `synthmon run` builds it, against small loopback
servers that count connections and misbehave on purpose."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from synthmon.model import RunResult, Status
from tests.harness import make_settings, run_daemon

BLACK_HOLE = "127.0.0.2"  # loopback, but its listener's full backlog drops every SYN
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"


@dataclass
class Counting:
    url: str
    connections: int = 0
    requests: int = 0


@asynccontextmanager
async def closing_server(close_after: float | None) -> AsyncIterator[Counting]:
    """Answers keep-alive; with `close_after`, hangs up that long after each answer (a
    server's idle timeout shorter than the client's)."""
    state = Counting(url="")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                state.requests += 1
                writer.write(OK)
                await writer.drain()
                if close_after is not None:
                    await asyncio.sleep(close_after)
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield state


TWO_REQUESTS = """
    import asyncio
    from synthmon import Context, journey

    @journey(interval="7d", timeout="5s")
    async def twice(ctx: Context) -> None:
        async with ctx.step("first"):
            r = await ctx.http.get("/one")
            assert r.status_code == 200
            stream = type(r.extensions["network_stream"]).__name__
            assert stream == "AsyncioStream", stream
        await asyncio.sleep(0.3)
        async with ctx.step("second"):
            r = await ctx.http.get("/two")
            assert r.status_code == 200
"""


async def run_twice(tmp_path: Path, close_after: float | None) -> tuple[RunResult, Counting]:
    """One run of TWO_REQUESTS through the daemon against a `closing_server`."""
    async with closing_server(close_after) as server:
        settings = make_settings(
            tmp_path, targets={"shop": server.url}, journeys={"j.py": TWO_REQUESTS}
        )
        async with run_daemon(settings) as (daemon, _):
            run = await daemon.run_pair(daemon.journeys["twice"], daemon.targets["shop"])
    return run, server


class TestAsyncioStreams:
    async def test_requests_of_a_run_share_one_connection(self, tmp_path: Path) -> None:
        """Two requests of one run go over one kept-alive connection, on synthmon's
        asyncio streams (not anyio's: runners/streams.py)."""
        run, server = await run_twice(tmp_path, close_after=None)
        assert run.status is Status.SUCCESS, run.error_message
        assert (server.connections, server.requests) == (1, 2)

    async def test_a_connection_the_server_closed_is_not_reused(self, tmp_path: Path) -> None:
        """When the server hangs up an idle kept-alive connection between two requests,
        the next request opens a new connection instead of failing the run."""
        run, server = await run_twice(tmp_path, close_after=0.05)
        assert run.status is Status.SUCCESS, run.error_message
        assert (server.connections, server.requests) == (2, 2)


@contextmanager
def black_hole(port: int) -> Iterator[None]:
    """A listener on BLACK_HOLE:`port` whose accept queue is full: the kernel drops new
    SYNs, so a connect hangs as to a black-holed address (a dead IPv6 route)."""
    server = socket.socket()
    held: list[socket.socket] = []
    try:
        server.bind((BLACK_HOLE, port))
        server.listen(0)
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            with suppress(BlockingIOError):
                c.connect((BLACK_HOLE, port))
            held.append(c)
        yield
    finally:
        for c in held:
            c.close()
        server.close()


class TestHappyEyeballs:
    async def test_a_black_holed_first_address_does_not_stall_the_run(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A host name whose first address never answers (IPv6 black-holed, say) is
        reached on its next address 250 ms later, as with anyio, instead of hanging
        until the run's timeout and failing it; the race's tasks are not reported as
        the journey's leftovers."""
        async with closing_server(close_after=None) as server:
            port = int(server.url.rsplit(":", 1)[1])
            loop = asyncio.get_running_loop()
            real = loop.getaddrinfo

            async def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
                if host != "dualstack.test":
                    return await real(host, *args, **kwargs)
                return [
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
                    for address in (BLACK_HOLE, "127.0.0.1")
                ]

            monkeypatch.setattr(loop, "getaddrinfo", resolve)
            settings = make_settings(
                tmp_path,
                targets={"shop": f"http://dualstack.test:{port}"},
                journeys={"j.py": TWO_REQUESTS},
            )
            with black_hole(port):
                async with run_daemon(settings) as (daemon, _):
                    run = await daemon.run_pair(daemon.journeys["twice"], daemon.targets["shop"])
        assert run.status is Status.SUCCESS, run.error_message
        assert server.requests == 2
        # The race's attempt tasks are synthmon's, not the journey's leftovers.
        assert run.left_behind == ()
