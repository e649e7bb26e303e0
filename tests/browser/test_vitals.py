"""Web Vitals of browser journeys, measured in real Chromium against demo-shop pages
built to have a known slow LCP, a layout shift and a slow interaction, through the
daemon as `synthmon run` builds it (docs/browser.md, "Web Vitals")."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from synthmon import Context, journey
from synthmon.config.vitals import GOOD, POOR
from synthmon.journeys.context import RunRecord
from synthmon.model import PageVitals, RunRequest, Status
from synthmon.runners.browser.vitals import MAX_DOCUMENTS, VitalsRecorder
from synthmon_demo import RunningShop
from synthmon_demo.vitals import HERO_DELAY, SLOW_CLICK_MS
from tests.alerting.conftest import Receiver, receiver
from tests.browser.conftest import NO_SANDBOX, MakeRunner, target_for
from tests.core.test_metrics_budget import SERIES_PER_PAIR, series_of
from tests.harness import (
    make_settings,
    run_daemon,
    sample,
    scrape,
    synthmon_check,
)
from tests.history.conftest import check, eventually

__all__ = ["receiver"]

# 7 d, not 1 h: the daemons here run these journeys by hand (run_pair), and an hourly
# journey's own slot (a fixed phase in the hour) could fall inside a test and add a run.
PAGE_EXPERIENCE = """
from synthmon import Context, journey

@journey(kind="browser", severity="critical", interval="7d", timeout="40s")
async def page_experience(ctx: Context) -> None:
    page = ctx.page
    async with ctx.step("fast"):
        await page.goto("/vitals/fast")
        await page.click("#quick")
        await page.wait_for_selector("text=done")
    async with ctx.step("hero"):
        await page.goto("/vitals/slow-hero")
    async with ctx.step("shifty"):
        await page.goto("/vitals/shifty")
        await page.wait_for_selector("#banner")
        await page.click("#slow")
        await page.wait_for_selector("text=done")
"""

SLOW_HERO = """
from synthmon import Context, journey

@journey(kind="browser", severity="critical", interval="7d", timeout="30s",
         alert={"resolve_passes": 1})
async def offer(ctx: Context) -> None:
    async with ctx.step("hero"):
        await ctx.page.goto("/vitals/slow-hero")
