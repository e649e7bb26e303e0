"""deploy/grafana/: the dashboard is importable (datasource and template variables, unique
ids) and every query in it returns series from a real Prometheus scraping a real daemon
(docs/dashboards.md). A renamed metric or label breaks this test, not the dashboard on
the night someone needs it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from synthmon.daemon import Daemon
from synthmon.model import RunResult
from synthmon_demo import RunningShop
from tests.conftest import set_chaos
from tests.harness import Collector, make_settings, run_daemon, sample, scrape
from tests.loopback import WebhookReceiver, free_port
from tests.tls.pki import Pki, tls_server

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "synthmon.json"
CANARY_RULES = ROOT / "deploy" / "prometheus" / "canary-rules.yml"
COMPOSE = ROOT / "deploy" / "compose" / "compose.yaml"

# Grafana's own variables, and the concrete values the test puts in for them (Prometheus
# scrapes every second here, so a 15 s rate window holds ~15 samples).
BUILTINS = {"__rate_interval": "15s", "__interval": "5s", "__range": "10m"}
DS_VAR = "${datasource}"
VAR = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


@dataclass(frozen=True)
class Query:
    panel: str
    ref: str
    expr: str


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, the ones inside (collapsed) rows included."""
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def queries() -> list[Query]:
    return [
        Query(f"{p['id']} {p['title']!r}", t["refId"], t["expr"])
        for p in all_panels(dashboard()["panels"])
        for t in p.get("targets", [])
    ]


def variables() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard()["templating"]["list"]}


def substitute(expr: str, values: dict[str, str]) -> str:
    """`expr` with Grafana's variables replaced: `values` for the template variables
    (already in Grafana's regex format for multi-value), BUILTINS for the rest."""

    def one(m: re.Match[str]) -> str:
        name = m[1] or m[2]
        return {**BUILTINS, **values}[name]

    return VAR.sub(one, expr)


ALL = {"location": ".*", "journey": ".*", "target": ".*", "step": ".*"}


# -- lint ----------------------------------------------------------------------------


