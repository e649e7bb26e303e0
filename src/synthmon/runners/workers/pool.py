"""`WorkerPool`: the daemon's HTTP runner when `[scheduler] workers = N` (N > 0).

It is a `Runner`: the executor hands it each HTTP attempt's `RunRequest` as it would
the in-process `HttpRunner`, and gets a `RunResult` back. The pool sends the attempt
to the worker with the fewest runs in flight, together with the journey file's
source the first time that worker needs that version (so a worker runs exactly what
the daemon loaded, hot reload included), and returns what the worker answers.

A worker that exits or stops answering never takes the daemon down and never pages
anybody for the target: its in-flight runs end as `error` with reason `worker_lost`
(synthmon's problem, not the target's: retried and not counted, as every
infrastructure error), and the worker is started again after a back-off. Journeys the
pool cannot place (no worker up) end as `error` `worker_unavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import structlog

from synthmon.config.settings import Settings
from synthmon.journeys.dsl import Journey
from synthmon.model import RunRequest, RunResult, SpanRecord
from synthmon.runners.base import CLEANUP_BUDGET, Pace, Runner, error_result
from synthmon.runners.workers.child import Bootstrap
from synthmon.runners.workers.wire import RunOrder, encode, receive
from synthmon.safety.scrub import Scrubber

log = structlog.get_logger("synthmon.workers")

# A worker gets this long past a run's timeout and cleanup budget before it counts as
# stuck (a journey blocking its event loop, say) and is restarted.
STUCK_GRACE = 10.0
SWEEP_EVERY = 1.0
MAX_REFS = 1024
START_TIMEOUT = 60.0
# Restart back-off: doubles per failed start, up to the cap; reset by a worker that
# stayed up this long.
RESTART_DELAY, RESTART_CAP, STEADY = 0.5, 30.0, 60.0

Sources = Callable[[Journey], "tuple[str, bytes] | None"]


class WorkerEvents(Protocol):
    def workers_up(self, count: int) -> None: ...

    def worker_restarted(self, reason: str) -> None: ...

    def handed_off(self, seconds: float) -> None: ...


class WorkerStartError(Exception):
    pass


@runtime_checkable
class AdoptsSpans(Protocol):
    """A run trace that exports spans a worker recorded (sinks/tracing/otel.py)."""

    def traceparent(self) -> str: ...

    def adopt(self, records: Sequence[SpanRecord]) -> None: ...


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[RunResult]
    request: RunRequest
    handed_at: float
    # Past this (monotonic), no answer means the worker's loop is blocked (`_sweep`).
    deadline: float


@dataclass(slots=True)
class _Worker:
    index: int
    proc: asyncio.subprocess.Process | None = None
    writer: asyncio.StreamWriter | None = None
    up: bool = False
    started_at: float = 0.0
    pending: dict[int, _Pending] = field(default_factory=dict)
    loaded: set[tuple[str, str]] = field(default_factory=set)
    reader: asyncio.Task[None] | None = None
    stuck: bool = False
    failed_starts: int = 0  # in a row: the restart back-off doubles with each
    # Objects sent once and named by number afterwards (targets, peer tuples): the same
    # few objects go with every run. id -> (the object, its number).
    refs: dict[int, tuple[object, int]] = field(default_factory=dict)

    def send(self, *message: Any) -> None:
        assert self.writer is not None
        self.writer.write(encode(message))

    def ref(self, obj: object) -> int:
        known = self.refs.get(id(obj))
        if known is not None and known[0] is obj:
            return known[1]
        if len(self.refs) >= MAX_REFS:
            # Per-run copies (a journey's own max_response_bytes) would grow it forever.
            self.refs.clear()
            self.send("forget")
        n = len(self.refs)
        self.refs[id(obj)] = (obj, n)
        self.send("object", n, obj)
        return n


class WorkerPool:
    def __init__(
        self,
        size: int,
        *,
        bootstrap: Callable[[int], Bootstrap],
        sources: Sources,
        local: Runner,
        pace: Pace,
        events: WorkerEvents,
        python: str | None = None,
    ) -> None:
        self._workers = [_Worker(i) for i in range(size)]
        self._bootstrap = bootstrap
        self._sources = sources
        self._local = local  # journeys no folder loaded (none in `synthmon run`)
        self._pace = pace
        self._events = events
        self._python = python or sys.executable
        self._ids = itertools.count()
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def size(self) -> int:
        return len(self._workers)

    async def _sweep(self) -> None:
        """Once a second: a worker with a run unanswered long past its deadline has a
        blocked event loop. Restarted; its runs end as worker_lost."""
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            now = time.monotonic()
            for w in self._workers:
                late = [p for p in w.pending.values() if p.deadline < now]
                if late and w.up and not w.stuck:
                    log.error(
                        "worker_stuck",
                        worker=w.index,
                        journeys=sorted({p.request.journey.name for p in late})[:10],
                        hint="a journey blocks its worker's event loop; the worker is restarted",
                    )
                    self._kill(w, "stuck")

    async def start(self) -> None:
        """Start every worker (in parallel); one that fails is retried in the background."""
        self._background(self._sweep())
        results = await asyncio.gather(
            *(self._spawn(w) for w in self._workers), return_exceptions=True
        )
        for worker, outcome in zip(self._workers, results, strict=True):
            if isinstance(outcome, BaseException):
                self._failed_start(worker, outcome)

    def set_log_level(self, level: str) -> None:
        for w in self._workers:
            if w.up:
                w.send("log_level", level)

    async def run(self, request: RunRequest) -> RunResult:
        source = self._sources(request.journey)
        if source is None:
            return await self._local.run(request)
        live = [w for w in self._workers if w.up]
        if not live:
            # All restarting (one worker, just lost): wait for one, within the timeout.
            started = time.time()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(request.journey.timeout):
                    while not live:  # rare: a short poll, no wake-up bookkeeping
                        await asyncio.sleep(0.05)
                        live = [w for w in self._workers if w.up]
        if not live:
            return error_result(
                request.journey,
                request.target,
                request.run_id,
                started,
                "worker_unavailable",
                f"no worker process is up to run the journey ([scheduler] workers = "
                f"{self.size}); see the daemon's worker_* log events",
                request.attempt,
            )
        worker = min(live, key=lambda w: len(w.pending))
        return await self._hand(worker, request, source)

    async def _hand(self, w: _Worker, request: RunRequest, source: tuple[str, bytes]) -> RunResult:
        journey = request.journey
        digest, text = source
        if (journey.filename, digest) not in w.loaded:
            # The worker keeps one version per file (the newest sent): so does this set.
            w.loaded = {k for k in w.loaded if k[0] != journey.filename}
            w.send("source", journey.filename, digest, text)
            w.loaded.add((journey.filename, digest))
        trace = request.trace
        # Tracing on: the worker records the spans under the attempt's root span.
        root = trace.traceparent() if isinstance(trace, AdoptsSpans) else None
        n = next(self._ids)
        future: asyncio.Future[RunResult] = asyncio.get_running_loop().create_future()
        handed_at = time.monotonic()
        deadline = handed_at + journey.timeout + CLEANUP_BUDGET + STUCK_GRACE
        # Encoded before it counts as pending: a request that cannot be pickled raises
        # here (the executor's runner_failed path) and leaves the worker alone.
        order = RunOrder(
            n,
            journey.filename,
            digest,
            journey.name,
            w.ref(request.target),
            request.run_id,
            request.attempt,
            request.run_source,
            request.account,
            request.extra_headers,
            w.ref(request.peers),
            root,
        )
        message = encode(("run", order))
        w.pending[n] = _Pending(future, request, handed_at, deadline)
        assert w.writer is not None
        w.writer.write(message)
        try:
            # One sweep for all runs finds a stuck worker: no timer per run.
            return await future
        except asyncio.CancelledError:
            if w.pending.pop(n, None) is not None and w.up:
                w.send("cancel", n)
            raise

    # -- process lifecycle -----------------------------------------------------------

    async def _spawn(self, w: _Worker) -> None:
        ours, theirs = socket.socketpair()
        try:
            proc = await asyncio.create_subprocess_exec(
                self._python,
                "-m",
                "synthmon.runners.workers.child",
                str(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        w.proc, w.stuck, w.loaded, w.refs = proc, False, set(), {}
        reader, writer = await asyncio.open_connection(sock=ours)
        w.writer = writer
        writer.write(encode(("hello", self._bootstrap(w.index))))
        try:
            ready = await asyncio.wait_for(receive(reader), START_TIMEOUT)
        except TimeoutError:
            ready = None
        if ready is None or ready[0] != "ready":
            proc.kill()
            await proc.wait()
            writer.close()
            raise WorkerStartError(
                f"worker {w.index} did not start (exit code {proc.returncode}); "
                "its error (a Python traceback) is on the daemon's stderr"
            )
        w.up, w.started_at = True, time.monotonic()
        w.reader = asyncio.create_task(self._read(w, reader), name=f"synthmon-worker-{w.index}")
        self._events.workers_up(sum(x.up for x in self._workers))
        log.info("worker_started", worker=w.index, pid=proc.pid)

    async def _read(self, w: _Worker, reader: asyncio.StreamReader) -> None:
        try:
            while (message := await receive(reader)) is not None:
                if message[0] == "result":
                    pending = w.pending.pop(message[1], None)
                    if pending is not None:
                        self._events.handed_off(max(message[3] - pending.handed_at, 0.0))
                        trace = pending.request.trace
                        if message[4] and isinstance(trace, AdoptsSpans):
                            trace.adopt(message[4])
                        if not pending.future.done():
                            pending.future.set_result(message[2])
                elif message[0] == "pace":
                    self._background(self._paced(w, message[1], message[2]))
        except Exception:
            log.exception("worker_protocol_error", worker=w.index)
            self._kill(w, "protocol")
        # Always: whatever ended the stream, the runs in flight get their result.
        await self._lost(w)

    async def _paced(self, w: _Worker, n: int, target: str) -> None:
        await self._pace(target)
        if w.up:
            w.send("paced", n)

    async def _lost(self, w: _Worker) -> None:
        w.up = False
        self._events.workers_up(sum(x.up for x in self._workers))
        assert w.proc is not None
        try:
            # End of stream: the worker exited or is exiting. Not kill() at once: it
            # polls the process, which would reap it before asyncio's child watcher
            # reads its exit status (reported as 255 then).
            code = await asyncio.wait_for(w.proc.wait(), 5.0)
        except TimeoutError:
            w.proc.kill()
            code = await w.proc.wait()
        if w.writer is not None:
            w.writer.close()
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        if w.stuck:
            how = "stopped answering and was restarted"
        lost = list(w.pending.values())
        w.pending.clear()
        for p in lost:
            r = p.request
            if not p.future.done():
                p.future.set_result(
                    error_result(
                        r.journey,
                        r.target,
                        r.run_id,
                        time.time() - (time.monotonic() - p.handed_at),
                        "worker_lost",
                        f"the worker process running this journey (worker {w.index}, pid "
                        f"{w.proc.pid}) {how}; not counted against the target",
                        r.attempt,
                    )
                )
        if self._closing:
            return
        reason = "stuck" if w.stuck else "exited"
        log.error(
            "worker_lost",
            worker=w.index,
            pid=w.proc.pid,
            exit_code=code,
            reason=reason,
            runs_lost=len(lost),
            journeys=sorted({p.request.journey.name for p in lost})[:10],
            hint="its runs end as error worker_lost; the worker is started again",
        )
        self._events.worker_restarted(reason)
        if time.monotonic() - w.started_at >= STEADY:
            w.failed_starts = 0
        self._background(self._restart(w))

    def _kill(self, w: _Worker, why: str) -> None:
        if w.proc is not None and w.proc.returncode is None:
            w.stuck = why == "stuck"
            w.proc.kill()

    def _failed_start(self, w: _Worker, exc: BaseException) -> None:
        log.error("worker_start_failed", worker=w.index, error=str(exc))
        self._events.worker_restarted("start_failed")
        self._background(self._restart(w))

    async def _restart(self, w: _Worker) -> None:
        delay = min(RESTART_DELAY * 2**w.failed_starts, RESTART_CAP)
        w.failed_starts += 1
        await asyncio.sleep(delay)
        if self._closing:
            return
        try:
            await self._spawn(w)
        except (WorkerStartError, OSError) as exc:
            self._failed_start(w, exc)

    def _background(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Stop every worker: end of stream first (the worker cancels what it runs and
        exits), SIGKILL for one still there after 5 s."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        for w in self._workers:
            if w.writer is not None:
                w.writer.close()
        for w in self._workers:
            if w.proc is None:
                continue
            try:
                await asyncio.wait_for(w.proc.wait(), 5.0)
            except TimeoutError:
                w.proc.kill()
                await w.proc.wait()
            if w.reader is not None:
                await asyncio.gather(w.reader, return_exceptions=True)
        self._events.workers_up(0)
        close = getattr(self._local, "aclose", None)
        if close is not None:
            await close()


def worker_pool_from_settings(
    settings: Settings,
    *,
    local: Runner,
    sources: Sources,
    pace: Pace,
    scrubber: Scrubber,
    user_agent: str,
    events: WorkerEvents,
) -> WorkerPool:
    """The daemon's HTTP runner for `[scheduler] workers = N` (N > 0)."""

    def bootstrap(index: int) -> Bootstrap:
        return Bootstrap(
            index=index,
            user_agent=user_agent,
            tag_headers=((settings.synthetic.header, settings.synthetic.value),),
            log_level=settings.logging.level,
            log_format=settings.logging.format,
            scrubber=scrubber,
            location=settings.location,
            loop_lag_warning=settings.scheduler.loop_lag_warning,
        )

    return WorkerPool(
        settings.scheduler.workers,
        bootstrap=bootstrap,
        sources=sources,
        local=local,
        pace=pace,
        events=events,
    )
