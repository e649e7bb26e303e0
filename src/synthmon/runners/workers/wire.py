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
import dataclasses
import functools
import io
import pickle
import struct
from types import MappingProxyType
from typing import Any, NamedTuple

from synthmon.model import Account, PageVitals, RunResult, RunSource, StepResult, Target, TlsChain

_LEN = struct.Struct(">I")
MAX_MESSAGE = 64 * 2**20  # a RunResult is a few KB; a journey source a few hundred


class RunOrder(NamedTuple):
    """One attempt handed to a worker (the "run" message). Targets and peer tuples are
    named by the number they were sent under ("object" messages, `pool._Worker.ref`)."""

    run: int
    file: str
    digest: str
    journey: str
    target: int
    run_id: str
    attempt: int
    source: RunSource
    account: Account | None
    extra_headers: tuple[tuple[str, str], ...]
    peers: int
    # The attempt's root span as a traceparent when tracing is on (spans.py), else None.
    root: str | None


def readonly(d: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    """Unpickles a `MappingProxyType` (the type itself cannot be looked up by name)."""
    return MappingProxyType(d)


def _proxy(m: MappingProxyType[Any, Any]) -> tuple[Any, tuple[dict[Any, Any]]]:
    return readonly, (dict(m),)


def _positional(cls: type[Any]) -> Any:
    # Frozen slots dataclasses pickle through dataclasses' __getstate__/__setstate__,
    # which look the fields up on every call: a measurable share of a hand-off at
    # hundreds of runs a second. Rebuilt positionally instead (no __post_init__ here).
    names = tuple(f.name for f in dataclasses.fields(cls))

    def reduce(obj: Any) -> tuple[Any, tuple[Any, ...]]:
        return cls, tuple(getattr(obj, n) for n in names)

    return reduce


@functools.cache
def _dispatch() -> dict[Any, Any]:
    """The pickler's reducer table, built once."""
    table: dict[Any, Any] = {**copyreg.dispatch_table, MappingProxyType: _proxy}
    for cls in (RunResult, StepResult, Target, TlsChain, PageVitals):
        table[cls] = _positional(cls)
    return table


def encode(message: tuple[Any, ...]) -> bytes:
    buf = io.BytesIO()
    buf.write(b"\0\0\0\0")
    pickler = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _dispatch()
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
