"""Cron expressions: the one place that touches APScheduler's `CronTrigger`.

Journeys (`@journey(cron=...)`), maintenance windows and the scheduler all go through
here, so a crontab means the same thing everywhere and APScheduler's API is wrapped
once. It sits in `config/` rather than `scheduling/` because the journey DSL and the
config models validate expressions at load time (so `synthmon check` reports them at
the right line), and those layers must not import the scheduler.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from apscheduler.triggers.cron import CronTrigger

FIELDS_HINT = "5 fields: minute hour day month day-of-week"


def cron_trigger(expr: str, timezone: tzinfo | str = "UTC") -> Any:
    """An APScheduler trigger for a crontab expression. Raises ValueError saying why."""
    try:
        return CronTrigger.from_crontab(expr, timezone=timezone)
    except ValueError as exc:
        raise ValueError(f"cron={expr!r}: {exc} ({FIELDS_HINT})") from None


def validate_cron(expr: str) -> None:
    """Raise ValueError naming the expression when it is not a valid crontab."""
    cron_trigger(expr)


def next_fire(expr: str, after: datetime) -> datetime | None:
    """The first time at or after `after` that `expr` fires (timezone of `after`)."""
    trigger = cron_trigger(expr, timezone=after.tzinfo or "UTC")
    fire = trigger.get_next_fire_time(None, after)
    return fire if isinstance(fire, datetime) else None
