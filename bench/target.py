"""A minimal loopback HTTP target for the benchmarks: answers every GET with 200 "ok".

The demo shop (aiohttp) costs more CPU per request than the daemon under test; on a
small shared machine it would be the bottleneck of the 5,000-journey point. This is
the stand-in for the issue's "loopback nginx": an asyncio Protocol, no framework.

Usage: python bench/target.py PORT
"""

from __future__ import annotations

import asyncio
import sys

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    b"Connection: keep-alive\r\n\r\nok"
)


class Answer(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        # GETs without bodies: every blank line ends one request.
        while b"\r\n\r\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            assert self.transport is not None
            self.transport.write(RESPONSE)


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
