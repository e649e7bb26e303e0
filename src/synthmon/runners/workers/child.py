"""One worker process: runs the HTTP attempts the daemon hands it, on its own event
loop with its own `HttpRunner`, and sends each `RunResult` back.

Started by `pool.WorkerPool` as `python -m synthmon.runners.workers.child FD`, FD
being its end of a socketpair. Messages (wire.py), daemon to worker:

  ("hello", Bootstrap)          first: logging, the scrubber, the runner's tagging
  ("source", file, digest, src) a journey file version, loaded before runs use it (it
                                replaces the file's previous version here)
  ("object", n, obj)            an object later messages name by number n (targets)
  ("forget",)                   drop those objects
  ("run", RunOrder)             one attempt (wire.RunOrder)
  ("cancel", id)                the daemon gave up on run `id` (stopping, say)
  ("paced", n)                  the target's rate limit lets request `n` go
  ("log_level", level)          `[logging] level` changed (hot reload)

and worker to daemon: ("ready",), ("result", id, RunResult, started_at_monotonic,
spans or None: the `SpanRecord`s of a traced run, runners/workers/spans.py) and
("pace", n, target) — every request to a target with `max_requests_per_second` waits
for the daemon's pacer, so the limit holds across all workers and the daemon's own
browser runs. End of stream either way ends the worker: it never outlives its daemon.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any

import structlog

from synthmon.journeys.dsl import Journey
from synthmon.journeys.loader import load_source
from synthmon.model import RunRequest, RunResult, Status, Target
from synthmon.runners.base import error_result, excuse_stall
from synthmon.runners.http import HttpRunner
from synthmon.runners.workers.spans import RecordedTrace
from synthmon.runners.workers.wire import RunOrder, encode, receive
from synthmon.runtime.interpreter import tune_for_daemon
from synthmon.runtime.logs import configure_logging, set_log_level
from synthmon.runtime.watchdog import LoopWatchdog

log = structlog.get_logger("synthmon.worker")


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """What a worker needs from the daemon's settings, sent once at start."""

    index: int
    user_agent: str
    tag_headers: tuple[tuple[str, str], ...]
    log_level: str
    log_format: str
    # The daemon's secret scrubber (safety/scrub.py), for the worker's own log lines.
    scrubber: Any
    location: str | None = None
    # [scheduler] loop_lag_warning: the worker's own event-loop watchdog.
    loop_lag_warning: float = 0.25


