"""Which alert policy applies to a journey: severity defaults, then `[alerting.severity.X]`,
then `@journey(alert=...)`, then `[alerting.journeys.X]` (last one wins)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import structlog

from synthmon.alerting.policy import DEFAULTS, Policy, apply_override
from synthmon.config.alerting import AlertingConfig, PolicyOverride, parse_override
from synthmon.journeys.dsl import Journey

log = structlog.get_logger("synthmon.alerting")


class PolicyBook:
    """The effective policy of each journey: severity defaults < [alerting.severity.X]
    < @journey(alert=...) < [alerting.journeys.NAME]. A bad override is logged once,
    naming the journey, and the defaults apply: it never stops the daemon. Retries are
    dropped (with rechecks) when retry_delay + timeout does not fit in the interval."""

    def __init__(self, config: AlertingConfig) -> None:
        self._config = config
        self._cache: dict[str, tuple[Journey, Policy]] = {}

    def for_journey(self, journey: Journey) -> Policy:
        cached = self._cache.get(journey.name)
        if cached is not None and cached[0] is journey:
            return cached[1]
        policy = DEFAULTS[journey.severity]
        sev = self._config.severity.get(journey.severity.value)
        if sev is not None:
            policy = self._apply(policy, sev, f"[alerting.severity.{journey.severity}]")
        if journey.alert:
            where = f"{journey.where}: journey {journey.name!r}: alert="
            try:
                override = parse_override(journey.alert, where)
            except ValueError as exc:
                log.error("alert_policy_invalid", journey=journey.name, error=str(exc))
            else:
                policy = self._apply(policy, override, where)
        cfg = self._config.journeys.get(journey.name)
        if cfg is not None:
            policy = self._apply(policy, cfg, f"[alerting.journeys.{journey.name}]")
        # A retry that cannot finish before the next scheduled run would only make that
        # run skip: then the next run is the confirmation.
        interval = journey.interval
        if policy.retries and interval and policy.retry_delay + journey.timeout > interval:
            policy = dataclasses.replace(policy, retries=0, rechecks=0)
        self._cache[journey.name] = (journey, policy)
        return policy

    @staticmethod
    def _apply(policy: Policy, override: PolicyOverride, where: str) -> Policy:
        try:
            return apply_override(policy, override)
        except ValueError as exc:
            log.error("alert_policy_invalid", where=where, error=f"{where}: {exc}")
            return policy


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
