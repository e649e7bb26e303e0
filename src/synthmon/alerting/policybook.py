"""Which alert policy applies to a journey: severity defaults, then `[alerting.severity.X]`,
then `@journey(alert=...)`, then `[alerting.journeys.X]` (last one wins)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import structlog

from synthmon.alerting.policy import DEFAULTS, Policy, apply_override, auto_retry_delay
from synthmon.config.alerting import AlertingConfig, PolicyOverride, parse_override
from synthmon.config.durations import format_duration
from synthmon.journeys.dsl import Journey

log = structlog.get_logger("synthmon.alerting")

# (where, message) for an override that cannot apply.
OnInvalid = Callable[[str, str], None]


def effective_policy(
    journey: Journey, config: AlertingConfig, on_invalid: OnInvalid
) -> tuple[Policy, str | None]:
    """The journey's policy, with retry_delay resolved, and why its retries and
    re-checks were dropped (None when they were not)."""
    policy = DEFAULTS[journey.severity]
    levels: list[tuple[str, PolicyOverride | None]] = []
    sev = config.severity.get(journey.severity.value)
    levels.append((f"[alerting.severity.{journey.severity}]", sev))
    if journey.alert:
        where = f"{journey.where}: journey {journey.name!r}: alert="
        try:
            levels.append((where, parse_override(journey.alert, where)))
        except ValueError as exc:
            on_invalid(where, str(exc))
    levels.append((f"[alerting.journeys.{journey.name}]", config.journeys.get(journey.name)))
    for where, override in levels:
        if override is None:
            continue
        try:
            policy = apply_override(policy, override)
        except ValueError as exc:
            on_invalid(where, f"{where}: {exc}")
    if policy.retry_delay is None:
        policy = dataclasses.replace(policy, retry_delay=auto_retry_delay(journey.interval))
    why = retry_drop_reason(journey, policy)
    if why is not None:
        policy = dataclasses.replace(policy, retries=0, rechecks=0)
    return policy, why


def retry_drop_reason(journey: Journey, policy: Policy) -> str | None:
    """Why retries/re-checks cannot help this journey, or None. A retry or re-check
    that overruns the next slot replaces it (the executor never runs a pair twice at
    once), so only a delay as long as the interval is pointless: the next scheduled
    run would come first and confirm sooner."""
    interval, delay = journey.interval, policy.retry_delay
    if not (policy.retries or policy.rechecks) or not interval or delay is None:
        return None
    if delay >= interval:
        return (
            f"retry_delay ({format_duration(delay)}) is not shorter than the interval "
            f"({format_duration(interval)}): the next scheduled run confirms sooner; "
            "lower retry_delay or leave it unset (a tenth of the interval)"
        )
    return None


class PolicyBook:
    """The effective policy of each journey: severity defaults < [alerting.severity.X]
    < @journey(alert=...) < [alerting.journeys.NAME]. A bad override is logged once,
    naming the journey, and the defaults apply: it never stops the daemon. Dropped
    retries are logged once per (re)load, naming the journey and why."""

    def __init__(self, config: AlertingConfig) -> None:
        self._config = config
        self._cache: dict[str, tuple[Journey, Policy]] = {}

    def for_journey(self, journey: Journey) -> Policy:
        cached = self._cache.get(journey.name)
        if cached is not None and cached[0] is journey:
            return cached[1]

        def invalid(where: str, error: str) -> None:
            log.error("alert_policy_invalid", journey=journey.name, where=where, error=error)

        policy, dropped = effective_policy(journey, self._config, invalid)
        if dropped is not None:
            log.warning("retries_dropped", journey=journey.name, file=journey.where, reason=dropped)
        self._cache[journey.name] = (journey, policy)
        return policy


def retry_warnings(journeys: Sequence[Journey], config: AlertingConfig) -> list[str]:
    """`file:line: journey 'x': ...` for each journey that loses its retries and
    re-checks, for `synthmon check` (the daemon logs `retries_dropped`)."""
    out = []
    for j in journeys:
        _, why = effective_policy(j, config, lambda where, error: None)
        if why is not None:
            out.append(f"{j.where}: journey {j.name!r}: retries and re-checks dropped: {why}")
    return out


def policy_problems(journeys: Sequence[Journey], config: AlertingConfig) -> list[str]:
    """Problems with `@journey(alert=...)` overrides, as `file:line: message` lines, for
    `synthmon check` (the daemon logs them and uses the defaults instead)."""
    problems = []
    for j in journeys:
        if not j.alert:
            continue
        where = f"{j.where}: journey {j.name!r}: alert="
        base = DEFAULTS[j.severity]
        sev = config.severity.get(j.severity.value)
        try:
            if sev is not None:
                base = apply_override(base, sev)
            apply_override(base, parse_override(j.alert, where))
        except ValueError as exc:
            message = str(exc)
            problems.append(message if message.startswith(where) else f"{where} {message}")
    return problems
