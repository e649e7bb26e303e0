"""The alert policy: a pure state machine per (alert name, journey, target).

    ok ──fail──▶ pending ──trigger met──▶ firing ──resolve_passes passes──▶ ok
     ▲              │                                                      (resolved)
     └──pass────────┘ (never notified)

No I/O and no clock of its own: `advance(state, outcome, now, policy)` returns the new
state and the transition ("firing", "resolved" or None). The engine persists states
and turns transitions into notifications.

Outcomes are what one *final* run said about the thing the alert watches: FAIL, PASS
or SKIP (says nothing: an infrastructure error for the journey-failed alert, say).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from synthmon.config.alerting import PolicyOverride
from synthmon.model import Severity


class Outcome(enum.StrEnum):
    FAIL = "fail"
    PASS = "pass"  # noqa: S105 - an outcome, not a password
    SKIP = "skip"


class AlertState(enum.StrEnum):
    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"


class Transition(enum.StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Policy:
    """When an alert fires and resolves.

    Fires when the last `consecutive` final runs all failed, or when `failures` of the
    last `window` runs failed (0 disables either trigger). Resolves after
    `resolve_passes` passes in a row. `notify=False` (info) still tracks state.
    """

    consecutive: int = 2
    failures: int = 0
    window: int = 0
    resolve_passes: int = 2
    notify: bool = True
    # Retry-before-counting: a failed attempt is re-run this many times after
    # `retry_delay` seconds before the run counts. None: a tenth of the journey's
    # interval, at most 5 s (`auto_retry_delay`): a fixed 5 s made a 10 s journey as
    # slow to confirm an outage as waiting for its next run.
    retries: int = 0
    retry_delay: float | None = None
    # Fast confirmation: after a failed (final) run, run again after `retry_delay`
    # instead of waiting for the next scheduled run, this many times; a re-check
    # counts at once (it is not retried). Detects an outage in about one interval
    # less than waiting for scheduled runs, without counting one blip.
    rechecks: int = 0
    # Over-budget passes (`degraded_after`) raise a warning alert with the same
    # trigger counts.
    alert_on_degraded: bool = True

    @property
    def history_size(self) -> int:
        return max(self.consecutive, self.window, 1)


DEFAULTS: Mapping[Severity, Policy] = {
    Severity.CRITICAL: Policy(consecutive=2, resolve_passes=2, retries=1, rechecks=1),
    Severity.WARNING: Policy(consecutive=3, failures=3, window=5, resolve_passes=2),
    Severity.INFO: Policy(consecutive=3, resolve_passes=2, notify=False, alert_on_degraded=False),
}
# synthmon's own problems (no browser, no account): worth a warning, never a page.
INTERNAL_ERROR_POLICY = Policy(consecutive=3, failures=3, window=5, resolve_passes=2)


MAX_AUTO_RETRY_DELAY = 5.0


def auto_retry_delay(interval: float | None) -> float:
    """The default retry/re-check delay: a tenth of the interval, at most 5 s (5 s for
    cron journeys). Scaled so that confirming an outage (two delays) takes a fifth of
    an interval at any interval, well inside the half interval it saves."""
    if not interval:
        return MAX_AUTO_RETRY_DELAY
    return min(MAX_AUTO_RETRY_DELAY, interval / 10)


def apply_override(base: Policy, override: PolicyOverride) -> Policy:
    """`base` with the keys `override` sets; ValueError when the result could never fire."""
    changes = {k: v for k, v in override.model_dump().items() if v is not None}
    new = dataclasses.replace(base, **changes)
    if new.failures and new.window < new.failures:
        raise ValueError(f"window ({new.window}) must be >= failures ({new.failures})")
    if not new.consecutive and not new.failures:
        raise ValueError("consecutive and failures are both 0: the alert could never fire")
    return new


@dataclass(frozen=True, slots=True)
class PairState:
    """What the policy remembers about one alert. Persisted as JSON by the engine."""

    state: AlertState = AlertState.OK
    # Last outcomes, newest last, "F"/"P", at most policy.history_size long.
    history: str = ""
    consecutive_passes: int = 0
    failed_runs: int = 0  # failures since the incident's first failure
    first_failure_at: float | None = None
    last_success_at: float | None = None
    fired_at: float | None = None
    # Bumped on every firing transition: (key, incident) identifies one incident.
    incident: int = 0

    def to_json(self) -> dict[str, Any]:
        # Flat fields only: no deep copy needed (dataclasses.asdict is 10x slower).
        data = {name: getattr(self, name) for name in _STATE_FIELDS}
        data["state"] = self.state.value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PairState:
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in data.items() if k in fields}
        kw["state"] = AlertState(kw.get("state", "ok"))
        return cls(**kw)


_STATE_FIELDS = tuple(f.name for f in dataclasses.fields(PairState))


def advance(
    state: PairState, outcome: Outcome, now: float, policy: Policy
) -> tuple[PairState, Transition | None]:
    """Feed one final outcome into `state`."""
    if outcome is Outcome.SKIP:
        return state, None
    history = (state.history + ("F" if outcome is Outcome.FAIL else "P"))[-policy.history_size :]
    if outcome is Outcome.PASS:
        passes = state.consecutive_passes + 1
        if state.state is AlertState.FIRING:
            if passes >= policy.resolve_passes:
                # A resolve starts afresh: failures of the incident just closed must
                # not count towards the next one (3 of 5 would otherwise fire again
                # on the first failed run after a recovery: a page for one blip).
                return (
                    PairState(
                        history="",
                        consecutive_passes=passes,
                        last_success_at=now,
                        incident=state.incident,
                    ),
                    Transition.RESOLVED,
                )
            return (
                dataclasses.replace(
                    state, history=history, consecutive_passes=passes, last_success_at=now
                ),
                None,
            )
        # An N-of-M window may still hold failures: stay pending until it empties.
        pending = policy.failures > 0 and "F" in history[-policy.window :]
        return (
            dataclasses.replace(
                state,
                state=AlertState.PENDING if pending else AlertState.OK,
                history=history,
                consecutive_passes=passes,
                last_success_at=now,
                failed_runs=state.failed_runs if pending else 0,
                first_failure_at=state.first_failure_at if pending else None,
            ),
            None,
        )
    failed_runs = state.failed_runs + 1
    first = state.first_failure_at if state.first_failure_at is not None else now
    if state.state is AlertState.FIRING:
        return (
            dataclasses.replace(
                state, history=history, consecutive_passes=0, failed_runs=failed_runs
            ),
            None,
        )
    if _triggered(history, policy):
        return (
            dataclasses.replace(
                state,
                state=AlertState.FIRING,
                history=history,
                consecutive_passes=0,
                failed_runs=failed_runs,
                first_failure_at=first,
                fired_at=now,
                incident=state.incident + 1,
            ),
            Transition.FIRING,
        )
    return (
        dataclasses.replace(
            state,
            state=AlertState.PENDING,
            history=history,
            consecutive_passes=0,
            failed_runs=failed_runs,
            first_failure_at=first,
        ),
        None,
    )


def _triggered(history: str, policy: Policy) -> bool:
    n = policy.consecutive
    if n and len(history) >= n and history[-n:] == "F" * n:
        return True
    if policy.failures and policy.window:
        return history[-policy.window :].count("F") >= policy.failures
    return False