"""


def _browser_toml() -> str:
    return f"[browser]\nno_sandbox = {str(NO_SANDBOX).lower()}\n"


def _by_step(pages: tuple[PageVitals, ...]) -> dict[str, dict[str, float]]:
    return {p.step: dict(p.values) for p in pages}


class TestWebVitalsThroughTheDaemon:
    async def test_values_land_in_their_bands_and_reach_metrics_and_api(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """Per step: the fast page is good on every vital, the slow hero's LCP is past
        2.5 s, the shifted page's CLS and slow click's INP are in needs-improvement;
        the run passes but is degraded, and /metrics and /api/runs/{id} carry them."""
        settings = make_settings(
            tmp_path,
            targets={"demo": shop.url},
            journeys={"experience.py": PAGE_EXPERIENCE},
            extra_toml=_browser_toml() + '[history]\nflush_interval = "100ms"\n',
        )
        async with run_daemon(settings) as (daemon, _):
            result = await daemon.run_pair(*daemon.pairs["page_experience@demo"])
            await daemon.fanout.flush()
            text = await scrape(daemon)
            async with httpx.AsyncClient(base_url=daemon.server.url) as client:

                async def stored() -> dict[str, Any] | None:
                    r = await client.get(f"/api/runs/{result.run_id}")
                    return check("/api/runs/{run_id}", r) if r.status_code == 200 else None

                api = (await eventually(stored, what="run stored"))["run"]
                journeys = (await client.get("/api/journeys")).json()["journeys"]
        assert result.status is Status.SUCCESS, result.error_message
        got = _by_step(result.web_vitals)
        assert set(got) == {"fast", "hero", "shifty"}, result.web_vitals
        fast, hero, shifty = got["fast"], got["hero"], got["shifty"]
        for metric, good in GOOD.items():
            assert fast[metric] <= good, (metric, fast)
        assert fast["requests"] >= 2 and fast["transfer_bytes"] > 0
        # The hero image arrives HERO_DELAY s after it was asked for.
        assert hero["LCP"] >= HERO_DELAY > GOOD["LCP"]
        assert hero["FCP"] <= GOOD["FCP"]
        assert hero["transfer_bytes"] > 200_000  # the hero image is ~290 kB of noise
        assert GOOD["CLS"] < shifty["CLS"] <= POOR["CLS"]
        assert shifty["INP"] >= SLOW_CLICK_MS / 1000 > GOOD["INP"]
        over = {p.step: dict(p.breaches) for p in result.web_vitals}
        assert over == {"fast": {}, "hero": {"LCP": 2.5}, "shifty": {"CLS": 0.1, "INP": 0.2}}
        # /metrics: one gauge per step and metric, in base units.
        labels = {"journey": "page_experience", "target": "demo"}
        lcp = sample(text, "synthmon_browser_web_vital", step="hero", metric="LCP", **labels)
        assert lcp == pytest.approx(hero["LCP"])
        cls = sample(text, "synthmon_browser_web_vital", step="shifty", metric="CLS", **labels)
        assert cls == pytest.approx(shifty["CLS"])
        assert sample(text, "synthmon_journey_success", **labels) == 1
        assert sample(text, "synthmon_journey_degraded", **labels) == 1
        # History and API: the same values per document, with what was over its threshold.
        pages = {p["step"]: p for p in api["web_vitals"]}
        assert pages["hero"]["values"]["LCP"] == pytest.approx(hero["LCP"])
        assert pages["hero"]["url"] == f"{shop.url}/vitals/slow-hero"
        assert pages["shifty"]["over_threshold"] == {"CLS": 0.1, "INP": 0.2}
        assert api["status"] == "success"
        last = journeys[0]["last_result"]
        assert last["status"] == "success" and last["web_vitals"] == api["web_vitals"]

    async def test_a_slow_page_notifies_at_warning_and_never_pages(
        self, tmp_path: Path, shop: RunningShop, receiver: Receiver
    ) -> None:
        """A critical journey whose page has a slow LCP passes, but after two runs
        SyntheticJourneyDegraded fires as a warning: the webhook and Slack hear of it
        with the LCP and the step, PagerDuty never does, the journey shows as degraded."""
        settings = make_settings(
            tmp_path,
            targets={"demo": shop.url},
            journeys={"offer.py": SLOW_HERO},
            extra_toml=_browser_toml()
            + f"""
            [alerting.pagerduty]
            routing_key = {{ env = "TEST_PD_KEY" }}
            url = "{receiver.url}/pd"
            [alerting.slack]
            url = {{ env = "TEST_SLACK_URL" }}
            [alerting.webhook]
            url = {{ env = "TEST_WEBHOOK_URL" }}
            """,
        )
        async with run_daemon(settings) as (daemon, _):
            pair = daemon.pairs["offer@demo"]
            runs = [await daemon.run_pair(*pair) for _ in range(2)]
            await daemon.fanout.flush()
            [hook] = await receiver.wait_for("/webhook", 1, within=20)
            [slack] = await receiver.wait_for("/slack", 1, within=20)
            await asyncio.sleep(0.5)  # anything sent to PagerDuty would be here by now
            text = await scrape(daemon)
            async with httpx.AsyncClient(base_url=daemon.server.url) as client:
                [state] = (await client.get("/api/journeys")).json()["journeys"]
        assert [r.status for r in runs] == [Status.SUCCESS, Status.SUCCESS]
        assert "/pd" not in receiver.bodies
        assert (hook["alertname"], hook["severity"]) == ("SyntheticJourneyDegraded", "warning")
        assert hook["summary"] == "Journey offer on demo is over its Web Vitals thresholds"
        error = hook["error_message"]
        assert error.startswith("LCP ") and float(error.split()[1].rstrip("s")) >= HERO_DELAY
        assert "(needs improvement) over 2.5s" in error or "(poor) over 2.5s" in error
        assert error.endswith(f"over 2.5s at step 'hero' ({shop.url}/vitals/slow-hero)")
        assert "[warning]" in slack["text"] and "LCP" in slack["text"]
        assert "*Degraded runs:*" in slack["text"] and "Failed runs" not in slack["text"]
        labels = {"journey": "offer", "target": "demo"}
        assert sample(text, "synthmon_journey_success", **labels) == 1
        assert sample(text, "synthmon_journey_runs_total", result="success", **labels) == 2
        assert sample(text, "synthmon_journey_consecutive_failures", **labels) == 0
        assert (
            sample(text, "synthmon_alert_state", alertname="SyntheticJourneyDegraded", **labels)
            == 2
        )
        assert (
            sample(text, "synthmon_alert_state", alertname="SyntheticJourneyFailed", **labels) == 0
        )
        assert state["state"] == "degraded" and state["alert_state"] == "ok"


ONE_PAGE = """
from synthmon import Context, journey

