"""Watches the event loop: a journey that blocks it (time.sleep, CPU work) delays
every other run, so it is measured and named.

An in-loop task measures how late it wakes up (the metric). A thread notices a
loop that stopped answering while it is still stuck, and names the task and the
journey line that holds it (`event_loop_blocked`, at the threshold), which the loop
itself cannot do; when the loop answers again it reports the whole stall
(`event_loop_unblocked`, with the real `blocked_seconds`).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

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
        # Recent stalls the thread saw: [start, end (None while it lasts), task, line].
        self._stalls: deque[list[Any]] = deque(maxlen=256)

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
        warned_for = 0.0  # the beat a stall was reported for (0: none open)
        task_name = where = None
        while not self._stop.wait(self._threshold / 2):
            beat = self._beat
            if warned_for and beat != warned_for:
                # The loop is back: report the whole stall, not the part seen first.
                log.warning(
                    "event_loop_unblocked",
                    blocked_seconds=round(max(0.0, beat - warned_for - self._tick), 3),
                    task=task_name,
                    journey=_journey_of(task_name),
                    at=where,
                )
                if self._stalls:
                    self._stalls[-1][1] = beat
                warned_for, task_name, where = 0.0, None, None
            stalled = time.monotonic() - beat
            if stalled < self._threshold + self._tick:
                continue
            # Sampled on each pass of the stall: the last journey line seen is the culprit.
            name, at = self._culprit()
            task_name, where = name or task_name, at or where
            if beat == warned_for:
                self._stalls[-1][2:] = [task_name, where]
                continue
            warned_for = beat
            self._stalls.append([beat, None, task_name, where])
            log.warning(
                "event_loop_blocked",
                blocked_seconds=round(stalled, 3),
                still_blocked=True,
                task=task_name,
                journey=_journey_of(task_name),
                at=where,
                hint="a journey is blocking the event loop: use 'await asyncio.sleep' "
                "and async clients instead of time.sleep or blocking I/O; run blocking "
                "code with 'await asyncio.to_thread(...)'",
            )

    def stolen_from(self, task: str | None, since: float, until: float) -> tuple[float, str | None]:
        """Seconds of [since, until] (monotonic) the loop spent blocked by a task other
        than `task`, and who blocked it longest ("blocker@shop at checkout.py:14").

        A run that timed out because a neighbour blocked the loop is a victim of
        synthmon's own situation, not evidence against its target (`execution`)."""
        stolen, longest, culprit = 0.0, 0.0, None
        for start, end, name, where in list(self._stalls):
            if name == task:
                continue
            overlap = min(until, end if end is not None else until) - max(since, start)
            if overlap > 0:
                stolen += overlap
                if overlap > longest:
                    longest = overlap
                    who = _journey_of(name) or name or "synthmon itself"
                    culprit = f"{who} at {where}" if where else who
        return stolen, culprit

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
