"""One store of what the metrics show per (journey, target) pair, and the Collector
that renders it.

Every per-pair value synthmon exports (run results, steps, skips, pauses, cleanups,
alert states, navigation timings) lives in one `PairState` in one `PairStore`. The
store is the only bookkeeping: `PairCollector.collect()` builds the metric families
from it at scrape time, so a pair removed from the catalog is gone at the next scrape
by construction — there is no series to forget to delete.

The status server does not call `collect()` for /metrics: it writes the same families
straight as text (sinks/pairtext.py, several times faster) and keeps `collect()` out
of that render with `PairCollector.quiet()`; `collect()` serves every other reader of
the registry.

Threading: writers run on the event loop; readers run in the status server's render
thread (docs/metrics.md, "Rendering"). The reader copies every container
before reading it (`list(d.items())`, `tuple(counts)`: single C calls that run no
Python code, so atomic under the GIL), so writers may change dicts in place. A
scrape may see a run's counter bumped and its histogram not yet: one run apart, as
with any live exporter.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.samples import Sample

from synthmon.journeys.dsl import Journey
from synthmon.model import RunResult, Status, Verdict
from synthmon.sinks.pairfamilies import JOURNEY_FAMILIES, PAIR_FAMILIES, Family

# Run durations: HTTP journeys land in 0.1-2.5 s, browser journeys in 2.5-30 s;
# beyond 30 s is timeout territory (+Inf). Nine buckets: docs/metrics.md says why.
DURATION_BUCKETS: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# The `le` label values, in the exposition's own float format (1.0, 0.25) as
# prometheus_client writes it.
DURATION_LE: tuple[str, ...] = (*(repr(float(b)) for b in DURATION_BUCKETS), "+Inf")
RESULTS = tuple(Status)
ALERT_VALUE = {"ok": 0, "pending": 1, "firing": 2}


@dataclass(slots=True)
class Hist:
    """A fixed-bucket histogram: per-bucket (not cumulative) counts, last is +Inf."""

    counts: list[int]
    total: float = 0.0

    @classmethod
    def new(cls, bounds: Sequence[float]) -> Hist:
        return cls([0] * (len(bounds) + 1))

    def observe(self, bounds: Sequence[float], value: float) -> None:
        self.counts[bisect_left(bounds, value)] += 1
        self.total += value


@dataclass(slots=True)
class StepState:
    success: int = 0
    duration: Hist | None = None  # only with [metrics] step_histograms


@dataclass(slots=True)
class PairState:
    """The values the metrics show for one (journey, target) pair."""

    severity: str
    ran: bool = False
    success: int = 0
    runs: list[int] = field(default_factory=lambda: [0] * len(RESULTS))
    retries: int = 0
    duration: Hist = field(default_factory=lambda: Hist.new(DURATION_BUCKETS))
    last_run: float = 0.0
    last_success: float | None = None
    consecutive_failures: int = 0
    cleanup_failures: int = 0
    # Tasks and httpx clients runs left open (kind -> count), closed by synthmon.
    left_behind: dict[str, int] = field(default_factory=dict)
    paused: int = 0
    degraded: int | None = None
    steps: dict[str, StepState] = field(default_factory=dict)
    infra_errors: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    alerts: dict[str, int] = field(default_factory=dict)
    navigation: dict[tuple[str, str], Hist] = field(default_factory=dict)
    # (step, metric) -> the last value: Web Vitals of the last document of that step.
    vitals: dict[tuple[str, str], float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JourneyInfo:
    severity: str
    kind: str
    interval: float | None
    schedule: str
    tags: str


class PairStore:
    """Per-pair metric state. Writes for pairs outside the catalog are dropped (a run
    that finished after its journey was removed must not bring it back); before the
    first catalog (start-up, or a store used alone) every pair is accepted."""

    def __init__(self, *, step_histograms: bool = False) -> None:
        self.step_histograms = step_histograms
        self.pairs: dict[tuple[str, str], PairState] = {}
        self.journeys: dict[str, JourneyInfo] = {}
        self._catalog_set = False

    # -- catalog -------------------------------------------------------------------

    def set_catalog(self, pairs: Iterable[tuple[Journey, str]]) -> None:
        """The pairs that exist now: new ones start at zero, state of the others goes."""
        old = self.pairs
        new: dict[tuple[str, str], PairState] = {}
        journeys: dict[str, JourneyInfo] = {}
        for j, target in pairs:
            key = (j.name, target)
            state = old.get(key) or PairState(severity=j.severity.value)
            state.severity = j.severity.value
            new[key] = state
            journeys[j.name] = JourneyInfo(
                severity=j.severity.value,
                kind=j.kind.value,
                interval=j.interval,
                schedule=j.schedule,
                tags=",".join(j.tags),
            )
        self.pairs, self.journeys = new, journeys
        self._catalog_set = True

    def _state(self, journey: str, target: str) -> PairState | None:
        state = self.pairs.get((journey, target))
        if state is None and not self._catalog_set:
            # Before the first catalog only (alert states loaded at start-up): the
            # catalog then keeps or drops it.
            state = self.pairs[(journey, target)] = PairState(severity="unknown")
        return state

    # -- per run (the metrics sink) ---------------------------------------------------

    def record(self, result: RunResult) -> None:
        state = self.pairs.get((result.journey, result.target))
        if state is None:
            return  # finished after its pair was removed: do not resurrect it
        status = result.status
        finished = result.started_at + result.duration
        state.ran = True
        state.runs[RESULTS.index(status)] += 1
        state.duration.observe(DURATION_BUCKETS, result.duration)
        state.last_run = finished
        if result.retried:
            state.retries += 1
        else:
            # An attempt a retry follows is not the run's outcome yet: flipping the gauge
            # for 5 s would page anyone alerting on success == 0 for a blip.
            state.success = 1 if status is Status.SUCCESS else 0
        verdict = result.verdict
        if verdict is Verdict.PASS:
            state.last_success = finished
            state.consecutive_failures = 0
        elif verdict is Verdict.FAIL:
            state.consecutive_failures += 1
        if result.is_infrastructure_error:
            assert result.reason is not None
            state.infra_errors[result.reason] = state.infra_errors.get(result.reason, 0) + 1
        state.cleanup_failures += result.cleanup_failures
        for kind, n in result.left_behind:
            state.left_behind[kind] = state.left_behind.get(kind, 0) + n
        for page in result.web_vitals:
            for metric, value in page.values:
                state.vitals[(page.step, metric)] = value
        for step in result.steps:
            s = state.steps.get(step.name)
            if s is None:
                s = state.steps[step.name] = StepState(
                    duration=Hist.new(DURATION_BUCKETS) if self.step_histograms else None
                )
            s.success = 1 if step.status is Status.SUCCESS else 0
            if s.duration is not None:
                s.duration.observe(DURATION_BUCKETS, step.duration)
                for phase, seconds in step.timings:
                    nav = state.navigation.get((step.name, phase))
                    if nav is None:
                        nav = state.navigation[(step.name, phase)] = Hist.new(DURATION_BUCKETS)
                    nav.observe(DURATION_BUCKETS, seconds)

    # -- other writers -----------------------------------------------------------------

    def skipped_run(self, journey: str, target: str, reason: str, n: int = 1) -> None:
        state = self.pairs.get((journey, target))
        if state is not None:
            state.skipped[reason] = state.skipped.get(reason, 0) + n

    def set_paused(self, journey: str, target: str, paused: bool) -> None:
        state = self.pairs.get((journey, target))
        if state is not None:
            state.paused = 1 if paused else 0

    def set_alert_state(self, alertname: str, journey: str, target: str, state: str) -> None:
        pair = self._state(journey, target)
        if pair is not None:
            pair.alerts[alertname] = ALERT_VALUE[state]

    def set_degraded(self, journey: str, target: str, degraded: bool) -> None:
        pair = self._state(journey, target)
        if pair is not None:
            pair.degraded = 1 if degraded else 0

    def forget_alert(self, alertname: str, journey: str, target: str) -> None:
        pair = self.pairs.get((journey, target))
        if pair is not None:
            pair.alerts.pop(alertname, None)
            pair.degraded = None


class TextWritten:
    """A Collector whose families the status server writes as text itself (a
    `TextSource`): `quiet()` keeps them out of `collect()` during that render. The
    pair families here and the history's (sinks/history/families.py) are such."""

    def __init__(self) -> None:
        self._quiet = threading.local()

    def describe(self) -> list[Metric]:
        # Registration must not call collect(): families are built at scrape time.
        return []

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """While entered, `collect()` yields nothing in this thread: for a renderer that
        writes these families itself (sinks/pairtext.py), so the rest of the registry
        can be rendered by prometheus_client without repeating them. Other threads
        still see every family."""
        before = getattr(self._quiet, "on", False)
        self._quiet.on = True
        try:
            yield
        finally:
            self._quiet.on = before

    def collect(self) -> Iterator[Metric]:
        if getattr(self._quiet, "on", False):
            return
        yield from self._families()

    def _families(self) -> list[Metric]:
        raise NotImplementedError


