"""The history's per-pair families (slots, incidents, availability/MTTR/MTBF per window)
written as text (sinks/history/families.py) are the bytes prometheus_client wrote for
them, and the daemon's /metrics serves them that way (docs/metrics.md, "Rendering")."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from synthmon.sinks.history.families import (
    OUTCOMES,
    HistoryCollector,
    HistoryPairs,
    HistoryText,
)
from synthmon.sinks.history.stats import WindowStats
from synthmon.web.server import WithoutCreated
from synthmon_demo import RunningShop
from tests.harness import families_built, make_settings, run_daemon, sample, scrape
from tests.history.conftest import FAST_CRITICAL, HISTORY_FAST, eventually

# User-supplied names with every character the text format escapes.
ODD_JOURNEY = 'say "hi"\\n\nnow'
ODD_TARGET = 'eu\\west "2"'
PAIRS = [("shop", "default"), ("shop", "staging"), (ODD_JOURNEY, ODD_TARGET), ("gone", "x")]
Figures = tuple[float | None, float | None, float | None]  # availability, MTTR, MTBF
# Per pair and window; None: the figure is unknown (no series). Floats in every form
# Go's format writes differently (exponents, +Inf, NaN), and ints.
FIGURES: dict[tuple[str, str], dict[str, Figures]] = {
    ("shop", "default"): {"24h": (1.0, None, None), "7d": (0.999, 30.0, None)},
    ("shop", "staging"): {"24h": (math.nan, math.inf, -math.inf), "30d": (0, 17, 1_234_567)},
    (ODD_JOURNEY, ODD_TARGET): {"24h": (None, None, None), "7d": (0.25, 1e-05, 1.7e9)},
    ("gone", "x"): {"24h": (0.5, 60.0, 600.0)},
}


def window(name: str, f: Figures) -> WindowStats:
    availability, mttr, mtbf = f
    return WindowStats(
        name, 10, 9, availability, 0.0, 0.0, None, 1, 0, mttr, None, mtbf, None, None, None
    )


def stats_of(
    figures: dict[tuple[str, str], dict[str, Figures]],
) -> dict[tuple[str, str], dict[str, WindowStats]]:
    return {pair: {w: window(w, f) for w, f in ws.items()} for pair, ws in figures.items()}


def filled(location: str | None) -> tuple[HistoryPairs, str]:
    """A store after a catalog, slots (counts around Go's switch to exponents),
    incidents, the removal of a pair and one publish; and the text prometheus_client
    wrote for the same steps through Counter and Gauge children, as the history did
    before its families became text."""
    pairs = HistoryPairs()
    registry = CollectorRegistry()
    loc, lv = (("location",), (location,)) if location else ((), ())
    by_window = ("journey", "target", "window", *loc)
    gauges = [
        Gauge(name, doc, by_window, registry=registry)
        for name, doc in (
            (
                "synthmon_journey_availability_ratio",
                "Passing / counted runs over the window (history; docs/history.md).",
            ),
            (
                "synthmon_journey_mttr_seconds",
                "Mean time to repair: mean duration of incidents that ended in the window.",
            ),
            (
                "synthmon_journey_mtbf_seconds",
                "Mean time between failures: mean time from an incident's end to the next start.",
            ),
        )
    ]
    slots = Counter(
        "synthmon_slots",
        "Scheduled slots by outcome: passed, failed, timed_out, error, skipped, missed.",
        ("journey", "target", "outcome", *loc),
        registry=registry,
    )
    incidents = Counter(
        "synthmon_journey_incidents",
        "Incidents (SyntheticJourneyFailed started firing) per journey and target.",
        ("journey", "target", *loc),
        registry=registry,
    )
    for journey, target in PAIRS:
        pairs.add(journey, target)
        incidents.labels(journey, target, *lv)
        for outcome in OUTCOMES:
            slots.labels(journey, target, outcome, *lv)
    for i, (journey, target) in enumerate(PAIRS):
        for outcome, n in zip(OUTCOMES, (1, 999_999 * i, 1_234_567 * i, 0, 3, 10**17), strict=True):
            if n:
                pairs.slot(journey, target, outcome, n)
                slots.labels(journey, target, outcome, *lv).inc(n)
    for _ in range(2):
        pairs.incident("shop", "staging")
        incidents.labels("shop", "staging", *lv).inc()
    pairs.incidents[("shop", "default")] = 1_234_567  # Go's format: 1.234567e+06
    incidents.labels("shop", "default", *lv).inc(1_234_567)
    pairs.remove("gone", "x")
    for outcome in OUTCOMES:
        slots.remove("gone", "x", outcome, *lv)
    incidents.remove("gone", "x", *lv)
    kept = {k: v for k, v in FIGURES.items() if k != ("gone", "x")}
    pairs.publish(stats_of(kept))
    for (journey, target), ws in kept.items():
        for name, f in ws.items():
            for gauge, value in zip(gauges, f, strict=True):
                if value is not None:
                    gauge.labels(journey, target, name, *lv).set(value)
    return pairs, generate_latest(WithoutCreated(registry)).decode()


@pytest.fixture(params=[None, 'eu-"1"'], ids=["no-location", "location"])
def location(request: pytest.FixtureRequest) -> str | None:
    return request.param  # type: ignore[no-any-return]


class TestHistoryText:
    def test_writes_the_bytes_the_prometheus_client_metrics_wrote(
        self, location: str | None
    ) -> None:
        """Byte for byte what Counter/Gauge children rendered by generate_latest gave
        for the same slots, incidents, removal and figures: HELP/TYPE lines, `_total`,
        no `_created`, label order, escaping, +Inf/NaN/exponents, unknown figures absent."""
        pairs, before = filled(location)
        text = HistoryText(HistoryCollector(pairs, location=location)).render()
        assert text == before
        assert "_created" not in text and "NaN" in text and "+Inf" in text and "-Inf" in text

    def test_writes_the_same_bytes_as_generate_latest_of_its_collector(
        self, location: str | None
    ) -> None:
        """The text writer and `collect()` (what other readers of the registry get)
        give the same bytes, also after the figures are published again."""
        pairs, _ = filled(location)
        collector = HistoryCollector(pairs, location=location)
        text = HistoryText(collector)
        assert text.render() == generate_latest(collector).decode()
        pairs.publish(stats_of({("shop", "default"): {"30d": (0.5, 1.0, None)}}))
        assert text.render() == generate_latest(collector).decode()

    def test_a_removed_pair_is_gone_from_the_next_render(self) -> None:
        """A pair the catalog drops has no slot, incident or window series at the next
        render; the others keep theirs."""
        pairs, _ = filled(None)
        text = HistoryText(HistoryCollector(pairs))
        assert 'journey="shop",target="default"' in text.render()
        pairs.remove("shop", "default")
        pairs.publish(stats_of({k: v for k, v in FIGURES.items() if k[1] == "staging"}))
        after = text.render()
        assert 'journey="shop",target="default"' not in after
        assert 'target="staging"' in after and "journey_incidents_total" in after

    def test_window_figures_follow_each_publish(self) -> None:
        """New figures show at the next render; a figure that became unknown loses its
        series (the window text is kept only until the next publish)."""
        pairs, _ = filled("eu")
        text = HistoryText(HistoryCollector(pairs, location="eu"))
        labels = {"journey": "shop", "target": "default", "window": "7d", "location": "eu"}
        assert sample(text.render(), "synthmon_journey_mttr_seconds", **labels) == 30.0
        pairs.publish(stats_of({("shop", "default"): {"7d": (0.5, None, 42.0)}}))
        rendered = text.render()
        assert sample(rendered, "synthmon_journey_mttr_seconds", **labels) is None
        assert sample(rendered, "synthmon_journey_mtbf_seconds", **labels) == 42.0
        assert sample(rendered, "synthmon_journey_availability_ratio", **labels) == 0.5

    def test_odd_names_read_back_unchanged(self) -> None:
        """Journey and target names with quotes, backslashes and newlines come out of a
        parser exactly as the user wrote them."""
        pairs, _ = filled(None)
        rendered = HistoryText(HistoryCollector(pairs)).render()
        odd = {"journey": ODD_JOURNEY, "target": ODD_TARGET}
        assert sample(rendered, "synthmon_journey_mtbf_seconds", window="7d", **odd) == 1.7e9
        assert sample(rendered, "synthmon_slots_total", outcome="missed", **odd) == 1e17

    def test_excluded_hides_collect_in_this_thread(self) -> None:
        """Inside excluded() the registry yields none of these families (so /metrics
        does not write them twice); outside it yields all five."""
        registry = CollectorRegistry()
        pairs, _ = filled(None)
        collector = HistoryCollector(pairs)
        registry.register(collector)
        with HistoryText(collector).excluded():
            assert list(registry.collect()) == []
        assert len(list(registry.collect())) == 5


OTHER = FAST_CRITICAL.replace("def home", "def other")
HISTORY_FAMILIES = (
    "synthmon_slots",
    "synthmon_journey_incidents",
    "synthmon_journey_availability_ratio",
    "synthmon_journey_mttr_seconds",
    "synthmon_journey_mtbf_seconds",
)


class TestDaemonHistoryMetrics:
    async def test_scrape_serves_history_families_from_the_text_writer(
        self, shop: RunningShop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """/metrics of a daemon built as `synthmon run` builds it carries each history
        family once, with the location label and the values the history computed, written
        by the text writer (collect() builds none of them); a removed journey's history
        series are gone from the next scrape."""
        monkeypatch.setenv("SYNTHMON_LOCATION", "eu-1")
        journeys = {"h.py": FAST_CRITICAL, "o.py": OTHER}
        settings = make_settings(
            tmp_path, targets={"demo": shop.url}, journeys=journeys, extra_toml=HISTORY_FAST
        )
        async with run_daemon(settings) as (daemon, results):
            await results.wait_for(lambda rs: len(rs) >= 6, timeout=15)
            assert daemon.history is not None
            history = daemon.history

            async def figures() -> WindowStats | None:
                return (history.stats("home", "demo") or {}).get("24h")

            await eventually(figures, what="the history's figures")
            built = families_built(history.metrics.collector)
            passed_before = sum(1 for r in results.of("home") if r.ok)
            text = await scrape(daemon)
            passed_after = sum(1 for r in results.of("home") if r.ok)
            (settings.journeys_dir / "h.py").unlink()
            daemon.reload()
            after = await scrape(daemon)
        names = [f.name for f in text_string_to_metric_families(text)]
        assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
        assert set(HISTORY_FAMILIES) <= set(names)
        assert built == []
        labels = {"journey": "home", "target": "demo", "location": "eu-1"}
        for w in ("24h", "7d", "30d"):
            assert sample(text, "synthmon_journey_availability_ratio", window=w, **labels) == 1
        # No incident yet: no repair time, no time between failures, none counted.
        assert sample(text, "synthmon_journey_mttr_seconds", **labels) is None
        assert sample(text, "synthmon_journey_mtbf_seconds", **labels) is None
        assert sample(text, "synthmon_journey_incidents_total", **labels) == 0
        slots = sample(text, "synthmon_slots_total", outcome="passed", **labels) or 0
        assert max(passed_before - 1, 2) <= slots <= passed_after
        assert sample(text, "synthmon_slots_total", outcome="failed", **labels) == 0
        assert _history_series(after, "home") == []
        assert _history_series(after, "other")


def _history_series(text: str, journey: str) -> list[str]:
    return [
        line
        for line in text.splitlines()
        if line.startswith(HISTORY_FAMILIES) and f'journey="{journey}"' in line
    ]