class TestDashboardLint:
    def test_every_panel_and_query_reads_the_datasource_variable(self) -> None:
        """Panels, their queries and the template variables use `${datasource}` (a
        datasource variable of type prometheus), so import needs no uid rewriting."""
        ds = variables()["datasource"]
        assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
        wrong = []
        for p in all_panels(dashboard()["panels"]):
            if p["type"] == "row":
                continue
            things = [p, *p["targets"]]
            wrong += [p["title"] for t in things if t.get("datasource", {}).get("uid") != DS_VAR]
        for v in variables().values():
            if v["type"] == "query" and v["datasource"]["uid"] != DS_VAR:
                wrong.append(f"variable {v['name']}")
        assert not wrong

    def test_panel_ids_are_unique(self) -> None:
        """No two panels (rows and nested panels included) share an id."""
        ids = [p["id"] for p in all_panels(dashboard()["panels"])]
        assert len(ids) == len(set(ids)), sorted(ids)

    def test_every_variable_used_is_defined(self) -> None:
        """Each $variable in a query, title or variable query is a template variable or
        one of Grafana's own; journey, target and location come from label_values."""
        defined = set(variables()) | set(BUILTINS)
        texts = [q.expr for q in queries()]
        texts += [p.get("title", "") for p in all_panels(dashboard()["panels"])]
        texts += [v["definition"] for v in variables().values() if v["type"] == "query"]
        used = {m[1] or m[2] for t in texts for m in VAR.finditer(t)}
        assert used <= defined, used - defined
        for name in ("journey", "target", "location"):
            assert variables()[name]["definition"].startswith("label_values(synthmon_"), name
            assert variables()[name]["allValue"] == ".*"  # matches series without the label
        for p in all_panels(dashboard()["panels"]):
            if p.get("repeat"):
                assert p["repeat"] in variables(), p["title"]

    def test_no_query_hides_a_missing_metric(self) -> None:
        """No `or vector(...)` fallback: it would answer for a renamed metric, and the
        integration test below could no longer tell (panels use noValue instead)."""
        assert not [q for q in queries() if re.search(r"\bor\s+vector\s*\(", q.expr)]

    def test_overview_and_health_cover_what_the_issue_asks(self) -> None:
        """The panels of issue 13: success, availability, MTTR, incidents, p50/p95,
        per-step heatmap, alerts firing; scheduler lag, slots incl. missed, sink and
        outbox depth, browser pool, event-loop lag."""
        exprs = " ".join(q.expr for q in queries())
        kinds = {p["type"] for p in all_panels(dashboard()["panels"])}
        for metric in (
            "synthmon_journey_success",
            "synthmon_journey_availability_ratio",
            "synthmon_journey_mttr_seconds",
            "synthmon_journey_incidents_total",
            "synthmon_journey_step_duration_seconds_bucket",
            "synthmon_alert_state",
            "synthmon_scheduler_lag_seconds_bucket",
            "synthmon_slots_total",
            "synthmon_sink_queue_depth",
            "synthmon_alert_outbox_depth",
            "synthmon_browser_contexts_in_use",
            "synthmon_event_loop_lag_seconds",
        ):
            assert metric in exprs, metric
        assert "histogram_quantile(0.5," in exprs and "histogram_quantile(0.95," in exprs
        assert 'outcome="missed"' in exprs
        assert "heatmap" in kinds

    def test_dashboard_path_matches_provisioning_and_compose(self) -> None:
        """Grafana's dashboard provider reads the folder compose mounts the JSON into, and
        the provisioned Prometheus is the default datasource the variable starts on."""
        prov = yaml.safe_load(
            (GRAFANA / "provisioning" / "dashboards" / "synthmon.yaml").read_text()
        )
        compose = yaml.safe_load(COMPOSE.read_text())
        mounts = {}
        for spec in compose["services"]["grafana"]["volumes"]:
            src, dst, *_ = spec.split(":")
            mounts[(COMPOSE.parent / src).resolve()] = dst
        assert mounts[GRAFANA / "dashboards"] == prov["providers"][0]["options"]["path"]
        ds = yaml.safe_load(
            (GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text()
        )
        [default] = [d for d in ds["datasources"] if d.get("isDefault")]
        assert default["type"] == "prometheus"

    @pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool")
    def test_every_query_parses(self, tmp_path: Path) -> None:
        """Every panel query is valid PromQL once the variables are filled in, with
        "All" selected and with several values selected (promtool, as recording rules)."""
        multi = {"location": "(test-1|b)", "journey": "(home|search)", "target": "(production)"}
        rules = [
            {"record": f"dashboard:query{i}", "expr": substitute(q.expr, values)}
            for i, q in enumerate(queries())
            for values in (ALL, {**ALL, **multi, "step": "home"})
        ]
        path = tmp_path / "dashboard_rules.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
        out = subprocess.run(
            ["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False
        )
        assert out.returncode == 0, out.stdout + out.stderr


# -- against a real Prometheus --------------------------------------------------------

JOURNEYS = {
    "home.py": """
    from synthmon import Context, journey

    @journey(severity="critical", interval="1s", timeout="1s")
    async def home(ctx: Context) -> None:
        async with ctx.step("home"):
            assert (await ctx.http.get("/")).status_code == 200
    """,
    # Broken and repaired by the test (chaos on /api/products): one incident, an MTTR.
    "search.py": """
    from synthmon import Context, journey

    @journey(severity="critical", interval="1s", timeout="1s")
    async def search(ctx: Context) -> None:
        async with ctx.step("home"):
            assert (await ctx.http.get("/")).status_code == 200
        async with ctx.step("search"):
            r = await ctx.http.get("/api/products", params={"q": "mug"})
            assert r.status_code == 200, f"search answered {r.status_code}"
    """,
    # Always failing: its SyntheticJourneyFailed fires for the whole test.
    "gone.py": """
    from synthmon import Context, journey

    @journey(severity="critical", interval="1s", timeout="1s")
    async def gone(ctx: Context) -> None:
        async with ctx.step("open"):
            r = await ctx.http.get("/no-such-page")
            assert r.status_code == 200, f"answered {r.status_code}"
    """,
    "browse.py": """
    from synthmon import Context, journey

    @journey(kind="browser", interval="8s", timeout="8s", targets=["production"])
    async def browse(ctx: Context) -> None:
        async with ctx.step("home"):
            await ctx.page.goto("/")
    """,
    # No account in pool "nobody": every run is an infrastructure error (no_account).
    "needs_account.py": """
    from synthmon import Context, journey

    @journey(interval="1s", timeout="1s", account="nobody", targets=["production"])
    async def needs_account(ctx: Context) -> None:
        async with ctx.step("home"):
            await ctx.http.get("/")
    """,
    # Paused by the test through the kill-switch API: skipped runs, a paused pair.
    "idle.py": """
    from synthmon import Context, journey

    @journey(severity="info", interval="1s", timeout="1s", targets=["production"])
    async def idle(ctx: Context) -> None:
        async with ctx.step("home"):
            await ctx.http.get("/")
    """,
    # A journey file that does not load: synthmon_journey_load_errors.
    "typo.py": "from synthmon import journey\n\n@journey(interval=\n",
}

SETTINGS = f"""
[browser]
no_sandbox = {str(os.geteuid() == 0).lower()}
[metrics]
step_histograms = true
[history]
stats_interval = "1s"
flush_interval = "0.2s"
[alerting]
retry_base_delay = "0.2s"
retry_max_delay = "1s"
heartbeat = false
[alerting.webhook]
url = {{ env = "TEST_WEBHOOK_URL" }}
[alerting.routes]
critical = ["webhook"]
warning = ["webhook"]
[alerting.severity.critical]
retry_delay = "0.2s"
"""


class FlakySink:
    """A sink backend that fails on needs_account's results (synthmon_sink_problems)."""

    async def emit(self, result: RunResult) -> None:
        if result.journey == "needs_account":
            raise RuntimeError("sink backend refused the result (test)")


@contextlib.asynccontextmanager
async def prometheus(workdir: Path, target: str) -> AsyncIterator[str]:
    """A real Prometheus scraping `target` (host:port) every second as job "synthmon",
    evaluating the canary recording rules every second; yields its URL once ready."""
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "prometheus.yml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "global": {
                    "scrape_interval": "1s",
                    "scrape_timeout": "1s",
                    "evaluation_interval": "1s",
                },
                "rule_files": [str(CANARY_RULES)],
                "scrape_configs": [
                    {"job_name": "synthmon", "static_configs": [{"targets": [target]}]}
                ],
            }
        )
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        # Popen returns at once; the readiness wait below is what takes time.
        proc = subprocess.Popen(  # noqa: ASYNC220
            [
                "prometheus",
                f"--config.file={cfg}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{url}/-/ready")).status_code == 200:
                        break
                if proc.poll() is not None:
                    raise RuntimeError(log.read_text())
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"prometheus did not become ready: {log.read_text()}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def until(what: str, check: Any, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.2)