@journey(kind="browser", interval="1h", timeout="20s")
async def one_page(ctx: Context) -> None:
    async with ctx.step("home"):
        await ctx.page.goto("/vitals/fast")
"""
# Per navigating step: TTFB, FCP, LCP, CLS, transfer_bytes, requests (+ INP after an
# interaction); per pair: synthmon_journey_degraded and the SyntheticJourneyDegraded
# alert state, since every browser journey has thresholds by default.
VITALS_SERIES_PER_STEP = 6
DEGRADED_SERIES = 2


class TestSeriesBudget:
    async def test_one_step_browser_journey_exports_the_budgeted_series(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """A one-step browser journey loading one page without interaction exports the
        HTTP journey's budget, six web-vital gauges and the two degraded series."""
        settings = make_settings(
            tmp_path,
            targets={"demo": shop.url},
            journeys={"one.py": ONE_PAGE},
            extra_toml=_browser_toml(),
        )
        async with run_daemon(settings) as (daemon, _):
            result = await daemon.run_pair(*daemon.pairs["one_page@demo"])
            await daemon.fanout.flush()
            text = await scrape(daemon)
        assert result.status is Status.SUCCESS, result.error_message
        series = series_of(text, "one_page")
        vitals = [s for s in series if s.startswith("synthmon_browser_web_vital")]
        assert len(vitals) == VITALS_SERIES_PER_STEP, vitals
        assert len(series) == SERIES_PER_PAIR + VITALS_SERIES_PER_STEP + DEGRADED_SERIES, series


@journey(kind="browser", interval="1h", timeout="30s", web_vitals={"LCP": "5s", "CLS": None})
async def relaxed(ctx: Context) -> None:
    """Tolerates the slow hero: LCP up to 5 s, no CLS threshold."""
    async with ctx.step("hero"):
        await ctx.page.goto("/vitals/slow-hero")
    async with ctx.step("shifty"):
        await ctx.page.goto("/vitals/shifty")
        await ctx.page.wait_for_selector("#banner")


@journey(kind="browser", interval="1h", timeout="30s", web_vitals=False)
async def unjudged(ctx: Context) -> None:
    """Measured, never judged."""
    async with ctx.step("hero"):
        await ctx.page.goto("/vitals/slow-hero")


@journey(kind="browser", interval="1h", timeout="30s")
async def stepless(ctx: Context) -> None:
    """Loads a page outside every step, then one inside."""
    await ctx.page.goto("/vitals/fast")
    async with ctx.step("again"):
        await ctx.page.goto("/vitals/fast")


class TestThresholds:
    async def test_journey_thresholds_replace_the_defaults(
        self, make_runner: MakeRunner, shop: RunningShop
    ) -> None:
        """web_vitals={"LCP": "5s", "CLS": None}: the slow hero and the shifted page
        are within the journey's thresholds; web_vitals=False measures but never
        judges."""
        runner = make_runner()
        target = target_for(shop.url)
        one = await runner.run(RunRequest(journey=relaxed, target=target, run_id="r1"))
        two = await runner.run(RunRequest(journey=unjudged, target=target, run_id="r2"))
        assert (one.status, two.status) == (Status.SUCCESS, Status.SUCCESS)
        assert _by_step(one.web_vitals)["hero"]["LCP"] >= HERO_DELAY
        assert _by_step(one.web_vitals)["shifty"]["CLS"] > GOOD["CLS"]
        assert not one.vitals_breached and not two.vitals_breached
        assert _by_step(two.web_vitals)["hero"]["LCP"] >= HERO_DELAY

    async def test_a_page_loaded_outside_steps_is_labelled_none(
        self, make_runner: MakeRunner, shop: RunningShop
    ) -> None:
        """A page.goto outside every ctx.step is attributed to the step "(none)"; the
        next document to its own step."""
        runner = make_runner()
        result = await runner.run(
            RunRequest(journey=stepless, target=target_for(shop.url), run_id="r3")
        )
        assert [p.step for p in result.web_vitals] == ["(none)", "again"]


