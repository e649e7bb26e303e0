"""Maintenance windows (config) and silences (CLI/API, persisted): while one matches,
runs go on and states are tracked but no notification is sent.

A resolve is always delivered, silenced or not: it closes an incident that was already
announced, and holding it back would leave a page open forever.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from synthmon.alerting.store import AlertStore
from synthmon.config.alerting import MaintenanceWindow
from synthmon.config.cron import next_fire
from synthmon.model import Selector


def window_active(window: MaintenanceWindow, now: float) -> bool:
    at = datetime.fromtimestamp(now, UTC)
    if window.cron is not None:
        assert window.duration is not None
        # Active when the cron fired within the last `duration`.
        since = at - timedelta(seconds=window.duration)
        fire = next_fire(window.cron, since)
        return fire is not None and since <= fire <= at
    assert window.start is not None
    assert window.end is not None
    start = window.start if window.start.tzinfo else window.start.replace(tzinfo=UTC)
    end = window.end if window.end.tzinfo else window.end.replace(tzinfo=UTC)
    return start <= at < end


def _window_matches(w: MaintenanceWindow, journey: str, target: str, tags: Sequence[str]) -> bool:
    return Selector(
        frozenset(w.journeys or ()), frozenset(w.targets or ()), frozenset(w.tags or ())
    ).matches(journey, target, tags)


def silence_matches(
    matchers: Mapping[str, str], journey: str, target: str, tags: Sequence[str]
) -> bool:
    return Selector.of(
        journey=matchers.get("journey"), target=matchers.get("target"), tag=matchers.get("tag")
    ).matches(journey, target, tags)


class Silences:
    def __init__(self, windows: Sequence[MaintenanceWindow], store: AlertStore) -> None:
        self._windows = list(windows)
        self._store = store

    def silenced(self, journey: str, target: str, tags: Sequence[str], now: float) -> str | None:
        """Why notifications for this pair are held back now, or None."""
        return self.at(now)(journey, target, tags)

    def at(self, now: float) -> Callable[[str, str, Sequence[str]], str | None]:
        """`silenced` at one instant for many pairs (the status page asks for 500):
        the stored silences are read once, not once per pair."""
        windows = [(i, w) for i, w in enumerate(self._windows) if window_active(w, now)]
        stored = [s for s in self._store.silences(now) if s["starts_at"] <= now]

        def check(journey: str, target: str, tags: Sequence[str]) -> str | None:
            for i, w in windows:
                if _window_matches(w, journey, target, tags):
                    return f"maintenance window {i}" + (f" ({w.comment})" if w.comment else "")
            for s in stored:
                if silence_matches(s["matchers"], journey, target, tags):
                    return f"silence {s['id']}" + (f" ({s['comment']})" if s["comment"] else "")
            return None

        return check
