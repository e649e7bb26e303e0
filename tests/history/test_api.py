"""The history through the daemon as `synthmon run` builds it: runs, slots and
incidents stored, served by the API, every response valid against /api/openapi.json."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from synthmon_demo import RunningShop
from tests.conftest import set_chaos
from tests.harness import make_settings, run_daemon, sample, scrape
from tests.history.conftest import (
    FAST_CRITICAL,
    HISTORY_FAST,
    assert_grid_covered,
    check,
    eventually,
)


class TestHistoryApi:
    async def test_runs_slots_incidents_and_stats(self, shop: RunningShop, tmp_path: Path) -> None:
        """An outage becomes an incident (opened when the alert fires, closed when it
        resolves); runs, slots and figures are served and match the OpenAPI schema."""
        settings = make_settings(
            tmp_path,
            targets={"demo": shop.url},
            journeys={"h.py": FAST_CRITICAL},
            extra_toml=HISTORY_FAST,
        )
        async with (
            run_daemon(settings) as (daemon, results),
            httpx.AsyncClient(base_url=daemon.server.url) as c,
        ):
            await results.wait_for(lambda rs: len(rs) >= 2, timeout=10)
            await set_chaos(shop, "error")

            async def open_incidents() -> list[dict[str, Any]]:
                body = check("/api/incidents", await c.get("/api/incidents?open=true"))
                return list(body["incidents"])

            opened = (await eventually(open_incidents, what="an open incident"))[0]
            await set_chaos(shop, "ok")

            async def closed() -> list[dict[str, Any]]:
                body = check("/api/incidents", await c.get("/api/incidents?open=false"))
                return list(body["incidents"])

            incident = (await eventually(closed, what="the incident resolved"))[0]

            async def stats_seen() -> dict[str, Any] | None:
                body = check("/api/journeys", await c.get("/api/journeys"))
                j = body["journeys"][0]
                stats = j["stats"]
                return j if stats and stats["24h"]["mttr_seconds"] is not None else None

            journey = await eventually(stats_seen, what="MTTR computed")
            runs = check(
                "/api/journeys/{name}/runs", await c.get("/api/journeys/home/runs?limit=2")
            )
            page2 = check(
                "/api/journeys/{name}/runs",
                await c.get(f"/api/journeys/home/runs?limit=2&cursor={runs['next_cursor']}"),
            )
            failed = check(
                "/api/journeys/{name}/runs",
                await c.get("/api/journeys/home/runs?result=failure&target=demo"),
            )
            detail = check(
                "/api/runs/{run_id}", await c.get(f"/api/runs/{failed['runs'][0]['run_id']}")
            )
            one = check("/api/journeys/{name}", await c.get("/api/journeys/home"))
            slots = check("/api/slots", await c.get("/api/slots?journey=home"))
            text = await scrape(daemon)
        # The incident: first failed attempt, fired, recovered, with what broke.
        assert incident["failed_step"] == "open home"
        assert "500" in (incident["first_error"] or "")
        assert incident["started_at"] < incident["detected_at"] < incident["ended_at"]
        assert opened["incident"] == incident["incident"] and incident["severity"] == "critical"
        # The figures, in the API and in /metrics.
        w = journey["stats"]["24h"]
        assert w["incidents"] == 1 and w["mttr_seconds"] == pytest.approx(
            incident["duration_seconds"], abs=0.01
        )
        assert 0 < w["availability"] < 1 and journey["state"] in ("passing", "degraded")
        labels = {"journey": "home", "target": "demo"}
        assert sample(text, "synthmon_journey_incidents_total", **labels) == 1
        assert sample(text, "synthmon_journey_mttr_seconds", window="24h", **labels)
        assert sample(text, "synthmon_journey_availability_ratio", window="7d", **labels)
        assert (sample(text, "synthmon_slots_total", outcome="failed", **labels) or 0) >= 2
        assert (sample(text, "synthmon_slots_total", outcome="passed", **labels) or 0) >= 3
        assert sample(text, "synthmon_history_up") == 1
        # Runs: newest first, paginated without overlap, filtered, in full with steps.
        ids = [r["id"] for r in runs["runs"] + page2["runs"]]
        assert ids == sorted(ids, reverse=True) and len(set(ids)) == 4
        assert failed["runs"] and all(r["status"] == "failure" for r in failed["runs"])
        run = detail["run"]
        assert run["failed_step"] == "open home" and run["steps"][0]["name"] == "open home"
        assert run["scheduled_at"] is not None and run["trace_id"]
        assert one["recent_runs"] and one["incidents"][0]["incident"] == incident["incident"]
        assert {s["outcome"] for s in slots["slots"]} >= {"passed", "failed"}

    async def test_bad_parameters_are_named(self, shop: RunningShop, tmp_path: Path) -> None:
        """A bad parameter gets 400 naming it; unknown journeys and runs get 404."""
        settings = make_settings(
            tmp_path,
            targets={"demo": shop.url},
            journeys={"h.py": FAST_CRITICAL},
            extra_toml=HISTORY_FAST,
        )
        async with (
            run_daemon(settings) as (daemon, _),
            httpx.AsyncClient(base_url=daemon.server.url) as c,
        ):
            cases = {
                "/api/journeys/home/runs?since=yesterday": "since",
                "/api/journeys/home/runs?limit=0": "limit",
                "/api/journeys/home/runs?result=broken": "result",
                "/api/journeys/home/runs?cursor=zzz": "cursor",
                "/api/journeys/home/runs?colour=red": "colour",
                "/api/journeys/home/runs?since=200&until=100": "until",
                "/api/incidents?open=maybe": "open",
                "/api/slots?outcome=lost": "outcome",
            }
            answers = {url: await c.get(url) for url in cases}
            missing = await c.get("/api/journeys/nope/runs")
            no_run = await c.get("/api/runs/0123")
            spec = (await c.get("/api/openapi.json")).json()
        for url, parameter in cases.items():
            assert answers[url].status_code == 400, url
            assert answers[url].json()["parameter"] == parameter, url
            assert parameter in answers[url].json()["error"]
        assert missing.status_code == 404 and "nope" in missing.json()["error"]
        assert no_run.status_code == 404
        assert spec["openapi"].startswith("3.1") and "/api/journeys/{name}/runs" in spec["paths"]


class TestSilenceApi:
    async def test_create_list_expire_with_token(self, shop: RunningShop, tmp_path: Path) -> None:
        """Silences are created, listed and expired over HTTP; with a token configured,
        a request without it changes nothing."""
        settings = make_settings(
            tmp_path, targets={"demo": shop.url}, journeys={"h.py": FAST_CRITICAL}
        )
        token = SecretStr("s3cret-token")
        settings = settings.model_copy(
            update={"server": settings.server.model_copy(update={"api_token": token})}
        )
        auth = {"Authorization": "Bearer s3cret-token"}
        async with (
            run_daemon(settings) as (daemon, _),
            httpx.AsyncClient(base_url=daemon.server.url) as c,
        ):
            refused = await c.post("/api/silences", json={"journey": "home", "comment": "x"})
            bad = await c.post(
                "/api/silences",
                json={"journey": "home", "duration": "soon", "comment": "x"},
                headers=auth,
            )
            made = await c.post(
                "/api/silences",
                json={"journey": "home", "duration": "2h", "comment": "deploy 4711"},
                headers=auth,
            )
            listed = check("/api/silences", await c.get("/api/silences"))
            sid = made.json()["silence"]["id"]
            silenced = daemon.alerting.silences
            assert silenced is not None
            during = silenced.silenced("home", "demo", [], time.time())
            expired = await c.delete(f"/api/silences/{sid}", headers=auth)
            after = check("/api/silences", await c.get("/api/silences"))
        assert refused.status_code == 401
        assert bad.status_code == 400 and bad.json()["parameter"] == "duration"
        assert made.status_code == 201
        check("/api/silences", made, method="post")
        assert [s["id"] for s in listed["silences"]] == [sid]
        assert during is not None and "deploy 4711" in during
        assert expired.status_code == 200 and after["silences"] == []


QUICK = """
    from synthmon import Context, journey

    @journey(interval="1s", timeout="500ms")
    async def quick(ctx: Context) -> None:
        async with ctx.step("noop"):
            pass