class TestSwitchedOff:
    async def test_browser_web_vitals_false_injects_nothing_and_judges_nothing(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """With `[browser] web_vitals = false` the page gets no script (no binding in
        the page), runs carry no values, no gauge is exported and the slow hero does
        not degrade the journey."""
        probe = SLOW_HERO.replace(
            '        await ctx.page.goto("/vitals/slow-hero")',
            '        await ctx.page.goto("/vitals/slow-hero")\n'
            '        assert await ctx.page.evaluate("typeof __synthmonVital") == "undefined"',
        )
        settings = make_settings(
            tmp_path,
            targets={"demo": shop.url},
            journeys={"offer.py": probe},
            extra_toml=_browser_toml() + "web_vitals = false\n",
        )
        async with run_daemon(settings) as (daemon, _):
            result = await daemon.run_pair(*daemon.pairs["offer@demo"])
            await daemon.fanout.flush()
            text = await scrape(daemon)
        assert result.status is Status.SUCCESS, result.error_message
        assert result.web_vitals == ()
        assert "synthmon_browser_web_vital{" not in text
        assert sample(text, "synthmon_journey_degraded", journey="offer", target="demo") == 0


class TestRecorder:
    def test_what_a_page_forges_is_dropped(self) -> None:
        """The page can call the binding itself: unknown metrics, negative or
        non-finite values, non-http documents, calls of another shape and documents
        beyond the cap are dropped; query strings and credentials never leave."""
        clock = iter(range(1000)).__next__
        recorder = VitalsRecorder(clock=lambda: float(clock()), wall=lambda: 0.0)
        page = "https://user:pw@shop.example/p?token=secret#x"
        recorder._on_vital(None, 1.0, page, {"LCP": 1200, "EVIL": 1, "CLS": -1, "FCP": "x"})
        recorder._on_vital(None, 2.0, page, {"TTFB": float("nan"), "INP": float("inf")})
        recorder._on_vital(None, 3.0, "about:blank", {"LCP": 100})
        recorder._on_vital(None, 4.0, page)  # another shape
        for n in range(100):
            recorder.record_all(10.0 + n, page, {"requests": 1})
        run = RunRecord(classify=lambda e: (Status.ERROR, None), describe=lambda e: ("", ""))
        pages = recorder.pages(run, {"LCP": 1.0})
        assert len(pages) == MAX_DOCUMENTS
        assert pages[0] == PageVitals(
            step="(none)",
            url="https://shop.example/p",
            values=(("LCP", 1.2),),
            breaches=(("LCP", 1.0),),
        )


BAD_THRESHOLDS = """
from synthmon import Context, journey


@journey(kind="browser", web_vitals={"LPC": "2s"})
async def typo(ctx: Context) -> None:
    pass


@journey(kind="browser", web_vitals={"LCP": "fast", "CLS": "0.1"})
async def bad_values(ctx: Context) -> None:
    pass


@journey(web_vitals={"LCP": "2s"})
async def http_only(ctx: Context) -> None:
    pass
"""


class TestBadThresholds:
    def test_check_names_journey_and_field(self, tmp_path: Path) -> None:
        """An unknown metric, a bad duration, a CLS given as text and thresholds on an
        HTTP journey are each listed by `synthmon check` with the journey, the field
        and what to write instead; check exits 1."""
        _, out = synthmon_check(tmp_path, {"vitals.py": BAD_THRESHOLDS})
        assert out.returncode == 1, out
        text = out.stdout + out.stderr
        assert "journey 'typo': web_vitals: unknown metric 'LPC'" in text, text
        assert "TTFB, FCP, LCP, CLS, INP" in text
        assert "journey 'bad_values': web_vitals: LCP='fast'" in text, text
        assert "CLS='0.1': CLS is a unitless score" in text
        assert "journey 'http_only': web_vitals= applies to browser journeys only" in text
