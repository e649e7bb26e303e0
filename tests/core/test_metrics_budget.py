"""The series budget per (journey, target) and the pair-state Collector, through the
daemon as `synthmon run` builds it (docs/metrics.md, "Series budget")."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from synthmon.config.settings import load_settings
from synthmon_demo import RunningShop
from tests.conftest import set_chaos
from tests.harness import make_settings, run_daemon, sample, scrape, write_config, write_journeys
from tests.tls.pki import Pki, tls_server

# The budget docs/metrics.md states for a one-step HTTP journey on one target: the run
# metrics, and what the history adds (slots by outcome, availability per window,
# incidents; MTTR/MTBF only once there was an incident).
SERIES_PER_PAIR = 26
HISTORY_SERIES = {"synthmon_slots_total": 6, "synthmon_journey_availability_ratio": 3}
HISTORY_SERIES["synthmon_journey_incidents_total"] = 1
# Per HTTPS host a target's journeys reach (docs/metrics.md, "TLS certificates"):
# not_after for leaf and earliest, info for each. No journey label: per (target, host).
TLS_SERIES_PER_HOST = 4
HISTORY_PREFIXES = (
    "synthmon_slots_",
    "synthmon_journey_availability_",
    "synthmon_journey_incidents_",
    "synthmon_journey_mttr_",
    "synthmon_journey_mtbf_",
    "synthmon_journey_mttd_",
)

ONE_STEP = """
    from synthmon import Context, journey

    @journey(severity="critical", interval="1s", timeout="1s")
    async def home(ctx: Context) -> None:
        async with ctx.step("home"):
            r = await ctx.http.get("/")
            assert r.status_code == 200
