"""The per-pair families written as text (sinks/pairtext.py) are what prometheus_client
writes for `PairCollector.collect()`, and the daemon's /metrics serves them that way
(docs/metrics.md, "Rendering")."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from synthmon.sinks.pairstate import (
    DURATION_BUCKETS,
    Hist,
    JourneyInfo,
    PairCollector,
    PairState,
    PairStore,
    StepState,
)
from synthmon.sinks.pairtext import PairText, number
from synthmon_demo import RunningShop
from tests.harness import families_built, make_settings, run_daemon, sample, scrape

# User-supplied names with every character the text format escapes.
ODD_JOURNEY = 'say "hi"\\n\nnow'
ODD_TARGET = 'eu\\west "2"'
ODD_STEP = 'log in as "admin"\\ \n(then) ünïcode'


def _hist(*values: float) -> Hist:
    h = Hist.new(DURATION_BUCKETS)
    for v in values:
        h.observe(DURATION_BUCKETS, v)
    return h


def varied_store(*, step_histograms: bool) -> PairStore:
    """A store with every kind of state a pair can have, and names that need escaping."""
    store = PairStore(step_histograms=step_histograms)
    never = PairState(severity="warning", paused=1)  # in the catalog, never ran
    never.skipped = {"paused": 3, "overlap": 1}
    store.pairs[("never_ran", "default")] = never
    for i, target in enumerate(("default", "staging", ODD_TARGET)):
        s = PairState(severity="critical", ran=True, success=i % 2)
        s.runs = [1_234_567 * (i + 1), 3, 0, 999_999]  # around Go's switch to exponents
        s.retries, s.cleanup_failures, s.consecutive_failures = 2, i, 10**17
        s.duration = _hist(0.05, 0.3, 2.6, 31.0, 1e-05)
        s.duration.counts[1] += 999_998 * i  # cumulative counts across 1e6
        s.last_run = 1_764_470_400.123
        s.last_success = None if i == 1 else 1_764_470_000.5
        s.left_behind = {"task": 2, "http_client": 1}
        s.degraded = i % 2 if i else None
        s.infra_errors = {"browser_crash": 4, 'odd "reason"\\': 1}
        s.skipped = {"missed": 7, "coalesced": 2}
        s.alerts = {"SyntheticJourneyFailing": 2, "SyntheticJourneyDegraded": 0}
        s.alerts['Odd"Alert\\'] = 1
        for step in ("home", ODD_STEP):
            s.steps[step] = StepState(
                success=1, duration=_hist(0.2, 12.0) if step_histograms else None
            )
        if step_histograms:
            s.navigation = {(ODD_STEP, "ttfb"): _hist(0.1), ("home", "load"): _hist(0.7, 0.9)}
        s.vitals = {(ODD_STEP, "cls"): 0.051, ("home", "transfer_bytes"): 12_345_678.0}
        s.vitals[("home", "lcp")] = 1.25
        store.pairs[(ODD_JOURNEY if i == 2 else f"shop_{i}", target)] = s
    store.journeys = {
        "never_ran": JourneyInfo("warning", "http", 60.0, "every 1m", ""),
        "shop_0": JourneyInfo("critical", "browser", None, '0 * * * * "odd"\\', "a,b"),
        "shop_1": JourneyInfo("critical", "http", 0.5, "every 500ms", "x"),
        ODD_JOURNEY: JourneyInfo("info", "http", 3600.0, "every 1h", 'q"\\\n'),
    }
    return store


def parsed(text: str) -> list[tuple[Any, ...]]:
    """Every family with its samples as a Prometheus text parser reads them."""
    return [
        (f.name, f.type, f.documentation, [(s.name, s.labels, repr(s.value)) for s in f.samples])
        for f in text_string_to_metric_families(text)
    ]


@pytest.fixture(params=[None, 'eu-"1"'], ids=["no-location", "location"])
def location(request: pytest.FixtureRequest) -> str | None:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=[False, True], ids=["run-histograms", "step-histograms"])
def store(request: pytest.FixtureRequest) -> PairStore:
    return varied_store(step_histograms=request.param)


class TestPairText:
    def test_parses_to_the_same_families_as_generate_latest(
        self, store: PairStore, location: str | None
    ) -> None:
        """A text parser reads the same families, HELP, types, label sets and values
        from the text writer as from prometheus_client rendering collect()."""
        collector = PairCollector(store, location=location)
        assert parsed(PairText(collector).render()) == parsed(generate_latest(collector).decode())

    def test_writes_the_same_bytes_as_generate_latest(
        self, store: PairStore, location: str | None
    ) -> None:
        """The text is byte for byte what generate_latest writes (label order, float
        format, escaping), so a scrape diff between the two paths is empty."""
        collector = PairCollector(store, location=location)
        assert PairText(collector).render() == generate_latest(collector).decode()

    def test_odd_names_read_back_unchanged(self) -> None:
        """Journey, target and step names with quotes, backslashes and newlines come out
        of a parser exactly as the user wrote them."""
        text = PairText(PairCollector(varied_store(step_histograms=False))).render()
        labels = {"journey": ODD_JOURNEY, "target": ODD_TARGET, "step": ODD_STEP}
        assert sample(text, "synthmon_journey_step_success", **labels) == 1

    def test_a_removed_pair_is_gone_from_the_next_render(self) -> None:
        """After the catalog drops a pair, its cached labels go and its series with them."""
        store = varied_store(step_histograms=False)
        text = PairText(PairCollector(store))
        assert 'journey="shop_0"' in text.render()
        store.pairs = {k: v for k, v in store.pairs.items() if k[0] != "shop_0"}
        del store.journeys["shop_0"]
        assert 'journey="shop_0"' not in text.render()
        assert text.render() == generate_latest(PairCollector(store)).decode()

    def test_a_pair_added_to_the_same_catalog_is_rendered(self) -> None:
        """A pair added before the first catalog (alert state at start-up) shows at once."""
        store = varied_store(step_histograms=False)
        text = PairText(PairCollector(store))
        text.render()
        store.set_alert_state("SyntheticJourneyFailing", "late", "default", "firing")
        assert sample(text.render(), "synthmon_alert_state", journey="late") == 2

    def test_excluded_hides_collect_in_this_thread_only(self) -> None:
        """Inside excluded(), the registry yields no pair family in the rendering
        thread, while another thread collecting meanwhile still gets all of them."""
        registry = CollectorRegistry()
        collector = PairCollector(varied_store(step_histograms=False))
        registry.register(collector)
        other: list[str] = []

        def collect_elsewhere() -> None:
            other.extend(f.name for f in registry.collect())

        with PairText(collector).excluded():
            assert list(registry.collect()) == []
            worker = threading.Thread(target=collect_elsewhere)
            worker.start()
            worker.join()
        assert "synthmon_journey_success" in other
        assert len(list(registry.collect())) == len(other)


class TestNumber:
    @pytest.mark.parametrize(
        "value",
        [0, 1, 17, 999_999, 1_000_000, 1_234_567, 10**17, -3, 0.0, 0.5, 1e-05, 1.7e9, True],
    )
    def test_formats_like_prometheus_client(self, value: float) -> None:
        """Values are written exactly as prometheus_client writes them (Go's format)."""
        assert number(value) == floatToGoString(value)

    def test_special_floats(self) -> None:
        """+Inf, -Inf and NaN are written as the text format spells them."""
        assert [number(v) for v in (math.inf, -math.inf, math.nan)] == ["+Inf", "-Inf", "NaN"]


ODD_STEPS = """
    from synthmon import Context, journey

    @journey(severity="critical", interval="1s", timeout="1s")
    async def home(ctx: Context) -> None:
        async with ctx.step('say "hi" \\\\ now'):
            r = await ctx.http.get("/")
            assert r.status_code == 200
"""


class TestDaemonMetrics:
    async def test_scrape_serves_pair_families_once_from_the_text_writer(
        self, shop: RunningShop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """/metrics of a daemon built as `synthmon run` builds it carries the journey's
        series (odd step name intact, location set) with every family exactly once, and
        the pair families come from the text writer: collect() builds none of them."""
        monkeypatch.setenv("SYNTHMON_LOCATION", "eu-1")
        settings = make_settings(tmp_path, targets={"demo": shop.url}, journeys={"h.py": ODD_STEPS})
        async with run_daemon(settings) as (daemon, results):
            await results.wait_for(lambda rs: len(rs) >= 1, timeout=10)
            await daemon.fanout.flush()
            built = families_built(daemon.metrics.collector)
            text = await scrape(daemon)
        names = [f.name for f in text_string_to_metric_families(text)]
        assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
        labels = {"journey": "home", "target": "demo", "location": "eu-1"}
        assert (sample(text, "synthmon_journey_runs_total", result="success", **labels) or 0) >= 1
        assert sample(text, "synthmon_journey_step_success", step='say "hi" \\ now', **labels) == 1
        assert sample(text, "synthmon_journey_info", journey="home", location="eu-1") == 1
        assert "synthmon_scheduler_lag_seconds" in names
        assert built == []

    async def test_a_scraper_asking_for_gzip_gets_it(
        self, shop: RunningShop, tmp_path: Path
    ) -> None:
        """Prometheus sends `Accept-Encoding: gzip`: /metrics answers gzip-encoded, the same
        series as the plain body, in a fraction of its bytes; without it, plain text."""
        settings = make_settings(tmp_path, targets={"demo": shop.url}, journeys={"h.py": ODD_STEPS})
        async with run_daemon(settings) as (daemon, results):
            await results.wait_for(lambda rs: len(rs) >= 1, timeout=10)
            await daemon.fanout.flush()
            url = f"{daemon.server.url}/metrics"
            async with httpx.AsyncClient() as client:
                zipped = await client.get(url, headers={"Accept-Encoding": "gzip"})
                plain = await client.get(url, headers={"Accept-Encoding": "identity"})
        assert zipped.headers["Content-Encoding"] == "gzip"
        assert "Content-Encoding" not in plain.headers
        assert int(zipped.headers["Content-Length"]) < len(plain.content) / 2
        labels = {"journey": "home", "target": "demo"}
        for text in (zipped.text, plain.text):
            assert (
                sample(text, "synthmon_journey_runs_total", result="success", **labels) or 0
            ) >= 1
