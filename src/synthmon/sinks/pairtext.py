"""The per-pair families of a `PairStore` written straight as Prometheus text.

At 5,000 pairs the per-pair families are ~135,000 samples. prometheus_client's
`generate_latest` turns each into a `Sample`, sorts and escapes its labels and formats
its value one by one in Python: about 2 s of CPU per scrape, holding the GIL, so the
event loop that starts runs stalls for that long on every scrape even though the
render has a thread of its own. `PairText` writes the same lines itself: each pair's
escaped label strings are built once and kept (until the pair leaves the catalog),
every line is one f-string, and values go through prometheus_client's own float
format. The output is the same text `generate_latest` writes for
`PairCollector.collect()`, byte for byte — same families, HELP and TYPE lines, label
order and value format (tests/core/test_pair_text.py pins it); a Prometheus server
reads the same series either way.

The status server renders the rest of the registry with `generate_latest` inside
`excluded()` (the collector's families left out of it) and appends this text:
families stay unique and each stays contiguous.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from prometheus_client.utils import floatToGoString

from synthmon.sinks.pairfamilies import JOURNEY_FAMILIES, PAIR_FAMILIES, Family
from synthmon.sinks.pairstate import (
    DURATION_LE,
    RESULTS,
    Hist,
    JourneyInfo,
    PairCollector,
    PairState,
)

# Per pair: `journey="j"`, `journey="j",location="l"` (or `journey="j"`) and
# `target="t"`, escaped. Label names sort as
#   alertname < interval_seconds < journey < kind < le < location
#   < metric < phase < reason < result < schedule < severity < step < tags < target,
# so every line is those pieces with its own labels put in between, in the order
# prometheus_client writes them (sorted by name).
PairLabels = tuple[str, str, str]
RESULT_LABELS = tuple(f',result="{status.value}",' for status in RESULTS)


def escape(value: str) -> str:
    """A label value as the text format requires (and prometheus_client writes it)."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def number(value: float) -> str:
    """A sample value exactly as prometheus_client writes it (`floatToGoString`)."""
    # Most values are small counts: "17.0", as repr(float(17)). From 1e6 on, Go's
    # format (and prometheus_client's) switches to exponents: leave those to it.
    if type(value) is int and 0 <= value < 1_000_000:
        return f"{value}.0"
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]  # untyped in the library
    return text


def location_label(location: str | None) -> str:
    """`,location="…"` to put after a line's `journey` label, or "" without a location."""
    return f',location="{escape(location)}"' if location else ""


def header(family: Family) -> str:
    """The HELP and TYPE lines `generate_latest` writes for the family."""
    name = family.name + ("_total" if family.type == "counter" else "")
    doc = family.help.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {doc}\n# TYPE {name} {family.type}\n"