class Worker:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._journeys: dict[tuple[str, str], dict[str, Journey] | str] = {}
        self._runs: dict[int, asyncio.Task[None]] = {}
        self._paces: dict[int, asyncio.Future[None]] = {}
        self._pace_ids = itertools.count()
        self._runner: HttpRunner | None = None
        self._limited: frozenset[str] = frozenset()
        self._objects: dict[int, Any] = {}
        self._watchdog: LoopWatchdog | None = None

    def _send(self, *message: Any) -> None:
        self._writer.write(encode(message))

    async def _pace(self, target: str) -> None:
        # Only targets with a rate limit ask the daemon (a round trip per request).
        if target not in self._limited:
            return
        n = next(self._pace_ids)
        waiter = self._paces[n] = asyncio.get_running_loop().create_future()
        self._send("pace", n, target)
        try:
            await waiter
        finally:
            self._paces.pop(n, None)

    async def serve(self) -> None:
        hello = await receive(self._reader)
        if hello is None or hello[0] != "hello":
            return
        boot: Bootstrap = hello[1]
        configure_logging(
            level=boot.log_level,
            fmt=boot.log_format,
            extra_processors=[boot.scrubber.processor],
            static={"location": boot.location, "worker": boot.index}
            if boot.location
            else {"worker": boot.index},
        )
        tune_for_daemon()
        # As in the daemon: a journey blocking this loop is named in the log, and a
        # neighbour it cut short is not counted against its target (`_attempt`).
        self._watchdog = LoopWatchdog(
            threshold=boot.loop_lag_warning,
            journey_files=lambda: {fname for fname, _ in self._journeys},
        )
        self._watchdog.start()
        self._runner = HttpRunner(
            user_agent=boot.user_agent, tag_headers=boot.tag_headers, pace=self._pace
        )
        self._send("ready", os.getpid())
        while (message := await receive(self._reader)) is not None:
            kind = message[0]
            if kind == "run":
                order: RunOrder = message[1]
                # Resolved now: a later "forget" may reuse the numbers before it starts.
                target, peers = self._objects[order.target], self._objects[order.peers]
                # Named as the daemon names a run's task: the watchdog reports it so.
                self._runs[order.run] = asyncio.create_task(
                    self._run(order, target, peers),
                    name=f"synthmon-run:{order.journey}@{target.name}",
                )
            elif kind == "object":
                self._objects[message[1]] = message[2]
            elif kind == "forget":
                self._objects.clear()
            elif kind == "paced":
                waiter = self._paces.get(message[1])
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            elif kind == "cancel":
                task = self._runs.get(message[1])
                if task is not None:
                    task.cancel()
            elif kind == "source":
                self._load(*message[1:])
            elif kind == "log_level":
                set_log_level(message[1])
        for task in self._runs.values():
            task.cancel()
        if self._watchdog is not None:
            await self._watchdog.stop()

    def _load(self, fname: str, digest: str, source: bytes) -> None:
        # One version per file: an older one is never asked for again (the daemon
        # re-sends a version it dropped), and its module can be collected.
        for key in [k for k in self._journeys if k[0] == fname]:
            del self._journeys[key]
        journeys, problems = load_source(fname, source)
        if problems:
            # The daemon loaded this very version without problems; an import that
            # fails here depends on the process (an environment variable, a file).
            self._journeys[fname, digest] = "; ".join(
                f"{p.filename}:{p.lineno}: {p.message}" for p in problems
            )
        else:
            self._journeys[fname, digest] = {j.name: j for j in journeys}

    async def _run(self, order: RunOrder, target: Target, peers: tuple[Target, ...]) -> None:
        started = time.monotonic()
        if target.max_requests_per_second:
            self._limited = self._limited | {target.name}
        trace = None
        if order.root is not None:
            _, trace_id, span_id, _ = order.root.split("-")
            trace = RecordedTrace(trace_id, int(span_id, 16))
        try:
            result = await self._attempt(order, target, peers, trace)
        except asyncio.CancelledError:
            return  # the daemon stopped waiting for it
        except Exception as exc:
            log.exception("worker_run_failed", journey=order.journey, target=target.name)
            why = f"synthmon failed to run the journey in worker: {type(exc).__name__}: {exc}"
            result = _unrun(order, target, "internal", why)
        finally:
            self._runs.pop(order.run, None)
        spans = trace.spans() if trace is not None else None
        self._send("result", order.run, result, started, spans)

    async def _attempt(
        self,
        order: RunOrder,
        target: Target,
        peers: tuple[Target, ...],
        trace: RecordedTrace | None,
    ) -> RunResult:
        fname = order.file
        loaded = self._journeys.get((fname, order.digest))
        journey = loaded.get(order.journey) if isinstance(loaded, dict) else None
        if journey is None:
            why = loaded if isinstance(loaded, str) else "the journey is not in that file version"
            message = f"the worker process could not load {fname}: {why}"
            return _unrun(order, target, "worker_load", message)
        assert self._runner is not None
        assert self._watchdog is not None
        result = await self._runner.run(
            RunRequest(
                journey=journey,
                target=target,
                run_id=order.run_id,
                attempt=order.attempt,
                run_source=order.source,
                account=order.account,
                extra_headers=order.extra_headers,
                peers=peers,
                trace=trace,
            )
        )
        if result.status is Status.TIMEOUT:
            task = asyncio.current_task()
            now = time.monotonic()
            stolen, culprit = self._watchdog.stolen_from(
                task.get_name() if task else None, now - result.duration, now
            )
            result = excuse_stall(result, journey.timeout, stolen, culprit)
        return result


def _unrun(order: RunOrder, target: Target, reason: str, why: str) -> RunResult:
    """An error result for a run the worker could not run (synthmon's problem)."""
    stub = Journey(name=order.journey, func=_never, filename=order.file)
    return error_result(stub, target, order.run_id, time.time(), reason, why, order.attempt)


async def _never(ctx: Any) -> None:  # pragma: no cover - a stub never runs
    raise RuntimeError("stub journey")


async def main(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        await Worker(reader, writer).serve()
    finally:
        writer.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
