"""The history's per-pair families — slot outcomes, incidents and the window figures
(availability, MTTR, MTBF) — kept in plain dicts and written straight as text.

Per pair they are 6 slot counters, 1 incident counter and up to 3 x 3 window gauges:
~34,000 samples at 2,500 pairs, nearly all of the registry besides the pair families.
As prometheus_client `Counter`/`Gauge` children rendered by `generate_latest` they
took ~0.6 s of CPU per scrape at 2,500 pairs in the render thread, holding the GIL the
event loop needs to start runs (docs/benchmarks.md, "History families as text"). So,
like the pair families (sinks/pairtext.py, whose helpers this reuses): `HistoryPairs`
holds the values, `HistoryText.render()` writes the lines for /metrics, and
`HistoryCollector.collect()` builds the same families for every other reader of the
registry. Both give the same bytes (tests/history/test_history_text.py). A pair
removed from the catalog leaves the dicts, so its series are gone at the next scrape.

Threading: slots and incidents are counted on the event loop; the window figures are
replaced whole by the history's writer thread (`publish`); readers run in the render
thread and copy each container before reading it (`list(d.items())`, as pairstate.py
explains).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from synthmon.sinks.history.records import SlotOutcome
from synthmon.sinks.history.stats import WindowStats
from synthmon.sinks.pairfamilies import Family
from synthmon.sinks.pairstate import TextWritten
from synthmon.sinks.pairtext import escape, header, location_label, number

OUTCOMES: tuple[str, ...] = tuple(o.value for o in SlotOutcome)
# In exposition order (the order they were registered in before they became text).
WINDOW_FAMILIES: tuple[Family, ...] = (
    Family(
        "synthmon_journey_availability_ratio",
        "gauge",
        "Passing / counted runs over the window (history; docs/history.md).",
    ),
    Family(
        "synthmon_journey_mttr_seconds",
        "gauge",
        "Mean time to repair: mean duration of incidents that ended in the window.",
    ),
    Family(
        "synthmon_journey_mtbf_seconds",
        "gauge",
        "Mean time between failures: mean time from an incident's end to the next start.",
    ),
)
SLOTS = Family(
    "synthmon_slots",
    "counter",
    "Scheduled slots by outcome: passed, failed, timed_out, error, skipped, missed.",
)
INCIDENTS = Family(
    "synthmon_journey_incidents",
    "counter",
    "Incidents (SyntheticJourneyFailed started firing) per journey and target.",
)
Pair = tuple[str, str]
Windows = Mapping[Pair, Mapping[str, WindowStats]]


def figures(s: WindowStats) -> tuple[float | None, float | None, float | None]:
    """A window's values of `WINDOW_FAMILIES`, in that order (None: no series)."""
    return s.availability, s.mttr_seconds, s.mtbf_seconds


class HistoryPairs:
    """Per pair: slots by outcome and incidents counted since start, and the window
    figures last published."""

    def __init__(self) -> None:
        self.slots: dict[Pair, dict[str, int]] = {}
        self.incidents: dict[Pair, int] = {}
        self.windows: Windows = {}

    def add(self, journey: str, target: str) -> None:
        """Every outcome and the incident counter start at 0 (a pair in the catalog
        has its series before its first slot); counts kept if already there."""
        key = (journey, target)
        self.slots.setdefault(key, dict.fromkeys(OUTCOMES, 0))
        self.incidents.setdefault(key, 0)

    def remove(self, journey: str, target: str) -> None:
        self.slots.pop((journey, target), None)
        self.incidents.pop((journey, target), None)

    def slot(self, journey: str, target: str, outcome: str, n: int = 1) -> None:
        counts = self.slots.get((journey, target))
        if counts is None:
            counts = self.slots[(journey, target)] = dict.fromkeys(OUTCOMES, 0)
        counts[outcome] = counts.get(outcome, 0) + n

    def incident(self, journey: str, target: str) -> None:
        key = (journey, target)
        self.incidents[key] = self.incidents.get(key, 0) + 1

    def publish(self, windows: Windows) -> None:
        """The figures of each pair and window (a figure that is None has no series;
        a pair left out has none)."""
        self.windows = dict(windows)  # replaced whole: a reader sees one or the other


