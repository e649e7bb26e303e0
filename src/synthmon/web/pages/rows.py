"""One row per (journey, target) pair, read from the daemon's parts in memory: the
state word, the last run, the current incident's start, the statistics and the
overview (sparkline points, uptime days) the history keeps. Nothing here touches the
database, so building all rows for `/` costs microseconds per pair.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from synthmon.alerting.alert import AlertName
from synthmon.alerting.policy import AlertState
from synthmon.model import Severity
from synthmon.sinks.history.overview import RECENT_SECONDS, DayCell, Point
from synthmon.web.status import DaemonState, _state

if TYPE_CHECKING:
    from synthmon.journeys.dsl import Journey
    from synthmon.model import RunResult, Target, TlsChain
    from synthmon.sinks.history.stats import WindowStats

# Failing first, then degraded, then the rest; paused and never-run last.
RANK = {"failing": 0, "degraded": 1, "passing": 2, "never_run": 3, "paused": 4}
SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}
FILTERS = ("tag", "target", "severity", "state")
STATES = ("failing", "degraded", "passing", "silenced", "paused", "never_run")


@dataclass(frozen=True, slots=True)
class Row:
    journey: Journey
    target: Target
    state: str  # the word shown: passing/degraded/failing/paused/silenced/never_run
    health: str  # the state underneath a silence, for ordering and the state filter
    silenced_by: str | None
    last: RunResult | None
    last_failure: RunResult | None  # the newest failed run, when failing or degraded
    since: float | None  # the current incident's first failed attempt
    fired_at: float | None
    stats: Mapping[str, WindowStats] = field(default_factory=dict)
    points: list[Point] = field(default_factory=list)
    days: list[DayCell] = field(default_factory=list)
    # What the pair's HTTPS hosts last presented; None on public pages (not shown).
    certs: tuple[TlsChain, ...] | None = None

    @property
    def key(self) -> tuple[int, int, str, str]:
        return (
            RANK.get(self.health, 5),
            SEVERITY_RANK.get(self.journey.severity, 3),
            self.journey.name,
            self.target.name,
        )


def visible(journey: Journey, public: bool, public_tag: str) -> bool:
    """Whether a journey shows at all (public mode: only those tagged for it)."""
    return not public or public_tag in journey.tags


Silenced = Callable[[str, str, Sequence[str]], str | None]


def silence_check(d: DaemonState, now: float) -> Silenced | None:
    silences = d.alerting.silences
    return silences.at(now) if silences is not None else None


def build_row(
    d: DaemonState,
    journey: Journey,
    target: Target,
    now: float,
    silenced: Silenced | None = None,
) -> Row:
    """The pair's row; `silenced`: a `silence_check` shared by many rows (else one is
    made here)."""
    pair = d.latest.get(journey.name, target.name)
    failed = d.alerting.state(AlertName.FAILED, journey.name, target.name)
    degraded = d.alerting.state(AlertName.DEGRADED, journey.name, target.name)
    alert = failed.policy.state if failed is not None else AlertState.OK
    paused = d.safety.is_paused(journey, target.name)
    runs = pair.runs if pair is not None else 0
    health = _state(
        paused=paused,
        runs=runs,
        alert=alert,
        degraded=degraded is not None and degraded.policy.state is AlertState.FIRING,
    )
    silenced_by = None
    check = silenced or silence_check(d, now)
    if not paused and check is not None:
        silenced_by = check(journey.name, target.name, journey.tags)
    last = pair.last if pair is not None else None
    last_failure = last if last is not None and not last.ok and health != "passing" else None
    since = failed.policy.first_failure_at if failed is not None else None
    fired = failed.policy.fired_at if failed is not None and alert is AlertState.FIRING else None
    history = d.history
    return Row(
        journey=journey,
        target=target,
        state="silenced" if silenced_by else health,
        health=health,
        silenced_by=silenced_by,
        last=last,
        last_failure=last_failure,
        since=since if alert is not AlertState.OK else None,
        fired_at=fired,
        stats=(history.stats(journey.name, target.name) or {}) if history else {},
        points=history.overview.recent_runs(journey.name, target.name, now - RECENT_SECONDS)
        if history
        else [],
        days=history.overview.days(journey.name, target.name) if history else [],
        # Host names and issuers are the target's internals: not for a public page.
        certs=None if d.settings.status_page.public else d.tls.chains(journey.name, target.name),
    )


@dataclass(frozen=True, slots=True)
class Selection:
    """The rows a page shows, the filters applied and the values each filter offers."""

    rows: list[Row]
    filters: dict[str, str]
    options: dict[str, list[str]]
    total: int


def select(d: DaemonState, filters: Mapping[str, str], now: float | None = None) -> Selection:
    now = time.time() if now is None else now
    cfg = d.settings.status_page
    chosen = {k: filters[k] for k in FILTERS if filters.get(k)}
    pairs = [(j, t) for j, t in d.pairs.values() if visible(j, cfg.public, cfg.public_tag)]
    options = {
        "tag": sorted({tag for j, _ in pairs for tag in j.tags}),
        "target": sorted({t.name for _, t in pairs}),
        "severity": [s.value for s in SEVERITY_RANK],
        "state": list(STATES),
    }
    rows = []
    silenced = silence_check(d, now)
    for j, t in pairs:
        if "tag" in chosen and chosen["tag"] not in j.tags:
            continue
        if "target" in chosen and chosen["target"] != t.name:
            continue
        if "severity" in chosen and chosen["severity"] != j.severity.value:
            continue
        row = build_row(d, j, t, now, silenced)
        if "state" in chosen and chosen["state"] not in (row.state, row.health):
            continue
        rows.append(row)
    rows.sort(key=lambda r: r.key)
    return Selection(rows, chosen, options, len(pairs))
