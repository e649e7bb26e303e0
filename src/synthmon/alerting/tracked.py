"""`Tracked`: one alert's policy state plus what was notified about it, as the engine
keeps it in memory and persists it (JSON in the alert store)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from synthmon.alerting.alert import AlertName
from synthmon.alerting.policy import PairState


@dataclass(slots=True)
class Tracked:
    """One alert's policy state plus what was notified about it (persisted as JSON)."""

    alertname: AlertName
    journey: str
    target: str
    policy: PairState = field(default_factory=PairState)
    notified: bool = False  # the current incident was announced
    reminded_at: float = 0.0
    am_sent_at: float = 0.0
    resolved_at: float | None = None
    routes: list[str] = field(default_factory=list)
    last: dict[str, Any] | None = None  # the last Alert sent or due (JSON)
    # The resolve Alertmanager was told (JSON), re-sent for resolve_resend_for. Kept
    # apart from `last`, which the next failed run overwrites: re-sending that one
    # would post a trigger for an alert the engine never fired.
    am_resolve: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        # By hand, not dataclasses.asdict: the engine writes every pair's state each
        # tick (steady passes), and asdict's deep copy made that ~50 us a pair: 130 ms
        # of stalled event loop per tick at 1,500 pairs (docs/benchmarks.md). `last` and
        # `am_resolve` are JSON documents that are replaced, never edited in place, so
        # they are shared, not copied.
        data = {name: getattr(self, name) for name in _FIELDS}
        data["alertname"] = self.alertname.value
        data["policy"] = self.policy.to_json()
        data["routes"] = list(self.routes)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Tracked:
        kw = dict(data)
        kw["alertname"] = AlertName(kw["alertname"])
        kw["policy"] = PairState.from_json(kw["policy"])
        return cls(**kw)


_FIELDS = tuple(f.name for f in dataclasses.fields(Tracked))
