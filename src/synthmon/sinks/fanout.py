"""`Fanout`: one place that hands each RunResult to every sink."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Protocol

import structlog

from synthmon.model import RunResult

log = structlog.get_logger("synthmon.sinks")


class Sink(Protocol):
    async def emit(self, result: RunResult) -> None: ...


class Fanout:
    """Per-sink bounded queue and worker: results reach each sink in order, a slow
    sink only delays itself, and overflow is counted instead of blocking runs.

    A sink that also has a synchronous `record(result)` (an in-memory update of a few
    microseconds: metrics, latest) is called inline instead, under the same error
    guard: a queue hop and a worker wake-up per run cost more CPU than the update
    itself (docs/benchmarks.md)."""

    def __init__(
        self,
        sinks: Sequence[tuple[str, Sink]],
        *,
        timeout: float = 5.0,
        max_queue: int = 10_000,
        on_problem: Callable[[str, str], None] | None = None,
    ) -> None:
        self._inline: list[tuple[str, Callable[[RunResult], None]]] = []
        self._sinks: list[tuple[str, Sink]] = []
        for name, sink in sinks:
            record = getattr(sink, "record", None)
            if callable(record):
                self._inline.append((name, record))
            else:
                self._sinks.append((name, sink))
        self._timeout = timeout
        self._queues: dict[str, asyncio.Queue[RunResult]] = {
            name: asyncio.Queue(max_queue) for name, _ in self._sinks
        }
        self._workers: list[asyncio.Task[None]] = []
        self._on_problem = on_problem or (lambda sink, what: None)

    def start(self) -> None:
        for name, sink in self._sinks:
            task = asyncio.get_running_loop().create_task(
                self._work(name, sink, self._queues[name]), name=f"synthmon-sink:{name}"
            )
            self._workers.append(task)

    def depth(self) -> dict[str, int]:
        """Results waiting per queued sink (read by /metrics' render thread: qsize is a
        len() of the queue's deque, safe without the event loop)."""
        return {name: queue.qsize() for name, queue in self._queues.items()}

    def emit(self, result: RunResult) -> None:
        """Queue `result` for every sink. Never blocks, never raises."""
        for name, record in self._inline:
            try:
                record(result)
            except Exception as exc:
                self._on_problem(name, "error")
                log.exception(
                    "sink_failed",
                    sink=name,
                    journey=result.journey,
                    run_id=result.run_id,
                    error=str(exc),
                )
        for name, queue in self._queues.items():
            try:
                queue.put_nowait(result)
            except asyncio.QueueFull:
                self._on_problem(name, "dropped")
                log.error(
                    "sink_queue_full", sink=name, journey=result.journey, run_id=result.run_id
                )

    async def _work(self, name: str, sink: Sink, queue: asyncio.Queue[RunResult]) -> None:
        while True:
            result = await queue.get()
            try:
                async with asyncio.timeout(self._timeout):
                    await sink.emit(result)
            except TimeoutError:
                self._on_problem(name, "timeout")
                log.error("sink_timeout", sink=name, journey=result.journey, run_id=result.run_id)
            except Exception as exc:
                self._on_problem(name, "error")
                log.exception(
                    "sink_failed",
                    sink=name,
                    journey=result.journey,
                    run_id=result.run_id,
                    error=str(exc),
                )
            finally:
                queue.task_done()

    async def flush(self, *sinks: str) -> None:
        """Wait until every queued result reached every sink (or the named ones: a
        hung sink need not hold up a wait for the others)."""
        names = sinks or tuple(self._queues)
        # Inline sinks have nothing queued: emit() already handed them the result.
        await asyncio.gather(*(self._queues[n].join() for n in names if n in self._queues))

    async def close(self, drain_seconds: float = 5.0) -> None:
        """Drain what is queued (up to `drain_seconds`), then stop the workers."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain_seconds):
                await self.flush()
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()
