"""`PairJobs`: what the scheduler runs for each (journey, target) pair, and the slot
bookkeeping that makes every slot end in exactly one recorded outcome
(docs/history.md): served by a run (its result), skipped (paused, overlap, recheck,
shutdown, no run slot) or missed (the daemon was down or the loop stalled).

The scheduler knows keys and callables; the daemon knows journeys and runs. This sits
between: it turns a key's slot into a pause check and a run, and the scheduler's
reports (overlap, coalesced, missed, start lag) into metrics, log lines and slot
records. Everything it needs is passed in as a callable, so it imports nothing above
its layer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

import structlog

from synthmon.journeys.dsl import Journey
from synthmon.model import RunResult, Target
from synthmon.scheduling.scheduler import JobFunc, current_slot
from synthmon.scheduling.slots import SlotLedger
from synthmon.sinks.history.records import SlotOutcome, SlotRecord, slot_outcome

log = structlog.get_logger("synthmon.scheduling")

Pair = tuple[Journey, Target]


class SkipEvents(Protocol):
    """Where skipped runs and start lags are counted (the daemon's metrics)."""

    def skipped_run(self, journey: str, target: str, reason: str, n: int = 1) -> None: ...

    def observe_lag(self, seconds: float) -> None: ...


class PairJobs:
    def __init__(
        self,
        *,
        pairs: Callable[[], Mapping[str, Pair]],
        run: Callable[[Journey, Target, float | None], Awaitable[RunResult]],
        is_paused: Callable[[Journey, str], bool],
        accepting: Callable[[], bool],
        in_chain: Callable[[str], bool],
        events: SkipEvents,
        ledger: SlotLedger,
        record_slot: Callable[[SlotRecord], None] | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pairs = pairs
        self._run = run
        self._is_paused = is_paused
        self._accepting = accepting
        self._in_chain = in_chain
        self._events = events
        self.ledger = ledger
        # None: history is off, no slot is recorded (the ledger still tracks).
        self._record_slot = record_slot
        self._clock = clock
        self.started_at = 0.0

    def job(self, key: str) -> JobFunc:
        """The scheduled job of pair `key`; it looks its pair up when it fires, so a
        changed journey or target needs no new job (and keeps the pair's phase)."""

        async def job() -> None:
            pair = self._pairs().get(key)
            if pair is None:
                return
            journey, target = pair
            slot = current_slot.get()
            if slot is not None:
                self.claim(key, journey.name, target.name, slot)
            if self._is_paused(journey, target.name):
                self._events.skipped_run(journey.name, target.name, "paused")
                self.record(journey.name, target.name, slot, SlotOutcome.SKIPPED, "paused")
            elif self._accepting():
                try:
                    result = await self._run(journey, target, slot)
                except asyncio.CancelledError:
                    self.record(journey.name, target.name, slot, SlotOutcome.SKIPPED, "shutdown")
                    raise
                outcome, reason = slot_outcome(result)
                self.record(journey.name, target.name, slot, outcome, reason, result.run_id)
            else:
                self.record(journey.name, target.name, slot, SlotOutcome.SKIPPED, "shutdown")

        return job

    # -- slots -------------------------------------------------------------------------

    def record(
        self,
        journey: str,
        target: str,
        slot: float | None,
        outcome: SlotOutcome,
        reason: str | None = None,
        run_id: str | None = None,
    ) -> None:
        """Record the one outcome of slot `slot` of a pair."""
        if self._record_slot is None or slot is None:
            return
        self._record_slot(
            SlotRecord(
                journey, target, round(slot, 3), outcome, reason, run_id, recorded_at=self._clock()
            )
        )

    def claim(self, key: str, journey: str, target: str, slot: float) -> None:
        """Slot `slot` is served now; the slots skipped over before it were missed."""
        gap = self.ledger.claim(key, slot)
        if gap is None or self._record_slot is None:
            return
        why = "daemon_down" if gap.first < self.started_at else "stalled"
        log.warning("slots_missed", journey=journey, target=target, slots=gap.count, why=why)
        self._record_slot(
            SlotRecord(
                journey,
                target,
                gap.first,
                SlotOutcome.MISSED,
                why,
                None,
                last_slot_at=gap.last,
                count=gap.count,
                span=gap.span,
                recorded_at=self._clock(),
            )
        )

    # -- scheduler callbacks -----------------------------------------------------------

    def on_slot_skipped(self, key: str, slot: float, reason: str) -> None:
        pair = self._pairs().get(key)
        if pair is None:
            return
        if reason == "overlap" and self._in_chain(key):
            reason = "recheck"  # taken over by the pair's own retry/re-check
        self.claim(key, pair[0].name, pair[1].name, slot)
        self.record(pair[0].name, pair[1].name, slot, SlotOutcome.SKIPPED, reason)

    def on_skip(self, key: str, reason: str, n: int) -> None:
        pair = self._pairs().get(key)
        if pair is None:
            return
        journey, target = pair
        if reason == "overlap" and self._in_chain(key):
            # The slot is taken by the pair's own retry/re-check: not a lost run.
            log.debug("slot_replaced_by_recheck", journey=journey.name, target=target.name)
            return
        self._events.skipped_run(journey.name, target.name, reason, n)
        log.warning("run_skipped", journey=journey.name, target=target.name, reason=reason, runs=n)

    def on_start(self, key: str, lag: float) -> None:
        self._events.observe_lag(lag)