"""


class TestStalledLoop:
    async def test_coalesced_runs_are_recorded_as_missed(self, tmp_path: Path) -> None:
        """A stalled event loop: the runs APScheduler coalesced are recorded as missed
        slots (reason 'stalled'); every slot of the pair's grid ends in exactly one
        recorded outcome, and synthmon_slots_total agrees with the stored rows."""
        settings = make_settings(
            tmp_path,
            targets={"demo": "http://127.0.0.1:9"},
            journeys={"q.py": QUICK},
            extra_toml=HISTORY_FAST,
        )
        async with (
            run_daemon(settings) as (daemon, results),
            httpx.AsyncClient(base_url=daemon.server.url) as c,
        ):
            await results.wait_for(lambda rs: len(rs) >= 2, timeout=15)
            time.sleep(4.6)  # the point: block the event loop (intervals are >= 1 s)
            n = len(results.results)
            await results.wait_for(lambda rs: len(rs) >= n + 2, timeout=15)

            async def missed_rows() -> list[dict[str, Any]]:
                body = check("/api/slots", await c.get("/api/slots?journey=quick&outcome=missed"))
                return list(body["slots"])

            await eventually(missed_rows, what="missed slots recorded")
            text = await scrape(daemon)
            labels = {"journey": "quick", "target": "demo"}
            counted = sample(text, "synthmon_slots_total", outcome="missed", **labels) or 0

            async def stored() -> list[dict[str, Any]] | None:
                rows = await missed_rows()
                return rows if sum(r["count"] for r in rows) >= counted else None

            # What the counter said is stored (more may follow: a loaded machine stalls).
            rows = await eventually(stored, what="stored missed slots match the counter")
        stalled = [r for r in rows if r["reason"] == "stalled"]
        assert stalled and max(r["count"] for r in stalled) >= 3  # ~4 due times in 4.6 s
        coalesced = sample(
            text, "synthmon_journey_skipped_runs_total", reason="coalesced", **labels
        )
        assert (coalesced or 0) >= 3
        assert_grid_covered(tmp_path / "data" / "history.sqlite3", "quick@demo", 1.0)
