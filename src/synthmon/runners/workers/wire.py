"""The framing between the daemon and its workers: one pickled tuple per message,
prefixed with its length (4 bytes, big-endian), over a socketpair.

Both ends are this package's own processes, started by the daemon with the same
interpreter and code, so pickle is safe here and costs less than any schema would.
`MappingProxyType` (read-only mappings in `Target` and `Account`) has no pickle
support of its own: it travels as a dict and comes back read-only.
"""

from __future__ import annotations

import asyncio
import copyreg
import io
import pickle
import struct
from types import MappingProxyType
from typing import Any

_LEN = struct.Struct(">I")
MAX_MESSAGE = 64 * 2**20  # a RunResult is a few KB; a journey source a few hundred


def readonly(d: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    """Unpickles a `MappingProxyType` (the type itself cannot be looked up by name)."""
    return MappingProxyType(d)


def _proxy(m: MappingProxyType[Any, Any]) -> tuple[Any, tuple[dict[Any, Any]]]:
    return readonly, (dict(m),)


_DISPATCH = {**copyreg.dispatch_table, MappingProxyType: _proxy}


def encode(message: tuple[Any, ...]) -> bytes:
    buf = io.BytesIO()
    buf.write(b"\0\0\0\0")
    pickler = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _DISPATCH
    pickler.dump(message)
    data = buf.getbuffer()
    _LEN.pack_into(data, 0, len(data) - 4)
    return bytes(data)


async def receive(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    """The next message; None at end of stream (the other side is gone)."""
    try:
        head = await reader.readexactly(4)
        (size,) = _LEN.unpack(head)
        if size > MAX_MESSAGE:
            raise ValueError(f"worker message of {size} bytes (limit {MAX_MESSAGE})")
        # Our own child or parent process on a socketpair (module docstring).
        message = pickle.loads(await reader.readexactly(size))  # noqa: S301
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    assert isinstance(message, tuple)
    return message
