"""structlog configuration: JSON lines off a terminal, readable console on one.

Third-party stdlib logging (APScheduler, aiohttp) goes through the same processors
so every line of the process has one format.

Floods are rate-limited (`RateLimiter`): one kind of line (logger, event, journey,
target) at most `burst` times per `window`; what is dropped is counted and reported
on the next line of that kind (`suppressed_before`). A storm of refused connections or
failed accepts once wrote 151 MB in 45 s; per-run lines of a pair never reach the limit.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import structlog
from structlog.typing import Processor


class _NamedWriteLogger(structlog.WriteLogger):
    """A WriteLogger that remembers the name it was asked for (for the `logger` field)."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


class _NamedWriteLoggerFactory:
    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        return _NamedWriteLogger(self._file, str(args[0]) if args else "synthmon")


class RateLimiter:
    """At most `burst` lines of one kind per `window` seconds; the rest are dropped and
    counted. A structlog processor and a stdlib `logging` filter."""

    MAX_KEYS = 10_000

    def __init__(
        self,
        burst: int = 50,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.window = window
        self._clock = clock
        # key -> [window start, lines let through, lines dropped]
        self._state: dict[tuple[Any, ...], list[float]] = {}

    def allow(self, key: tuple[Any, ...]) -> tuple[bool, int]:
        """(let it through?, lines of this kind dropped in the window before)."""
        now = self._clock()
        st = self._state.get(key)
        if st is None or now - st[0] >= self.window:
            dropped = int(st[2]) if st is not None else 0
            if len(self._state) >= self.MAX_KEYS:
                self._state = {k: v for k, v in self._state.items() if now - v[0] < self.window}
            self._state[key] = [now, 1, 0]
            return True, dropped
        if st[1] < self.burst:
            st[1] += 1
            return True, 0
        st[2] += 1
        return False, 0

    def processor(self, _: Any, __: str, event: structlog.typing.EventDict) -> Any:
        key = (event.get("logger"), event.get("event"), event.get("journey"), event.get("target"))
        ok, dropped = self.allow(key)
        if not ok:
            raise structlog.DropEvent
        if dropped:
            event["suppressed_before"] = dropped
        return event

    def filter(self, record: logging.LogRecord) -> bool:
        ok, dropped = self.allow((record.name, record.levelno, str(record.msg)))
        if dropped:
            record.msg = f"{record.msg} [{dropped} similar lines suppressed before]"
        return ok


def configure_logging(
    *,
    level: str = "info",
    fmt: str = "auto",
    stream: TextIO | None = None,
    extra_processors: Sequence[Processor] = (),
    static: dict[str, Any] | None = None,
    rate_limit: RateLimiter | None = None,
) -> None:
    """Configure structlog and the stdlib root logger. `extra_processors` run before
    rendering (secret scrubbing is one); `static` fields go on every event;
    `rate_limit` bounds floods (default: 50 lines of a kind per 10 s)."""
    limiter = rate_limit or RateLimiter()
    stream = stream or sys.stdout
    json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if static:
        fields = dict(static)

        def add_static(_: Any, __: str, event: structlog.typing.EventDict) -> Any:
            for k, v in fields.items():
                event.setdefault(k, v)
            return event

        shared.append(add_static)
    shared.append(structlog.stdlib.add_logger_name)
    tail: list[Processor] = [
        *extra_processors,
        structlog.processors.format_exc_info if json else structlog.dev.set_exc_info,
    ]
    numeric = logging.getLevelName(level.upper())
    # synthmon's own events go straight to the stream (no stdlib hop: a run event
    # is on the hot path); stdlib records from libraries take the formatter below.
    structlog.configure(
        processors=[*shared, limiter.processor, *tail, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_NamedWriteLoggerFactory(stream),
        cache_logger_on_first_use=False,  # reconfigurable (tests, benchmarks)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *tail,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(limiter.filter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # APScheduler logs every job start at INFO; our run events say more.
    logging.getLogger("apscheduler").setLevel(max(numeric, logging.WARNING))
    logging.getLogger("aiohttp.access").setLevel(max(numeric, logging.WARNING))
    logging.getLogger("httpx").setLevel(max(numeric, logging.WARNING))