async def ask(client: httpx.AsyncClient, base: str, promql: str) -> tuple[int, Any]:
    """(HTTP status, result or error text) of an instant query."""
    r = await client.get(f"{base}/api/v1/query", params={"query": promql})
    body = r.json()
    return r.status_code, body["data"]["result"] if r.status_code == 200 else body["error"]


async def live_scenario(daemon: Daemon, collector: Collector, shop: RunningShop) -> None:
    """Pause idle, break and repair search (one incident with an MTTR), wait for the
    browser journey and for gone's alert to fire."""
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"{daemon.server.url}/api/pause", json={"journey": "idle", "reason": "dashboard test"}
        )
        r.raise_for_status()
    await set_chaos(shop, "error", paths=["/api/products"])

    async def fired() -> bool:
        return daemon.alerting.firing("search", "production") and daemon.alerting.firing(
            "gone", "production"
        )

    await until("search and gone fire", fired)
    await set_chaos(shop, "ok")

    async def resolved() -> bool:
        return not daemon.alerting.firing("search", "production")

    await until("search resolves", resolved)

    async def mttr_known() -> bool:
        text = await scrape(daemon)
        return sample(text, "synthmon_journey_mttr_seconds", journey="search") is not None

    await until("search's MTTR is exported", mttr_known)
    await collector.wait_for(lambda rs: any(r.journey == "browse" for r in rs), timeout=30)


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    """The webhook notifier's receiver; its URL (a secret in the config) in TEST_WEBHOOK_URL."""
    hook = WebhookReceiver()
    monkeypatch.setenv("TEST_WEBHOOK_URL", hook.url)
    try:
        yield hook
    finally:
        hook.close()


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.timeout(300)
@pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs the prometheus binary")
class TestDashboardAgainstPrometheus:
    async def test_every_query_returns_series(
        self, tmp_path: Path, shop: RunningShop, webhook: WebhookReceiver
    ) -> None:
        """Prometheus scraping a daemon with history, journeys passing, failing,
        recovering, paused and broken: each panel query (variables on "All") returns at
        least one series, each template variable lists values, and each query is also
        valid with specific journeys, targets and a location selected."""
        # An HTTPS target (a private CA made here) for the TLS certificate panel.
        pki = Pki.make(tmp_path / "pki", leaf_days=30)
        async with tls_server(pki) as secure:
            settings = make_settings(
                tmp_path,
                targets={"production": shop.url, "canary": shop.url},
                journeys=JOURNEYS,
                extra_toml=SETTINGS
                + f'[targets.secure]\nbase_url = "{secure.url}"\n'
                + f'ca_file = "{pki.directory / "ca.pem"}"\n',
            ).model_copy(update={"location": "test-1"})
            sinks = [("flaky", FlakySink())]
            async with run_daemon(settings, extra_sinks=sinks) as (daemon, got):
                address = daemon.server.url.removeprefix("http://")
                async with prometheus(tmp_path / "prom", address) as prom:
                    await live_scenario(daemon, got, shop)
                    async with httpx.AsyncClient(timeout=10) as client:
                        empty, invalid = await check_queries(client, prom)
                        listed = await variable_values(client, prom)
        assert not invalid, "\n".join(invalid)
        assert not empty, "queries without series:\n" + "\n".join(empty)
        assert "test-1" in listed["location"]
        assert {"home", "search", "gone", "browse"} <= set(listed["journey"])
        assert {"production", "canary", "secure"} <= set(listed["target"])
        assert {"home", "search", "open"} <= set(listed["step"])


