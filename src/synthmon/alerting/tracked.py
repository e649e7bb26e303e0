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
        data = dataclasses.asdict(self)
        data["alertname"] = self.alertname.value
        data["policy"] = self.policy.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Tracked:
        kw = dict(data)
        kw["alertname"] = AlertName(kw["alertname"])
        kw["policy"] = PairState.from_json(kw["policy"])
        return cls(**kw)
