"""The alerting sink: RunResults in, notifications (via the outbox) out.

For every (journey, target) it tracks three alerts with the pure policy
(`policy.advance`): SyntheticJourneyFailed (journey severity), SyntheticJourneyDegraded
(warning, passes over the latency budget or the Web Vitals thresholds: degraded.py)
and SynthmonInternalError (warning, infrastructure errors that must not page as an
outage). Attempts followed by a retry (`RunResult.retried`)
are not counted. States are persisted, so a restart during an incident neither pages
again nor forgets to resolve.

A background tick re-sends firing alerts to Alertmanager (so they never expire there),
keeps sending resolves for a while, sends reminders to direct notifiers every
`repeat_interval`, announces alerts whose silence ended and posts the heartbeat.

Invariants (tests/alerting/test_properties.py checks them on random histories):
Alertmanager holds exactly the alerts that fire *and* were announced; every trigger
gets exactly one resolve; a silenced or paused pair gets no trigger and no reminder.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import httpx
import structlog
from prometheus_client import CollectorRegistry

from synthmon.alerting import degraded
from synthmon.alerting.alert import Alert, AlertName, Event
from synthmon.alerting.metrics import AlertMetrics
from synthmon.alerting.notifiers import Notifier
from synthmon.alerting.notifiers.alertmanager import AlertmanagerNotifier
from synthmon.alerting.notifiers.log import LogNotifier
from synthmon.alerting.notifiers.pagerduty import PagerDutyNotifier
from synthmon.alerting.notifiers.slack import SlackNotifier
from synthmon.alerting.notifiers.webhook import WebhookNotifier
from synthmon.alerting.outbox import Outbox
from synthmon.alerting.persist import DiskHealth, GuardedStore
from synthmon.alerting.policy import (
    INTERNAL_ERROR_POLICY,
    AlertState,
    Outcome,
    Policy,
    Transition,
    advance,
)
from synthmon.alerting.policybook import PolicyBook
from synthmon.alerting.render import AlertRenderer
from synthmon.alerting.silences import Silences
from synthmon.alerting.store import AlertStore
from synthmon.alerting.tracked import Tracked
from synthmon.config.alerting import AlertingConfig
from synthmon.journeys.dsl import Journey
from synthmon.model import RunResult, Verdict
from synthmon.sinks.pairstate import PairStore

# Steady-pass states written per slice of the event loop (~250 x 20 us).
FLUSH_CHUNK = 250

log = structlog.get_logger("synthmon.alerting")

DB_NAME = "alerting.sqlite3"
VERDICT_OUTCOME = {
    Verdict.PASS: Outcome.PASS,
    Verdict.FAIL: Outcome.FAIL,
    Verdict.NONE: Outcome.SKIP,
}


class IncidentListener(Protocol):
    """Told of every firing and resolved transition (the history's incidents)."""

    def alert_transition(self, alert: Alert) -> None: ...


class _NoIncidents:
    def alert_transition(self, alert: Alert) -> None:
        pass


class AlertEngine:
    def __init__(
        self,
        config: AlertingConfig,
        *,
        data_dir: Any,
        registry: CollectorRegistry,
        journeys: Callable[[str], Journey | None],
        is_paused: Callable[[Journey, str], bool],
        location: str | None = None,
        external_url: str | None = None,
        clock: Callable[[], float] = time.time,
        notifiers: Mapping[str, Notifier] | None = None,
        pair_metrics: PairStore | None = None,
        incidents: IncidentListener | None = None,
        trace_url: Callable[[str | None], str | None] = lambda trace_id: None,
    ) -> None:
        self.config = config
        self._incidents: IncidentListener = incidents or _NoIncidents()
        self.metrics = AlertMetrics(registry, location=location, pairs=pair_metrics)
        # Whether the database takes writes; delivery never waits on it (persist.py).
        self.disk = DiskHealth(registry, location=location)
        self.policies = PolicyBook(config)
        self._data_dir = data_dir
        self._journeys = journeys
        # The kill switch (`Safety.is_paused`): a paused pair notifies nobody.
        self._is_paused = is_paused
        # key -> when the first failed attempt of a not-yet-counted failure ended:
        # retried attempts are not counted, but the incident starts there.
        self._first_attempt: dict[str, float] = {}
        # What an alert says: summary, status page and artifact links (render.py).
        self._render = AlertRenderer(
            location=location, external_url=external_url, trace_url=trace_url
        )
        self._clock = clock
        self._extra_notifiers = dict(notifiers or {})
        self._log = LogNotifier()
        self._tracked: dict[str, Tracked] = {}
        self._dirty: set[str] = set()
        self._store: GuardedStore | None = None
        self._client: httpx.AsyncClient | None = None
        self.outbox: Outbox | None = None
        self.silences: Silences | None = None
        self._tick_task: asyncio.Task[None] | None = None
        self._heartbeat_at = 0.0

    # -- lifecycle -------------------------------------------------------------------

    def open(self) -> None:
        """Open the database and build the notifiers (outbox not yet delivering)."""
        from pathlib import Path

        self._store = GuardedStore(Path(self._data_dir) / DB_NAME, self.disk)
        self._client = httpx.AsyncClient(timeout=self.config.send_timeout)
        notifiers = {**self._build_notifiers(self._client), **self._extra_notifiers}
        self.outbox = Outbox(
            self._store,
            notifiers,
            self.metrics,
            base_delay=self.config.retry_base_delay,
            max_delay=self.config.retry_max_delay,
            send_timeout=self.config.send_timeout,
            clock=self._clock,
        )
        self.silences = Silences(self.config.maintenance, self._store)
        for key, data in self._store.load_states().items():
            try:
                self._tracked[key] = Tracked.from_json(data)
            except (KeyError, TypeError, ValueError) as exc:
                log.error("alert_state_unreadable", key=key, error=str(exc))
        for t in self._tracked.values():
            self.metrics.set_state(t.alertname.value, t.journey, t.target, t.policy.state)

    def start(self) -> None:
        if self._store is None:
            self.open()
        assert self.outbox is not None
        self.outbox.start()
        self._tick_task = asyncio.get_running_loop().create_task(
            self._tick_loop(), name="synthmon-alerting-tick"
        )

    async def stop(self, flush_seconds: float = 2.0) -> None:
        if self._tick_task is not None:
            self._tick_task.cancel()
            await asyncio.gather(self._tick_task, return_exceptions=True)
            self._tick_task = None
        if self._store is not None:
            self.flush_states()
        if self.outbox is not None and self._store is not None:
            await self.outbox.stop(flush_seconds)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._store is not None:
            self._store.close()
            self._store = None

    @property
    def store(self) -> AlertStore:
        assert self._store is not None, "AlertEngine.open() first"
        return self._store

    def _build_notifiers(self, client: httpx.AsyncClient) -> dict[str, Notifier]:
        c = self.config
        out: dict[str, Notifier] = {}
        if c.alertmanager is not None:
            out["alertmanager"] = AlertmanagerNotifier(
                c.alertmanager.urls,
                client=client,
                ends_at_factor=c.ends_at_factor,
                min_interval=c.ends_at_min_interval,
                clock=self._clock,
            )
        if c.pagerduty is not None:
            out["pagerduty"] = PagerDutyNotifier(
                c.pagerduty.routing_key, client=client, url=c.pagerduty.url
            )
        if c.slack is not None:
            out["slack"] = SlackNotifier(c.slack.url, client=client)
        if c.webhook is not None:
            out["webhook"] = WebhookNotifier("webhook", c.webhook.url, client=client)
        return out

    def set_catalog(self, pairs: Sequence[tuple[Journey, str]], *, complete: bool = True) -> None:
        """The (journey, target) pairs that exist now. Alerts of pairs that disappeared
        are resolved (a removed journey must not leave a page open) and forgotten.
        `complete=False` (some journey file failed to load): forget nothing, since a
        typo in a file must not resolve the incident its journey is reporting."""
        if not complete:
            return
        live = {(j.name, t) for j, t in pairs}
        for key, t in list(self._tracked.items()):
            if (t.journey, t.target) in live:
                continue
            if t.policy.state is AlertState.FIRING and t.notified and t.last is not None:
                now = self._clock()
                alert = dataclasses.replace(
                    self._last(t),
                    state="resolved",
                    event=Event.RESOLVE,
                    resolved_at=now,
                    summary=f"Journey {t.journey} on {t.target} is no longer monitored "
                    "(removed from the journeys folder or config)",
                )
                for notifier in t.routes:
                    self._enqueue(notifier, alert)
            if t.policy.state is AlertState.FIRING and t.last is not None:
                self._incidents.alert_transition(
                    dataclasses.replace(self._last(t), state="resolved", resolved_at=self._clock())
                )
            del self._tracked[key]
            if self._store is not None:
                self._store.delete_state(key)
            self.metrics.forget_pair(t.alertname.value, t.journey, t.target)

    # -- the sink ----------------------------------------------------------------------

    def policy_for(self, journey: Journey) -> Policy:
        return self.policies.for_journey(journey)

    def state(self, alertname: AlertName, journey: str, target: str) -> Tracked | None:
        return self._tracked.get(self._key(alertname, journey, target))

    def firing(self, journey: str, target: str) -> bool:
        """Whether the pair's SyntheticJourneyFailed fires (the outage is confirmed)."""
        t = self.state(AlertName.FAILED, journey, target)
        return t is not None and t.policy.state is AlertState.FIRING

    async def emit(self, result: RunResult) -> None:
        journey = self._journeys(result.journey)
        if journey is None:
            return
        if result.retried:
            # A retry follows: only the final attempt counts, but if it fails too the
            # incident's first failure is this attempt (the timeline starts here).
            key = self._key(AlertName.FAILED, journey.name, result.target)
            if result.status.is_target_failure:
                self._first_attempt.setdefault(key, result.started_at + result.duration)
            return
        policy = self.policy_for(journey)
        now = result.started_at + result.duration
        infra = result.is_infrastructure_error
        failed = VERDICT_OUTCOME[result.verdict]  # the one counting rule (model.py)
        await self._feed(AlertName.FAILED, journey, result, failed, policy, now)
        if result.ok and degraded.watches(journey):
            is_degraded = degraded.is_degraded(journey, result)
            self.metrics.set_degraded(journey.name, result.target, is_degraded)
            await self._feed(
                AlertName.DEGRADED,
                journey,
                result,
                Outcome.FAIL if is_degraded else Outcome.PASS,
                dataclasses.replace(policy, notify=policy.alert_on_degraded),
                now,
            )
        # A run cut short by our own shutdown is nobody's problem.
        infra = infra and result.reason != "shutdown"
        if infra or self.state(AlertName.INTERNAL, journey.name, result.target) is not None:
            await self._feed(
                AlertName.INTERNAL,
                journey,
                result,
                Outcome.FAIL if infra else Outcome.PASS,
                INTERNAL_ERROR_POLICY,
                now,
            )

    async def _feed(
        self,
        name: AlertName,
        journey: Journey,
        result: RunResult,
        outcome: Outcome,
        policy: Policy,
        now: float,
    ) -> None:
        key = self._key(name, journey.name, result.target)
        t = self._tracked.get(key) or Tracked(name, journey.name, result.target)
        started = t.policy.first_failure_at is None
        t.policy, transition = advance(t.policy, outcome, now, policy)
        first_attempt = self._first_attempt.pop(key, None)
        if outcome is Outcome.FAIL and started and first_attempt is not None:
            t.policy = dataclasses.replace(
                t.policy, first_failure_at=min(first_attempt, t.policy.first_failure_at or now)
            )
        if outcome is Outcome.FAIL:
            t.last = self._render.alert(t, journey, result, Event.TRIGGER).to_json()
        self.metrics.set_state(name.value, journey.name, result.target, t.policy.state)
        if transition is Transition.FIRING:
            t.resolved_at = None
            t.am_resolve = None
            t.notified = False
            self._incidents.alert_transition(self._last(t))
            await self._log.send(self._last(t))
            if policy.notify:
                self._announce(t, journey, now)
        elif transition is Transition.RESOLVED:
            alert = dataclasses.replace(
                self._last(t),
                state="resolved",
                event=Event.RESOLVE,
                resolved_at=now,
                last_success_at=now,
                summary=self._render.summary(name, journey, result.target, resolved=True),
            )
            t.last = alert.to_json()
            self._incidents.alert_transition(alert)
            await self._log.send(alert)
            if t.notified:
                # Resolves go out even during a silence: they close what was announced.
                for notifier in t.routes:
                    self._enqueue(notifier, alert)
                t.resolved_at = now
                t.am_resolve = alert.to_json()
                t.am_sent_at = self._clock()
            t.notified = False
        self._tracked[key] = t
        if transition is not None or outcome is Outcome.FAIL or t.policy.state is not AlertState.OK:
            self.store.save_state(key, t.to_json())
            self._dirty.discard(key)
        else:
            # Steady passes only move counters and last_success_at: written by the next
            # tick (and at stop) rather than one SQLite write per run. Anything that
            # matters across a restart (a failure, a transition) is written at once.
            self._dirty.add(key)

    def _announce(self, t: Tracked, journey: Journey, now: float) -> None:
        """Send the trigger of the current incident, unless silenced (then the tick
        announces it when the silence ends, if it still fires)."""
        why = self._held(t, journey)
        if why is not None:
            log.info(
                "alert_silenced",
                alertname=t.alertname.value,
                journey=journey.name,
                target=t.target,
                silenced_by=why,
            )
            return
        alert = self._last(t)
        t.routes = self.config.route(alert.severity, journey.tags)
        for notifier in t.routes:
            self._enqueue(notifier, alert)
        t.notified = True
        t.reminded_at = t.am_sent_at = self._clock()

    def _held(self, t: Tracked, journey: Journey) -> str | None:
        """Why triggers and reminders for this pair are held back now, or None."""
        if self._is_paused(journey, t.target):
            return "pause"
        assert self.silences is not None
        return self.silences.silenced(journey.name, t.target, journey.tags, self._clock())

    def _enqueue(self, notifier: str, alert: Alert) -> None:
        assert self.outbox is not None
        # Alertmanager holds state: only its latest version matters.
        self.outbox.enqueue(notifier, alert, coalesce=notifier == "alertmanager")

    # -- the tick ---------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        c = self.config
        period = min(max(min(c.resend_interval, c.repeat_interval) / 4, 0.05), 15.0)
        while True:
            try:
                await self._flush_in_chunks()
                self.tick()
            except Exception:
                log.exception("alerting_tick_failed")
            await asyncio.sleep(period)

    async def _flush_in_chunks(self) -> None:
        """`flush_states` a chunk at a time, letting the event loop run between chunks:
        at thousands of pairs, writing every steady pass in one go stopped the loop for
        longer than the start-lag budget (docs/benchmarks.md, "Alert state flush")."""
        while self._dirty:
            self.flush_states(limit=FLUSH_CHUNK)
            await asyncio.sleep(0)

    def flush_states(self, limit: int | None = None) -> None:
        """Persist states whose steady passes were not written yet (at most `limit`)."""
        if not self._dirty:
            return
        keys = list(self._dirty) if limit is None else list(itertools.islice(self._dirty, limit))
        states = {k: t.to_json() for k in keys if (t := self._tracked.get(k)) is not None}
        self._dirty.difference_update(keys)
        self.store.save_states(states)

    def tick(self) -> None:
        """Re-sends, reminders, announcements after silences, heartbeat."""
        self.flush_states()
        now = self._clock()
        c = self.config
        for key, t in list(self._tracked.items()):
            journey = self._journeys(t.journey)
            changed = False
            if t.policy.state is AlertState.FIRING and journey is not None:
                policy = self._policy_of(t, journey)
                if not t.notified:
                    if policy.notify:
                        self._announce(t, journey, now)
                        changed = t.notified
                else:
                    # Alertmanager holds state, not messages: an announced alert is kept
                    # alive there during a silence too (letting it expire would tell
                    # Alertmanager's receivers it resolved while the outage goes on).
                    if "alertmanager" in t.routes and now - t.am_sent_at >= c.resend_interval:
                        self._enqueue("alertmanager", self._last(t))
                        t.am_sent_at = now
                        changed = True
                    if now - t.reminded_at >= c.repeat_interval and not self._held(t, journey):
                        reminder = dataclasses.replace(self._last(t), event=Event.REMINDER)
                        for notifier in t.routes:
                            if notifier != "alertmanager":
                                self._enqueue(notifier, reminder)
                        t.reminded_at = now
                        changed = True
            elif t.resolved_at is not None:
                if now - t.resolved_at > c.resolve_resend_for:
                    t.resolved_at = None
                    t.am_resolve = None
                    changed = True
                elif "alertmanager" in t.routes and now - t.am_sent_at >= c.resend_interval:
                    # The resolve as sent, never `last`: a failed run since the recovery
                    # (pending, not firing) has replaced `last` with a firing alert.
                    resolve = t.am_resolve or t.last
                    if resolve is not None and resolve.get("state") == "resolved":
                        self._enqueue("alertmanager", Alert.from_json(resolve))
                    t.am_sent_at = now
                    changed = True
            if changed:
                self.store.save_state(key, t.to_json())
        if (
            c.heartbeat
            and c.alertmanager is not None
            and now - self._heartbeat_at >= c.resend_interval
        ):
            self._enqueue("alertmanager", self._render.heartbeat(now, c.resend_interval))
            self._heartbeat_at = now

    def _policy_of(self, t: Tracked, journey: Journey) -> Policy:
        policy = self.policy_for(journey)
        if t.alertname is AlertName.DEGRADED:
            return dataclasses.replace(policy, notify=policy.alert_on_degraded)
        if t.alertname is AlertName.INTERNAL:
            return INTERNAL_ERROR_POLICY
        return policy

    # -- building alerts ---------------------------------------------------------------

    def _key(self, name: AlertName, journey: str, target: str) -> str:
        return f"{name.value}/{journey}/{target}"

    def _last(self, t: Tracked) -> Alert:
        assert t.last is not None
        return Alert.from_json(t.last)