"""

OTHER = ONE_STEP.replace("def home", "def other")


def series_of(text: str, journey: str, *, history: bool = False) -> list[str]:
    """The journey's series: the run metrics, or (history=True) the history's."""
    return [
        f"{s.name}{sorted(s.labels.items())}"
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("journey") == journey and s.name.startswith(HISTORY_PREFIXES) == history
    ]


class TestSeriesBudget:
    async def test_one_http_pair_exports_the_budgeted_series(
        self, shop: RunningShop, tmp_path: Path
    ) -> None:
        """A one-step HTTP journey on one target exports exactly the documented number of
        series, and no `_created` series at all."""
        settings = make_settings(tmp_path, targets={"demo": shop.url}, journeys={"h.py": ONE_STEP})
        async with run_daemon(settings) as (daemon, results):
            await results.wait_for(lambda rs: len(rs) >= 2, timeout=10)
            await daemon.fanout.flush()
            text = await scrape(daemon)
        assert len(series_of(text, "home")) == SERIES_PER_PAIR, series_of(text, "home")
        history = series_of(text, "home", history=True)
        assert len(history) == sum(HISTORY_SERIES.values()), history
        assert "_created" not in text

    async def test_step_histograms_are_opt_in(self, shop: RunningShop, tmp_path: Path) -> None:
        """`[metrics] step_histograms = true` adds the per-step duration histogram."""
        settings = make_settings(
            tmp_path,
            targets={"demo": shop.url},
            journeys={"h.py": ONE_STEP},
            extra_toml="[metrics]\nstep_histograms = true\n",
        )
        async with run_daemon(settings) as (daemon, results):
            await results.wait_for(lambda rs: len(rs) >= 1, timeout=10)
            await daemon.fanout.flush()
            text = await scrape(daemon)
        labels = {"journey": "home", "target": "demo", "step": "home"}
        assert (sample(text, "synthmon_journey_step_duration_seconds_count", **labels) or 0) >= 1
        assert len(series_of(text, "home")) == SERIES_PER_PAIR + 11

    async def test_an_https_host_adds_the_tls_series_and_nothing_per_journey(
        self, tmp_path: Path
    ) -> None:
        """A journey against an https:// target keeps its 26 series and adds the TLS
        series of its host (4, labelled target and host, not journey)."""
        pki = Pki.make(tmp_path / "pki", leaf_days=60)
        async with tls_server(pki) as server:
            jdir = write_journeys(tmp_path / "journeys", {"h.py": ONE_STEP})
            body = (
                f'journeys_dir = "{jdir}"\ndata_dir = "{tmp_path / "data"}"\n'
                f'[server]\nlisten = "127.0.0.1:0"\n'
                f'[targets.tls]\nbase_url = "{server.url}"\nverify_tls = false\n'
            )
            settings = load_settings(write_config(tmp_path / "synthmon.toml", body))
            async with run_daemon(settings) as (daemon, results):
                await results.wait_for(lambda rs: len(rs) >= 2, timeout=10)
                await daemon.fanout.flush()
                text = await scrape(daemon)
        assert len(series_of(text, "home")) == SERIES_PER_PAIR, series_of(text, "home")
        tls = [
            s.labels
            for family in text_string_to_metric_families(text)
            if family.name.startswith("synthmon_tls_")
            for s in family.samples
        ]
        assert len(tls) == TLS_SERIES_PER_HOST, tls
        assert all(labels["target"] == "tls" and "journey" not in labels for labels in tls)


class TestPairCollector:
    async def test_removed_journey_vanishes_at_the_next_scrape(
        self, shop: RunningShop, tmp_path: Path
    ) -> None:
        """Every series of a journey whose file is deleted (runs, steps, skips, alert
        state, pause) is gone from the next scrape; the other journey keeps its own."""
        settings = make_settings(
            tmp_path, targets={"demo": shop.url}, journeys={"h.py": ONE_STEP, "o.py": OTHER}
        )
        # Before the daemon starts: a first run that lands before the switch would pass
        # and add a last_success series (seen under load).
        await set_chaos(shop, "error", paths=["/"])
        async with run_daemon(settings) as (daemon, results):
            # The other journey's failure must be counted before the reload, or the
            # last assertion races its first run.
            await results.wait_for(
                lambda rs: (
                    len(results.of("home")) >= 2 and any(not r.ok for r in results.of("other"))
                ),
                timeout=10,
            )
            await daemon.fanout.flush()
            before = await scrape(daemon)
            (settings.journeys_dir / "h.py").unlink()
            daemon.reload()
            after = await scrape(daemon)
        assert sample(before, "synthmon_alert_state", journey="home") is not None
        # Never passed: no last_success series yet.
        assert len(series_of(before, "home")) == SERIES_PER_PAIR - 1, series_of(before, "home")
        assert series_of(after, "home") == []
        assert series_of(after, "home", history=True) == []
        assert sample(after, "synthmon_journey_runs_total", journey="other", result="failure")

    async def test_metrics_render_off_the_event_loop(
        self, shop: RunningShop, tmp_path: Path
    ) -> None:
        """/metrics is built in a thread of its own, so a large render never stalls runs."""
        seen: list[str] = []

        class Probe:
            def collect(self) -> Iterator[Metric]:
                seen.append(threading.current_thread().name)
                yield GaugeMetricFamily("probe_thread", "test probe", value=1)

        settings = make_settings(tmp_path, targets={"demo": shop.url}, journeys={"h.py": ONE_STEP})
        async with run_daemon(settings) as (daemon, _):
            daemon.registry.register(Probe())
            text = await scrape(daemon)
        assert "probe_thread 1.0" in text
        assert seen and seen[-1] != threading.main_thread().name
        assert seen[-1].startswith("synthmon-metrics")


class TestInlineSinks:
    async def test_a_failing_inline_sink_is_counted_and_spares_the_others(
        self, shop: RunningShop, tmp_path: Path
    ) -> None:
        """A sink called inline (it has `record`) that raises is counted in
        synthmon_sink_problems_total; runs go on and every other sink still gets them."""

        class Broken:
            def record(self, result: object) -> None:
                raise RuntimeError("boom")

            async def emit(self, result: object) -> None:
                self.record(result)

        settings = make_settings(tmp_path, targets={"demo": shop.url}, journeys={"h.py": ONE_STEP})
        async with run_daemon(settings, extra_sinks=[("broken", Broken())]) as (daemon, results):
            await results.wait_for(lambda rs: len(rs) >= 2, timeout=10)
            await daemon.fanout.flush()
            text = await scrape(daemon)
        assert (
            sample(text, "synthmon_sink_problems_total", sink="broken", problem="error") or 0
        ) >= 2
        assert (
            sample(text, "synthmon_journey_runs_total", journey="home", result="success") or 0
        ) >= 2
