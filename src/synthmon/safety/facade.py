"""Production safety, assembled for the daemon: synthetic accounts, secret scrubbing,
the kill switch and per-target rate limits.

The daemon holds one `Safety` and calls into it at a few points (see docs/safety.md):
`lease()` around each run, `is_paused()` in each scheduled job, `scrub.result()`
before results reach the sinks, `refresh()` after (re)loading journeys, and
the pause API's `pause()`/`resume()`/`pauses()` (served by `web.control`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, Protocol

import structlog

from synthmon.config.secrets import secret_values
from synthmon.config.settings import Settings
from synthmon.errors import BadSelectorError
from synthmon.journeys.dsl import Journey
from synthmon.model import Target
from synthmon.safety.accounts import AccountPools
from synthmon.safety.pauses import PauseControls
from synthmon.safety.ratelimit import RateLimits
from synthmon.safety.scrub import Scrubber

log = structlog.get_logger("synthmon.safety.facade")

PAUSE_FILE = "pauses.json"

# (journey, target name) pairs the daemon schedules right now.
PairSource = Callable[[], Iterable[tuple[Journey, Target]]]


class SafetyEvents(Protocol):
    """Where safety reports what the metrics show (`sinks.safety_metrics.SafetyMetrics`)."""

    def set_paused(self, pairs: Iterable[tuple[str, str, bool]]) -> None: ...

    def set_pool(self, pool: str, size: int, in_use: int) -> None: ...


def scrubber_for(settings: Settings) -> Scrubber:
    """Scrubs every secret value loaded anywhere in `settings`, and the basic auth
    header of every account."""
    pairs = [(a.username, a.password.get_secret_value()) for a in settings.accounts]
    return Scrubber(secret_values(settings), basic_auth=pairs)


class Safety:
    def __init__(
        self,
        settings: Settings,
        *,
        events: SafetyEvents,
        pairs: PairSource,
    ) -> None:
        self.settings = settings
        self.scrub = scrubber_for(settings)
        self.accounts = AccountPools.from_config(settings.accounts)
        self.controls = PauseControls(settings.data_dir / PAUSE_FILE)
        self.rate_limits = RateLimits(settings.target_list())
        self.metrics = events
        self._pairs = pairs
        for pool in self.accounts.pools():
            self.metrics.set_pool(pool, self.accounts.size(pool), 0)

    def load(self) -> None:
        """Read persisted pause rules (ConfigError if the file is corrupt)."""
        self.controls.load()
        if self.controls.rules:
            log.warning("pause_rules_active", rules=[r.describe() for r in self.controls.rules])

    # -- accounts ----------------------------------------------------------------

    @asynccontextmanager
    async def lease(
        self, journey: Journey, target: Target
    ) -> AsyncIterator[tuple[Any, tuple[tuple[str, str], ...]]]:
        """(account, extra headers) for this run: an account leased for its duration
        and the pool's tag header when the journey asks for one, else (None, ()).
        Raises NoAccountError when no account of the pool frees up in time."""
        if journey.account is None:
            yield None, ()
            return
        pool = journey.account
        wait = min(self.settings.synthetic.account_wait, journey.timeout)
        async with self.accounts.lease(pool, target.name, wait=wait) as account:
            self._pool_metrics(pool)
            try:
                yield account, ((self.settings.synthetic.account_header, pool),)
            finally:
                self._pool_metrics(pool, returning=1)

    def _pool_metrics(self, pool: str, returning: int = 0) -> None:
        in_use = self.accounts.in_use(pool) - returning
        self.metrics.set_pool(pool, self.accounts.size(pool), in_use)

    # -- kill switch ---------------------------------------------------------------

    def is_paused(self, journey: Journey, target: str) -> bool:
        return self.controls.is_paused(journey.name, journey.tags, target)

    def refresh(self) -> None:
        """Re-derive `synthmon_journey_paused` for every scheduled pair."""
        self.metrics.set_paused(
            (j.name, t.name, self.is_paused(j, t.name)) for j, t in self._pairs()
        )

    def _check_selector(self, selector: dict[str, str | None]) -> None:
        pairs = list(self._pairs())
        known = {
            "journey": {j.name for j, _ in pairs},
            "tag": {tag for j, _ in pairs for tag in j.tags},
            "target": {t.name for _, t in pairs} | set(self.settings.targets),
        }
        for key, value in selector.items():
            if value is not None and value not in known[key]:
                raise BadSelectorError(f"no {key} named {value!r}; known: {sorted(known[key])}")

    def _matching(self, selector: dict[str, str | None]) -> list[dict[str, str]]:
        rule_pairs = []
        for j, t in self._pairs():
            if (
                (selector.get("journey") in (None, j.name))
                and (selector.get("tag") is None or selector["tag"] in j.tags)
                and (selector.get("target") in (None, t.name))
            ):
                rule_pairs.append({"journey": j.name, "target": t.name})
        return rule_pairs

    def pause(self, selector: dict[str, str | None], reason: str) -> dict[str, Any]:
        self._check_selector(selector)
        # The reason is free text persisted to disk and served by /api: scrub it first.
        rule = self.controls.pause(**selector, reason=self.scrub(reason))
        self.refresh()
        return {"paused": rule.as_json(), "pairs": self._matching(selector)}

    def resume(self, selector: dict[str, str | None], everything: bool) -> dict[str, Any]:
        removed = self.controls.resume(**selector, everything=everything)
        self.refresh()
        still = []
        for j, t in self._pairs():
            rule = self.controls.paused_by(j.name, j.tags, t.name)
            if rule is not None:
                still.append({"journey": j.name, "target": t.name, "paused_by": rule.describe()})
        return {"resumed": [r.as_json() for r in removed], "still_paused": still}

    def pauses(self) -> dict[str, Any]:
        return {"rules": [r.as_json() for r in self.controls.rules]}