class PairText:
    """A `PairCollector`'s families as exposition text (the status server's fast path)."""

    def __init__(self, collector: PairCollector) -> None:
        self._collector = collector
        self._store = collector.store
        loc = collector.location
        self._loc = location_label(loc)
        self._loaded = "synthmon_journeys_loaded" + (f'{{location="{escape(loc)}"}}' if loc else "")
        self._heads = [header(f) for f in PAIR_FAMILIES]
        self._journey_heads = [header(f) for f in JOURNEY_FAMILIES]
        # Built once per pair and per journey, kept while the catalog (the store's
        # dict, replaced whole by set_catalog) is the same one.
        self._labels: dict[tuple[str, str], PairLabels] = {}
        self._labels_of: object = None
        self._journey_lines: dict[tuple[str, JourneyInfo], tuple[str, str]] = {}
        self._journeys_of: object = None

    def excluded(self) -> AbstractContextManager[None]:
        """While entered, the collector's `collect()` yields nothing in this thread."""
        return self._collector.quiet()

    def render(self) -> str:
        pairs = self._store.pairs
        if pairs is not self._labels_of:
            # A new catalog: keep the labels of the pairs still in it, drop the others.
            old = self._labels
            self._labels = {k: old[k] for k in list(pairs) if k in old}
            self._labels_of = pairs
        labels = self._labels
        out: list[list[str]] = [[] for _ in PAIR_FAMILIES]
        add = [lines.append for lines in out]
        for key, state in list(pairs.items()):
            pl = labels.get(key)
            if pl is None:
                pl = labels[key] = self._pair_labels(*key)
            self._pair(add, pl, state)
        text: list[str] = []
        for head, lines in zip(self._heads, out, strict=True):
            text.append(head)
            text.extend(lines)
        text.extend(self._journeys())
        return "".join(text)

    def _pair_labels(self, journey: str, target: str) -> PairLabels:
        jn = f'journey="{escape(journey)}"'
        return jn, jn + self._loc, f'target="{escape(target)}"'

    def _pair(self, add: list[Callable[[str], None]], pl: PairLabels, s: PairState) -> None:
        # One pair's lines, appended to each family's list in the order collect() adds
        # its samples. `jn` + `after` are the pair's labels (`base`) with room for `le`
        # or `kind` in between.
        jn, jl, tg = pl
        base = f"{jl},{tg}"
        after = f"{self._loc},{tg}"
        (success, duration, runs, infra, step_duration, step_success, last_run) = add[:7]
        (last_success, consecutive, retries, skipped, paused, cleanup, left_behind) = add[7:14]
        (alert_state, degraded, navigation, web_vital) = add[14:]
        for result, n in zip(RESULT_LABELS, tuple(s.runs), strict=True):
            runs(f"synthmon_journey_runs_total{{{jl}{result}{tg}}} {number(n)}\n")
        paused(f"synthmon_journey_paused{{{base}}} {number(s.paused)}\n")
        for alertname, value in list(s.alerts.items()):
            alert_state(
                f'synthmon_alert_state{{alertname="{escape(alertname)}",{base}}} {number(value)}\n'
            )
        if s.degraded is not None:
            degraded(f"synthmon_journey_degraded{{{base}}} {number(s.degraded)}\n")
        for reason, n in list(s.skipped.items()):
            skipped(
                f'synthmon_journey_skipped_runs_total{{{jl},reason="{escape(reason)}",{tg}}} '
                f"{number(n)}\n"
            )
        if not s.ran:
            return
        success(
            f'synthmon_journey_success{{{jl},severity="{escape(s.severity)}",{tg}}} '
            f"{number(s.success)}\n"
        )
        _hist(duration, "synthmon_journey_duration_seconds", jn, after, s.duration)
        last_run(f"synthmon_journey_last_run_timestamp_seconds{{{base}}} {number(s.last_run)}\n")
        if s.last_success is not None:
            last_success(
                f"synthmon_journey_last_success_timestamp_seconds{{{base}}} "
                f"{number(s.last_success)}\n"
            )
        consecutive(
            f"synthmon_journey_consecutive_failures{{{base}}} {number(s.consecutive_failures)}\n"
        )
        retries(f"synthmon_journey_retries_total{{{base}}} {number(s.retries)}\n")
        cleanup(f"synthmon_journey_cleanup_failures_total{{{base}}} {number(s.cleanup_failures)}\n")
        for kind, n in list(s.left_behind.items()):
            left_behind(
                f'synthmon_journey_left_behind_total{{{jn},kind="{escape(kind)}"{after}}} '
                f"{number(n)}\n"
            )
        for reason, n in list(s.infra_errors.items()):
            infra(
                f"synthmon_journey_infrastructure_errors_total"
                f'{{{jl},reason="{escape(reason)}",{tg}}} {number(n)}\n'
            )
        for step, st in list(s.steps.items()):
            sl = f'step="{escape(step)}",{tg}'
            step_success(f"synthmon_journey_step_success{{{jl},{sl}}} {number(st.success)}\n")
            if st.duration is not None:
                _hist(
                    step_duration,
                    "synthmon_journey_step_duration_seconds",
                    jn,
                    f"{self._loc},{sl}",
                    st.duration,
                )
        for (step, phase), h in list(s.navigation.items()):
            nav = f'{self._loc},phase="{escape(phase)}",step="{escape(step)}",{tg}'
            _hist(navigation, "synthmon_browser_navigation_seconds", jn, nav, h)
        for (step, metric), vital in list(s.vitals.items()):
            web_vital(
                f'synthmon_browser_web_vital{{{jl},metric="{escape(metric)}",'
                f'step="{escape(step)}",{tg}}} {number(vital)}\n'
            )

    def _journeys(self) -> list[str]:
        journeys = self._store.journeys
        if journeys is not self._journeys_of:
            old = self._journey_lines
            self._journey_lines = {k: old[k] for k in list(journeys.items()) if k in old}
            self._journeys_of = journeys
        cache = self._journey_lines
        lines = []
        for key in list(journeys.items()):
            pair = cache.get(key)
            if pair is None:
                pair = cache[key] = self._journey_lines_of(*key)
            lines.append(pair)
        info_head, interval_head, loaded_head = self._journey_heads
        return [
            info_head,
            *(info for info, _ in lines),
            interval_head,
            *(interval for _, interval in lines),
            loaded_head,
            f"{self._loaded} {number(len(lines))}\n",
        ]

    def _journey_lines_of(self, name: str, j: JourneyInfo) -> tuple[str, str]:
        """The journey's synthmon_journey_info and synthmon_journey_interval_seconds lines."""
        every = f"{j.interval:g}" if j.interval else ""
        jn = f'journey="{escape(name)}"'
        info = (
            f'synthmon_journey_info{{interval_seconds="{escape(every)}",{jn},'
            f'kind="{escape(j.kind)}"{self._loc},schedule="{escape(j.schedule)}",'
            f'severity="{escape(j.severity)}",tags="{escape(j.tags)}"}} 1.0\n'
        )
        interval = (
            f"synthmon_journey_interval_seconds{{{jn}{self._loc}}} {number(j.interval or 0)}\n"
        )
        return info, interval


def _hist(add: Callable[[str], None], name: str, jn: str, after: str, h: Hist) -> None:
    # `jn` + `le` + `after` are the bucket labels in sorted order; `jn` + `after` the
    # labels of _count and _sum.
    # Bucket counts are ints >= 0: number()'s fast path inlined (a third of all lines).
    acc = 0
    for le, n in zip(DURATION_LE, tuple(h.counts), strict=True):
        acc += n
        value = f"{acc}.0" if acc < 1_000_000 else number(acc)
        add(f'{name}_bucket{{{jn},le="{le}"{after}}} {value}\n')
    add(f"{name}_count{{{jn}{after}}} {number(acc)}\n")
    add(f"{name}_sum{{{jn}{after}}} {number(h.total)}\n")
