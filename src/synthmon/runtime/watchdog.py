"""Watches the event loop: a journey that blocks it (time.sleep, CPU work) delays
every other run, so it is measured and named.

An in-loop task measures how late it wakes up (the metric). A thread notices a
loop that stopped answering while it is still stuck, and names the task and the
journey line that holds it (`event_loop_blocked`, at the threshold), which the loop
itself cannot do; when the loop answers again it reports the whole stall
(`event_loop_unblocked`, with the real `blocked_seconds`). A stall during which
several tasks held the loop in turn is reported per task, each with its own time.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import structlog

log = structlog.get_logger("synthmon.runtime.watchdog")


@dataclass(slots=True)
class _Segment:
    """Part of a stall during which one task held the loop (monotonic times)."""

    start: float
    late_from: float  # when the loop was due back: blocked_seconds counts from here
    task: str | None
    where: str | None  # the last journey line seen ("checkout.py:14")
    end: float | None = None  # None while it lasts
    warned: bool = False  # event_loop_blocked was logged for it


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
        # Recent stalls the thread saw, one segment per task that held the loop.
        self._stalls: deque[_Segment] = deque(maxlen=256)

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
        # The open stall's segments: one per task seen holding the loop, in order.
        open_beat = 0.0  # the beat the open stall started after (0: none open)
        seg: _Segment | None = None
        while not self._stop.wait(self._threshold / 2):
            beat = self._beat
            if seg is not None and beat != open_beat:
                # The loop is back: report the whole stall, not the part seen first.
                self._close(seg, beat)
                seg, open_beat = None, 0.0
            now = time.monotonic()
            if now - beat < self._threshold + self._tick:
                continue
            # Sampled on each pass of the stall: the last journey line seen is the culprit.
            name, at = self._culprit()
            if seg is None:
                # The loop was due back `tick` after its last beat: late from then on.
                open_beat = beat
                seg = self._open(beat, beat + self._tick, name, at)
            elif name is not None and seg.task is not None and name != seg.task:
                # Another task holds the loop now, so the one before let go: its part
                # is over. Without this split, whichever task ran last before the
                # monitor got its turn (a slow client set-up, a sink: common on a loaded
                # machine) took the blame for the whole stall, and two back-to-back
                # stalls were reported as one.
                self._close(seg, now)
                seg = self._open(now, now, name, at)
            else:
                seg.task, seg.where = seg.task or name, at or seg.where
            if not seg.warned and now - seg.late_from >= self._threshold:
                seg.warned = True
                log.warning(
                    "event_loop_blocked",
                    blocked_seconds=round(now - seg.late_from, 3),
                    still_blocked=True,
                    task=seg.task,
                    journey=_journey_of(seg.task),
                    at=seg.where,
                    hint="a journey is blocking the event loop: use 'await asyncio.sleep' "
                    "and async clients instead of time.sleep or blocking I/O; run blocking "
                    "code with 'await asyncio.to_thread(...)'",
                )
        if seg is not None:
            # Stopping runs on the loop, so it is back: a stall that ended just before
            # shutdown is still reported whole.
            self._close(seg, self._beat if self._beat != open_beat else time.monotonic())

    def _open(
        self, start: float, late_from: float, task: str | None, where: str | None
    ) -> _Segment:
        seg = _Segment(start=start, late_from=late_from, task=task, where=where)
        self._stalls.append(seg)
        return seg

    def _close(self, seg: _Segment, end: float) -> None:
        seg.end = end
        if seg.warned:
            log.warning(
                "event_loop_unblocked",
                blocked_seconds=round(max(0.0, end - seg.late_from), 3),
                task=seg.task,
                journey=_journey_of(seg.task),
                at=seg.where,
            )

    def stolen_from(self, task: str | None, since: float, until: float) -> tuple[float, str | None]:
        """Seconds of [since, until] (monotonic) the loop spent blocked by a task other
        than `task`, and who blocked it longest ("blocker@shop at checkout.py:14").

        A run that timed out because a neighbour blocked the loop is a victim of
        synthmon's own situation, not evidence against its target (`execution`)."""
        stolen, longest, culprit = 0.0, 0.0, None
        for seg in list(self._stalls):
            if seg.task == task:
                continue
            end = seg.end if seg.end is not None else until
            overlap = min(until, end) - max(since, seg.start)
            if overlap > 0:
                stolen += overlap
                if overlap > longest:
                    longest = overlap
                    who = _journey_of(seg.task) or seg.task or "synthmon itself"
                    culprit = f"{who} at {seg.where}" if seg.where else who
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