class PairCollector(TextWritten):
    """Renders a `PairStore` as metric families (a prometheus_client Collector)."""

    def __init__(self, store: PairStore, *, location: str | None = None) -> None:
        super().__init__()
        self.store = store
        self.location = location
        self._loc: tuple[str, ...] = (location,) if location else ()
        self._loc_names: tuple[str, ...] = ("location",) if location else ()

    def _families(self) -> list[Metric]:
        store = self.store
        families = [_family(f) for f in PAIR_FAMILIES]
        (
            success,
            duration,
            runs,
            infra,
            step_duration,
            step_success,
            last_run,
            last_success,
            consecutive,
            retries,
            skipped,
            paused,
            cleanup,
            left_behind,
            alert_state,
            degraded,
            navigation,
            web_vital,
        ) = families
        bounds = list(DURATION_LE)

        # Samples are appended directly with one label dict per pair: add_metric()
        # zips label names per sample, which doubled the render time at 5,000 pairs.
        loc_labels = dict(zip(self._loc_names, self._loc, strict=True))
        for (journey, target), s in list(store.pairs.items()):
            base = {"journey": journey, "target": target, **loc_labels}
            for status, n in zip(RESULTS, tuple(s.runs), strict=True):
                _add(runs, "_total", {**base, "result": status.value}, n)
            _add(paused, "", base, s.paused)
            for alertname, value in list(s.alerts.items()):
                _add(alert_state, "", {"alertname": alertname, **base}, value)
            if s.degraded is not None:
                _add(degraded, "", base, s.degraded)
            for reason, n in list(s.skipped.items()):
                _add(skipped, "_total", {**base, "reason": reason}, n)
            if not s.ran:
                continue
            _add(success, "", {**base, "severity": s.severity}, s.success)
            _hist(duration, base, bounds, s.duration)
            _add(last_run, "", base, s.last_run)
            if s.last_success is not None:
                _add(last_success, "", base, s.last_success)
            _add(consecutive, "", base, s.consecutive_failures)
            _add(retries, "_total", base, s.retries)
            _add(cleanup, "_total", base, s.cleanup_failures)
            for kind, n in list(s.left_behind.items()):
                _add(left_behind, "_total", {**base, "kind": kind}, n)
            for reason, n in list(s.infra_errors.items()):
                _add(infra, "_total", {**base, "reason": reason}, n)
            for step, st in list(s.steps.items()):
                _add(step_success, "", {**base, "step": step}, st.success)
                if st.duration is not None:
                    _hist(step_duration, {**base, "step": step}, bounds, st.duration)
            for (step, phase), h in list(s.navigation.items()):
                _hist(navigation, {**base, "step": step, "phase": phase}, bounds, h)
            for (step, metric), vital in list(s.vitals.items()):
                _add(web_vital, "", {**base, "step": step, "metric": metric}, vital)
        return [*families, *self._journey_families(store.journeys)]

    def _journey_families(self, journeys: Mapping[str, JourneyInfo]) -> list[Metric]:
        loc, ln = self._loc, self._loc_names
        info, interval, loaded = (_family(f) for f in JOURNEY_FAMILIES)
        loc_labels = dict(zip(ln, loc, strict=True))
        for name, j in list(journeys.items()):
            every = f"{j.interval:g}" if j.interval else ""
            labels = {"journey": name, "severity": j.severity, "kind": j.kind}
            labels |= {"interval_seconds": every, "schedule": j.schedule, "tags": j.tags}
            _add(info, "", {**labels, **loc_labels}, 1)
            _add(interval, "", {"journey": name, **loc_labels}, j.interval or 0)
        _add(loaded, "", loc_labels, len(journeys))
        return [info, interval, loaded]


def _family(f: Family) -> Metric:
    if f.type == "counter":
        return CounterMetricFamily(f.name, f.help)
    if f.type == "histogram":
        return HistogramMetricFamily(f.name, f.help)
    return GaugeMetricFamily(f.name, f.help)


def _add(family: Metric, suffix: str, labels: dict[str, str], value: float) -> None:
    family.samples.append(Sample(family.name + suffix, labels, value))


def _hist(family: Metric, labels: dict[str, str], bounds: list[str], h: Hist) -> None:
    counts = tuple(h.counts)
    name = family.name
    acc = 0
    for le, n in zip(bounds, counts, strict=True):
        acc += n
        family.samples.append(Sample(f"{name}_bucket", {**labels, "le": le}, acc))
    family.samples.append(Sample(f"{name}_count", labels, acc))
    family.samples.append(Sample(f"{name}_sum", labels, h.total))
