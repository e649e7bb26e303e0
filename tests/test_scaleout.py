"""Scale-out end to end: three sharded daemons against the demo shop, scraped by a real
Prometheus. Each pair runs on exactly one replica and each series exists exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from synthmon.daemon import Daemon
from synthmon_demo import RunningShop
from tests.harness import make_settings, run_daemon
from tests.loopback import free_port
from tests.test_sharding import moved_fraction

N_JOURNEYS = 60
SHARDS = 3

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs the prometheus binary"),
]


def journey_files(n: int) -> dict[str, str]:
    # Long intervals: the test is about who owns what, not about load on the shop.
    return {
        f"j{i:03d}.py": f"""
        from synthmon import journey

        @journey(interval="5m", timeout="5s", tags=["generated"])
        async def generated_{i:03d}(ctx):
            async with ctx.step("home"):
                r = await ctx.http.get("/")
                assert r.status_code == 200
        """
        for i in range(n)
    }


@contextlib.contextmanager
def prometheus(tmp_path: Path, targets: list[str]) -> Iterator[str]:
    """A real Prometheus scraping `targets` (host:port) every second; yields its URL."""
    listed = ", ".join(f'"{t}"' for t in targets)
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: synthmon\n"
        f"    static_configs:\n      - targets: [{listed}]\n",
        encoding="utf-8",
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={cfg}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def query(client: httpx.AsyncClient, base: str, promql: str) -> list[dict[str, Any]]:
    r = await client.get(f"{base}/api/v1/query", params={"query": promql})
    r.raise_for_status()
    result: list[dict[str, Any]] = r.json()["data"]["result"]
    return result


async def wait_query(
    client: httpx.AsyncClient, base: str, promql: str, n: int, within: float = 30.0
) -> list[dict[str, Any]]:
    """Poll until `promql` returns `n` series (or fail saying what it returned)."""
    deadline = time.monotonic() + within
    got: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            got = await query(client, base, promql)
            if len(got) >= n:
                return got
        await asyncio.sleep(0.5)
    raise AssertionError(f"{promql!r}: wanted {n} series within {within}s, got {len(got)}")


@contextlib.asynccontextmanager
async def three_shards(
    tmp_path: Path, targets: dict[str, str], journeys: dict[str, str]
) -> AsyncIterator[list[Daemon]]:
    """Daemons for shards 0/3, 1/3 and 2/3: same journeys and targets, own ports."""
    async with contextlib.AsyncExitStack() as stack:
        daemons: list[Daemon] = []
        for i in range(SHARDS):
            settings = make_settings(
                tmp_path / f"shard{i}", targets=targets, journeys=journeys
            ).model_copy(update={"shard": f"{i}/{SHARDS}", "location": "test-1"})
            daemon, _ = await stack.enter_async_context(run_daemon(settings))
            daemons.append(daemon)
        yield daemons


@pytest.fixture
async def shards(tmp_path: Path, shop: RunningShop) -> AsyncIterator[list[Daemon]]:
    """Three shards of ~60 journeys against the demo shop."""
    async with three_shards(tmp_path, {"demo": shop.url}, journey_files(N_JOURNEYS)) as daemons:
        yield daemons


class TestThreeShards:
    async def test_api_sets_disjoint_and_complete(self, shards: list[Daemon]) -> None:
        """Each (journey, target) pair is listed by exactly one replica's /api/journeys."""
        owned: list[set[tuple[str, str]]] = []
        async with httpx.AsyncClient() as client:
            for d in shards:
                body = (await client.get(f"{d.server.url}/api/journeys")).json()
                owned.append({(e["journey"], e["target"]) for e in body["journeys"]})
                assert {e["shard"] for e in body["journeys"]} <= {str(d.shard)}
        for a in range(SHARDS):
            assert owned[a], f"shard {a} owns nothing"
            for b in range(a + 1, SHARDS):
                assert not owned[a] & owned[b], f"shards {a} and {b} both run a pair"
        everything = {(f"generated_{i:03d}", "demo") for i in range(N_JOURNEYS)}
        assert set().union(*owned) == everything
        # Adding a fourth replica would move about a quarter of these pairs.
        keys = [f"{j}@{t}" for j, t in everything]
        assert 0.13 <= moved_fraction(keys, 3, 4) <= 0.37

    async def test_prometheus_sees_each_series_once(
        self, tmp_path: Path, shards: list[Daemon]
    ) -> None:
        """Prometheus scraping all three replicas has every journey's series exactly once."""
        targets = [d.server.url.removeprefix("http://") for d in shards]
        with prometheus(tmp_path, targets) as prom:
            async with httpx.AsyncClient(timeout=5) as client:
                up = await wait_query(client, prom, "up == 1", SHARDS)
                assert len(up) == SHARDS
                info = await wait_query(client, prom, "synthmon_journey_info", N_JOURNEYS)
                runs = await wait_query(
                    client,
                    prom,
                    'synthmon_journey_runs_total{result="success"}',
                    N_JOURNEYS,
                )
                per_pair = (
                    'count by (journey, target) (synthmon_journey_runs_total{result="success"})'
                )
                dupes = await query(client, prom, f"{per_pair} > 1")
        assert len(info) == N_JOURNEYS
        assert len({s["metric"]["journey"] for s in info}) == N_JOURNEYS
        assert len(runs) == N_JOURNEYS
        assert dupes == []
        assert {s["metric"]["location"] for s in runs} == {"test-1"}
        # Each replica exports its own share, so the series come from all three.
        assert len({s["metric"]["instance"] for s in runs}) == SHARDS


class TestMultiTargetShards:
    async def test_per_journey_joins_work_across_shards(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """With 2 targets per journey, the pairs still run once each and the documented
        `ignoring (target) group_left` join to per-journey metadata has no many-to-many."""
        n = 30
        targets = {"a": shop.url, "b": shop.url}
        async with three_shards(tmp_path, targets, journey_files(n)) as daemons:
            addresses = [d.server.url.removeprefix("http://") for d in daemons]
            with prometheus(tmp_path, addresses) as prom:
                async with httpx.AsyncClient(timeout=5) as client:
                    runs = await wait_query(
                        client, prom, 'synthmon_journey_runs_total{result="success"}', 2 * n
                    )
                    # A many-to-many match is a query error (422): query() raises.
                    joined = await query(
                        client,
                        prom,
                        'synthmon_journey_runs_total{result="success"}'
                        " * ignoring (target, result) group_left synthmon_journey_interval_seconds",
                    )
        pairs = {(s["metric"]["journey"], s["metric"]["target"]) for s in runs}
        assert len(runs) == len(pairs) == 2 * n
        assert len(joined) == 2 * n