async def check_queries(client: httpx.AsyncClient, prom: str) -> tuple[list[str], list[str]]:
    """(queries that returned no series within 30 s, queries Prometheus refused)."""
    empty: list[str] = []
    invalid: list[str] = []
    deadline = time.monotonic() + 30
    one = {"location": "test-1", "journey": "(home|search)", "target": "production", "step": "home"}
    for q in queries():
        promql = substitute(q.expr, ALL)
        while True:
            status, result = await ask(client, prom, promql)
            if status != 200 or result or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)  # a rate() needs a second scrape, a rule its first run
        if status != 200:
            invalid.append(f"panel {q.panel} {q.ref}: {result}\n  {promql}")
        elif not result:
            empty.append(f"panel {q.panel} {q.ref}: {promql}")
        status, result = await ask(client, prom, substitute(q.expr, one))
        if status != 200:
            invalid.append(f"panel {q.panel} {q.ref} with one journey selected: {result}")
    return empty, invalid


async def variable_values(client: httpx.AsyncClient, prom: str) -> dict[str, list[str]]:
    """What each label_values(metric{...}, label) variable offers, asked the way
    Grafana asks (the label values API with the selector as match[])."""
    listed: dict[str, list[str]] = {}
    for name, v in variables().items():
        if v["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", v["definition"])
        assert m, v["definition"]
        selector = substitute(m[1], ALL)
        r = await client.get(f"{prom}/api/v1/label/{m[2]}/values", params={"match[]": selector})
        r.raise_for_status()
        listed[name] = r.json()["data"]
    return listed