class HistoryCollector(TextWritten):
    """Renders `HistoryPairs` as metric families (a prometheus_client Collector)."""

    def __init__(self, pairs: HistoryPairs, *, location: str | None = None) -> None:
        super().__init__()
        self.pairs = pairs
        self.location = location

    def _families(self) -> list[Metric]:
        loc = (self.location,) if self.location else ()
        names = ("location",) if self.location else ()
        windows = [
            GaugeMetricFamily(f.name, f.help, labels=("journey", "target", "window", *names))
            for f in WINDOW_FAMILIES
        ]
        for (journey, target), stats in list(self.pairs.windows.items()):
            for window, s in list(stats.items()):
                for family, value in zip(windows, figures(s), strict=True):
                    if value is not None:
                        family.add_metric((journey, target, window, *loc), value)
        slots = CounterMetricFamily(
            SLOTS.name, SLOTS.help, labels=("journey", "target", "outcome", *names)
        )
        for (journey, target), counts in list(self.pairs.slots.items()):
            for outcome, n in list(counts.items()):
                slots.add_metric((journey, target, outcome, *loc), n)
        incidents = CounterMetricFamily(
            INCIDENTS.name, INCIDENTS.help, labels=("journey", "target", *names)
        )
        for (journey, target), n in list(self.pairs.incidents.items()):
            incidents.add_metric((journey, target, *loc), n)
        return [*windows, slots, incidents]


class HistoryText:
    """A `HistoryCollector`'s families as exposition text (a `TextSource`)."""

    def __init__(self, collector: HistoryCollector) -> None:
        self._collector = collector
        self._pairs = collector.pairs
        self._loc = location_label(collector.location)
        self._window_heads = [header(f) for f in WINDOW_FAMILIES]
        self._slots_head = header(SLOTS)
        self._incidents_head = header(INCIDENTS)
        self._outcomes = {o: f',outcome="{escape(o)}",' for o in OUTCOMES}
        # The window figures change once per statistics refresh (a minute), scrapes
        # come every 15 s or so: their text is kept until the next publish.
        self._windows_of: object = None
        self._windows_text = ""

    def excluded(self) -> AbstractContextManager[None]:
        """While entered, the collector's `collect()` yields nothing in this thread."""
        return self._collector.quiet()

    def render(self) -> str:
        # Label names sort journey < location < outcome < target < window: every line
        # is `journey="j",location="l"` (jl), then its own labels, then `target="t"`.
        pairs = self._pairs
        windows = pairs.windows
        if windows is not self._windows_of:
            self._windows_text = self._windows(windows)
            self._windows_of = windows
        text = [self._windows_text, self._slots_head]
        add = text.append
        outcomes = self._outcomes
        for (journey, target), counts in list(pairs.slots.items()):
            jl, tg = f'journey="{escape(journey)}"{self._loc}', f'target="{escape(target)}"'
            for outcome, n in list(counts.items()):
                oc = outcomes.get(outcome) or f',outcome="{escape(outcome)}",'
                add(f"synthmon_slots_total{{{jl}{oc}{tg}}} {number(n)}\n")
        add(self._incidents_head)
        for (journey, target), n in list(pairs.incidents.items()):
            jl, tg = f'journey="{escape(journey)}"{self._loc}', f'target="{escape(target)}"'
            add(f"synthmon_journey_incidents_total{{{jl},{tg}}} {number(n)}\n")
        return "".join(text)

    def _windows(self, windows: Windows) -> str:
        out: list[list[str]] = [[head] for head in self._window_heads]
        add = [lines.append for lines in out]
        for (journey, target), stats in list(windows.items()):
            pair = f'journey="{escape(journey)}"{self._loc},target="{escape(target)}"'
            for window, s in list(stats.items()):
                labels = f'{{{pair},window="{escape(window)}"}} '
                for family, append, value in zip(WINDOW_FAMILIES, add, figures(s), strict=True):
                    if value is not None:
                        append(f"{family.name}{labels}{number(value)}\n")
        return "".join(line for lines in out for line in lines)
