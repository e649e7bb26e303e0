"""Retries and re-checks through the daemon: they confirm an outage fast at any
interval, take over the pair's next slot instead of running beside it, stop once the
alert fires, and a journey that loses them is named at start-up and by `check`."""

from __future__ import annotations

import io
import time
from itertools import pairwise
from pathlib import Path

import pytest

from synthmon.cli.check import check
from synthmon_demo import RunningShop
from tests.alerting.conftest import Alertmanager, Receiver
from tests.alerting.test_alertmanager import alerting_toml
from tests.conftest import set_chaos
from tests.harness import make_settings, run_daemon, sample, scrape

JOURNEY = """
from synthmon import Context, journey

@journey(severity="critical", interval="{interval}"{extra})
async def home(ctx: Context) -> None:
    async with ctx.step("home"):
        r = await ctx.http.get("/")
        assert r.status_code == 200, f"home page answered {{r.status_code}}"
"""


def journeys(interval: str, extra: str = "") -> dict[str, str]:
    return {"home.py": JOURNEY.format(interval=interval, extra=extra)}


class TestRechecksDuringAnOutage:
    @pytest.mark.slow
    async def test_recheck_takes_the_next_slot_and_stops_once_firing(
        self, tmp_path: Path, shop: RunningShop, alertmanager: Alertmanager, receiver: Receiver
    ) -> None:
        """A retry + re-check chain longer than the interval replaces the slot it
        overruns (no `overlap` skip), and once the alert fires the down target gets one
        attempt per interval, not a chain per interval."""
        settings = make_settings(
            tmp_path,
            targets={"demo": shop.url},
            journeys=journeys("2s", ', timeout="0.5s"'),
            extra_toml=alerting_toml(alertmanager, receiver, retry_delay="1.2s"),
        )
        async with run_daemon(settings) as (daemon, results):
            await results.wait_for(lambda rs: any(r.ok for r in rs))
            await set_chaos(shop, "error")
            await receiver.wait_for("/webhook", 1, within=20)
            fired = time.time()
            await results.wait_for(lambda rs: rs[-1].started_at > fired + 9.0, timeout=30)
            text = await scrape(daemon)
        overlap = sample(
            text, "synthmon_journey_skipped_runs_total", journey="home", target="demo",
            reason="overlap",
        )  # fmt: skip
        assert not overlap
        after = [r for r in results.results if fired + 1.0 <= r.started_at <= fired + 9.0]
        # 8 s of a 2 s interval: 4 scheduled runs (5 at a slot boundary), no retries.
        assert len(after) <= 5, [(round(r.started_at - fired, 2), r.attempt) for r in after]
        assert not any(r.retried for r in after)
        starts = sorted(r.started_at for r in results.results)
        ends = sorted(r.started_at + r.duration for r in results.results)
        assert all(s >= e - 1e-3 for s, e in zip(starts[1:], ends, strict=False)), (
            "two attempts of one pair ran at once"
        )


class TestRetriesAtShortIntervals:
    @pytest.mark.slow
    async def test_ten_second_critical_journey_keeps_retry_and_recheck(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """A critical journey every 10 s with the default timeout (10 s): its first
        failed run is retried, then re-checked, a tenth of the interval apart."""
        settings = make_settings(tmp_path, targets={"demo": shop.url}, journeys=journeys("10s"))
        await set_chaos(shop, "error")
        async with run_daemon(settings) as (_, results):
            await results.wait_for(lambda rs: len(rs) >= 3, timeout=20)
        attempts = sorted(results.results, key=lambda r: r.started_at)[:3]
        assert not any(r.ok for r in attempts)
        assert [(r.retried, r.attempt) for r in attempts] == [(True, 1), (False, 2), (False, 1)]
        gaps = [b.started_at - (a.started_at + a.duration) for a, b in pairwise(attempts)]
        assert all(0.9 <= g <= 2.5 for g in gaps), gaps

    async def test_dropped_retries_are_named_at_start_up(
        self, tmp_path: Path, shop: RunningShop, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A retry_delay as long as the interval drops retries and re-checks, and the
        start-up log says which journey and why."""
        settings = make_settings(
            tmp_path,
            targets={"demo": shop.url},
            journeys=journeys("10s", ', alert={"retry_delay": "10s"}'),
        )
        async with run_daemon(settings):
            pass
        out = capsys.readouterr().out
        [line] = [x for x in out.splitlines() if "retries_dropped" in x]
        assert "home" in line
        assert "retry_delay (10s) is not shorter than the interval (10s)" in line


class TestCheckNamesDroppedRetries:
    def test_check_warns_with_file_line_and_reason(self, tmp_path: Path) -> None:
        """`synthmon check` names each journey that loses its retries, with file:line
        and the reason, as a warning (the config still works)."""
        settings = make_settings(
            tmp_path,
            targets={"demo": "http://127.0.0.1:1"},
            journeys=journeys("10s", ', alert={"retry_delay": "15s"}'),
        )
        out, err = io.StringIO(), io.StringIO()
        assert check(settings, None, out=out, err=err) == 0
        [line] = [x for x in err.getvalue().splitlines() if "retries" in x]
        assert line.startswith("warning: ")
        assert "home.py:3: journey 'home': retries and re-checks dropped" in line
        assert "retry_delay (15s) is not shorter than the interval (10s)" in line

    def test_defaults_keep_retries_at_ten_seconds(self, tmp_path: Path) -> None:
        """With the defaults a 10 s critical journey loses nothing: no warning."""
        settings = make_settings(
            tmp_path, targets={"demo": "http://127.0.0.1:1"}, journeys=journeys("10s")
        )
        err = io.StringIO()
        assert check(settings, None, out=io.StringIO(), err=err) == 0
        assert "retries" not in err.getvalue()
