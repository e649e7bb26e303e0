"""What went wrong on the wire, in words an on-call reader knows, and a cap on how much
of a response body a run may hold.

httpx reports a reset as a bare `ReadError`, a refused port as "All connection attempts
failed"; the cause that says what happened sits further down the exception chain.
`explain()` finds it and says which phase of which request it hit:

    connection reset by peer while reading the response body of GET https://shop/x

`CappedBody` wraps a response's byte stream: it counts bytes as they arrive (nothing
beyond the cap is ever held) and marks errors raised while the body streams, so the
message can say "while reading the response body".
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator

import httpx

from synthmon.errors import ResponseTooLargeError

_INCOMPLETE = "peer closed connection without sending complete message body"
# Set on an httpx error raised while the body streamed (see CappedBody).
_BODY_PHASE = "_synthmon_in_body"


def format_bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"


class CappedBody(httpx.AsyncByteStream):
    """A response body that fails with `ResponseTooLargeError` once it passes `cap` bytes."""

    def __init__(
        self,
        inner: httpx.AsyncByteStream,
        request: httpx.Request,
        *,
        cap: int,
        target: str,
        declared: str | None = None,
    ) -> None:
        self._inner = inner
        self._request = request
        self._cap = cap
        self._target = target
        self._declared = int(declared) if declared and declared.isdigit() else None

    def _too_large(self, what: str) -> ResponseTooLargeError:
        return ResponseTooLargeError(
            f"response body of {self._request.method} {self._request.url} {what} the "
            f"{format_bytes(self._cap)} cap (max_response_size of {self._target}); "
            "raise it there if such bodies are expected"
        )

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._declared is not None and self._declared > self._cap:
            # Fail before reading a byte of a body we would refuse anyway.
            raise self._too_large(f"declares {format_bytes(self._declared)}, over")
        seen = 0
        try:
            async for chunk in self._inner:
                seen += len(chunk)
                if seen > self._cap:
                    raise self._too_large("exceeded")
                yield chunk
        except httpx.TransportError as exc:
            setattr(exc, _BODY_PHASE, True)
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()


def cap_body(response: httpx.Response, request: httpx.Request, cap: int, target: str) -> None:
    """Replace `response`'s stream by a capped one (in place, before anyone reads it)."""
    response.stream = CappedBody(
        response.stream,  # type: ignore[arg-type]
        request,
        cap=cap,
        target=target,
        declared=response.headers.get("content-length"),
    )


def _cause(exc: BaseException) -> str | None:
    """The words for the root cause found down the chain, if it is a known one."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionResetError):
            return "connection reset by peer"
        if isinstance(cur, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cur, socket.gaierror):
            return f"could not resolve the host name ({cur.strerror or cur})"
        if isinstance(cur, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed ({cur.verify_message or cur.reason})"
        if isinstance(cur, ssl.SSLError):
            return f"TLS handshake failed ({cur.reason or cur})"
        if isinstance(cur, httpx.RemoteProtocolError | ConnectionAbortedError) and str(cur):
            text = str(cur)
            if text.startswith(_INCOMPLETE):
                rest = text.removeprefix(_INCOMPLETE)  # " (received 100 bytes, expected 1000)"
                return f"connection closed before the response body was complete{rest}"
            if "Server disconnected" in text:
                return "connection closed by the server before it answered"
        cur = cur.__cause__ or cur.__context__
    return None


def _phase(exc: httpx.TransportError) -> str:
    if getattr(exc, _BODY_PHASE, False):
        return "while reading the response body of"
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return "while opening the connection for"
    if isinstance(exc, httpx.WriteError | httpx.WriteTimeout):
        return "while sending"
    if isinstance(exc, httpx.PoolTimeout):
        return "while waiting for a connection for"
    return "while waiting for the response to"


def explain(exc: httpx.TransportError) -> str | None:
    """ "<cause> <phase> <METHOD URL>" for a transport error, or None when the chain
    holds nothing better than httpx's own message."""
    try:
        where = f"{exc.request.method} {exc.request.url}"
    except RuntimeError:
        where = ""
    if isinstance(exc, httpx.TimeoutException):
        cause = f"timed out ({type(exc).__name__})"
    else:
        found = _cause(exc)
        if found is None:
            return None
        cause = found
    return f"{cause} {_phase(exc)} {where}".strip()
