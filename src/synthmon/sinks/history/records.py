"""The values the history stores besides runs: slot outcomes and incidents."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from synthmon.model import RunResult, Status


class SlotOutcome(enum.StrEnum):
    """How one scheduled slot of a pair ended (docs/history.md)."""

    PASSED = "passed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    ERROR = "error"
    SKIPPED = "skipped"  # reason: overlap, paused, no_slot, shutdown
    MISSED = "missed"  # the daemon was down or its event loop stalled


def slot_outcome(result: RunResult) -> tuple[SlotOutcome, str | None]:
    """The outcome of a slot whose (final) run produced `result`."""
    if result.status is Status.SUCCESS:
        return SlotOutcome.PASSED, None
    if result.status is Status.FAILURE:
        return SlotOutcome.FAILED, None
    if result.status is Status.TIMEOUT:
        return SlotOutcome.TIMED_OUT, None
    if result.reason == "shutdown":
        return SlotOutcome.SKIPPED, "shutdown"
    if result.reason == "concurrency_limit":
        return SlotOutcome.SKIPPED, "no_slot"
    return SlotOutcome.ERROR, result.reason


@dataclass(frozen=True, slots=True)
class SlotRecord:
    """`count` consecutive slots of one pair, `slot_at` .. `last_slot_at`, one outcome."""

    journey: str
    target: str
    slot_at: float
    outcome: SlotOutcome
    reason: str | None = None
    run_id: str | None = None
    last_slot_at: float | None = None
    count: int = 1
    span: float = 0.0
    recorded_at: float = 0.0


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """An alert that fired: opened at `detected_at`, closed by setting `ended_at`."""

    alertname: str
    journey: str
    target: str
    incident: int
    severity: str
    started_at: float  # the incident's first failed attempt
    detected_at: float  # when the alert started firing
    ended_at: float | None = None
    failed_step: str | None = None
    first_error: str | None = None
    run_id: str | None = None


def is_counted(result: RunResult) -> bool:
    """Runs that count for availability: final attempts that said something about the
    target (infrastructure errors and retried attempts say nothing)."""
    return not result.retried and not result.is_infrastructure_error
