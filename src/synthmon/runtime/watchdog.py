"""Watches the event loop: a journey that blocks it (time.sleep, CPU work) delays
every other run, so it is measured and named.

An in-loop task measures how late it wakes up (the metric). A thread notices a
loop that stopped answering while it is still stuck, and names the task and the
journey line that holds it (the warning), which the loop itself cannot do.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger("synthmon.runtime.watchdog")


class LoopWatchdog:
    def __init__(
        self,
        *,
        threshold: float = 0.25,
        tick: float = 0.1,
        on_lag: Callable[[float], None] = lambda s: None,
        journey_files: Callable[[], set[str]] = set,
    ) -> None:
        self._threshold = threshold
        self._tick = tick
        self._on_lag = on_lag
        self._journey_files = journey_files
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread_id = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread_id = threading.get_ident()
        self._beat = time.monotonic()
        self._task = self._loop.create_task(self._measure(), name="synthmon-loop-monitor")
        self._thread = threading.Thread(target=self._watch, name="synthmon-watchdog", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 2.0)

    async def _measure(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self._tick)
            now = time.monotonic()
            self._beat = now
            self._on_lag(max(0.0, now - before - self._tick))

    def _watch(self) -> None:
        warned_for = 0.0
        while not self._stop.wait(self._threshold / 2):
            beat = self._beat
            stalled = time.monotonic() - beat
            if stalled < self._threshold + self._tick or beat == warned_for:
                continue
            warned_for = beat
            task_name, where = self._culprit()
            log.warning(
                "event_loop_blocked",
                blocked_seconds=round(stalled, 3),
                task=task_name,
                journey=_journey_of(task_name),
                at=where,
                hint="a journey is blocking the event loop: use 'await asyncio.sleep' "
                "and async clients instead of time.sleep or blocking I/O",
            )

    def _culprit(self) -> tuple[str | None, str | None]:
        task = asyncio.current_task(self._loop) if self._loop else None
        name = task.get_name() if task is not None else None
        frame = sys._current_frames().get(self._loop_thread_id)
        files = self._journey_files()
        where = None
        while frame is not None:
            if frame.f_code.co_filename in files:
                where = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
                break
            frame = frame.f_back
        return name, where


def _journey_of(task_name: str | None) -> str | None:
    if task_name and task_name.startswith("synthmon-run:"):
        return task_name.removeprefix("synthmon-run:")
    return None
