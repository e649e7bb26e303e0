"""A loopback HTTP server that misbehaves on request, one way per path.

Every row of the fault matrix a monitored target can throw at synthmon, on real
sockets (no mocks), so the daemon meets them exactly as it would in production:

    /ok                       200, a small JSON body
    /slow-status?delay=S      reads the request, waits S seconds before the status line
    /slow-body?seconds=S      status and headers at once, then one byte every 0.5 s for S s
    /reset                    headers, 1 KB of a 100 KB body, then a TCP RST
    /truncated                Content-Length 1000, 100 bytes, then a clean close (FIN)
    /500                      500 Internal Server Error
    /huge?mb=N                a streamed body of N MB (zeros), Content-Length set
    /huge-chunked?mb=N        the same, chunked (no Content-Length up front)

Beside the HTTP port:

    hang_url       a listening socket that is never accepted: the kernel completes the
                   handshake and takes the request, nothing ever answers (accept-and-hang)
    tls_url        a TLS port with a self-signed certificate (verification fails)
    refused_url    a port nobody listens on (connection refused)
    UNRESOLVABLE   a name under .invalid (RFC 2606): never resolves

Use `async with serve() as faults:` in a test, or run `python faultserver.py --port N`
(the soak does).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import ssl
import struct
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

UNRESOLVABLE = "http://shop.invalid"
CHUNK = 64 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode()


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        request = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.close()
        return
    target = request.split(b" ", 2)[1].decode("latin-1") if b" " in request else "/"
    parts = urlsplit(target)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    try:
        await _respond(parts.path, query, writer)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _respond(path: str, query: dict[str, str], writer: asyncio.StreamWriter) -> None:
    close = {"Connection": "close"}
    if path == "/ok":
        body = b'{"ok": true}'
        writer.write(_head("200 OK", {**close, "Content-Length": str(len(body))}) + body)
    elif path == "/500":
        body = b"internal error"
        writer.write(
            _head("500 Internal Server Error", {**close, "Content-Length": str(len(body))}) + body
        )
    elif path == "/slow-status":
        await asyncio.sleep(float(query.get("delay", "3600")))
        writer.write(_head("200 OK", {**close, "Content-Length": "2"}) + b"ok")
    elif path == "/slow-body":
        seconds = float(query.get("seconds", "3600"))
        n = max(1, int(seconds / 0.5))
        writer.write(_head("200 OK", {**close, "Content-Length": str(n)}))
        for _ in range(n):
            await writer.drain()
            await asyncio.sleep(0.5)
            writer.write(b"x")
    elif path == "/reset":
        writer.write(_head("200 OK", {"Content-Length": "100000"}) + b"x" * 1024)
        await writer.drain()
        await asyncio.sleep(0.1)
        sock = writer.get_extra_info("socket")
        # SO_LINGER 0: close() sends a RST instead of a FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        return
    elif path == "/truncated":
        writer.write(_head("200 OK", {**close, "Content-Length": "1000"}) + b"x" * 100)
    elif path in ("/huge", "/huge-chunked"):
        total = int(float(query.get("mb", "200")) * 1024 * 1024)
        chunked = path == "/huge-chunked"
        headers = {**close, "Content-Type": "application/octet-stream"}
        headers.update(
            {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(total)}
        )
        writer.write(_head("200 OK", headers))
        block = b"\0" * CHUNK
        sent = 0
        while sent < total:
            piece = block[: min(CHUNK, total - sent)]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            sent += len(piece)
            await writer.drain()
        if chunked:
            writer.write(b"0\r\n\r\n")
    else:
        writer.write(_head("404 Not Found", {**close, "Content-Length": "0"}))
    await writer.drain()


def _self_signed(directory: Path) -> ssl.SSLContext:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


@dataclass
class FaultServer:
    url: str
    hang_url: str
    tls_url: str
    refused_url: str
    unresolvable_url: str = UNRESOLVABLE
    _closers: list[asyncio.AbstractServer | socket.socket] = field(default_factory=list)


@contextlib.asynccontextmanager
async def serve(host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[FaultServer]:
    """Start every fault listener on loopback; always stop them."""
    server = await asyncio.start_server(_handle, host, port)
    http_port = server.sockets[0].getsockname()[1]
    hang = socket.socket()
    hang.bind((host, 0))
    hang.listen(64)  # never accepted
    with tempfile.TemporaryDirectory() as tmp:
        tls = await asyncio.start_server(_handle, host, 0, ssl=_self_signed(Path(tmp)))
    faults = FaultServer(
        url=f"http://{host}:{http_port}",
        hang_url=f"http://{host}:{hang.getsockname()[1]}",
        tls_url=f"https://{host}:{tls.sockets[0].getsockname()[1]}",
        refused_url=f"http://{host}:{_free_port()}",
        _closers=[server, tls, hang],
    )
    try:
        yield faults
    finally:
        hang.close()
        for s in (server, tls):
            s.close()
            # Handlers parked in a long sleep (slow-status) would hold wait_closed.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(s.wait_closed(), 1.0)


async def _main(port: int) -> None:
    async with serve(port=port) as faults:
        print(
            f"url={faults.url} hang={faults.hang_url} tls={faults.tls_url} "
            f"refused={faults.refused_url}",
            flush=True,
        )
        await asyncio.Event().wait()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--port", type=int, default=0)
    asyncio.run(_main(p.parse_args().port))
