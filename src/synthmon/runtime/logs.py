"""structlog configuration: JSON lines off a terminal, readable console on one.

Third-party stdlib logging (APScheduler, aiohttp) goes through the same processors
so every line of the process has one format.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
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


def configure_logging(
    *,
    level: str = "info",
    fmt: str = "auto",
    stream: TextIO | None = None,
    extra_processors: Sequence[Processor] = (),
    static: dict[str, Any] | None = None,
) -> None:
    """Configure structlog and the stdlib root logger. `extra_processors` run before
    rendering (secret scrubbing is one); `static` fields go on every event."""
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
        processors=[*shared, *tail, renderer],
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
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # APScheduler logs every job start at INFO; our run events say more.
    logging.getLogger("apscheduler").setLevel(max(numeric, logging.WARNING))
    logging.getLogger("aiohttp.access").setLevel(max(numeric, logging.WARNING))
    logging.getLogger("httpx").setLevel(max(numeric, logging.WARNING))
