"""Runs as OpenTelemetry traces, through a daemon built as `synthmon run` builds it,
against the demo shop and a local OTLP receiver that decodes what it gets."""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import structlog

from synthmon_demo import RunningShop
from tests.harness import make_settings, run_daemon, sample, scrape
from tests.tracing.receivers import (
    Received,
    SeenSpan,
    black_hole,
    closed_port,
    make_pki,
    otlp_http,
    webhook,
)

# , closed_port, otlp_http, webhook

pytestmark = pytest.mark.slow

SHOP_JOURNEY = """
from synthmon import journey

@journey(severity="critical", interval="1h", timeout="10s")
async def browse(ctx):
    async with ctx.step("home"):
        r = await ctx.http.get("/")
        assert r.status_code == 200
    async with ctx.step("search"):
        r = await ctx.http.get("/api/products", params={"q": "mug"})
        assert r.json()["items"]

@journey(severity="warning", interval="1h", timeout="10s")
async def broken(ctx):
    async with ctx.step("missing"):
        r = await ctx.http.get("/no-such-page")
        assert r.status_code == 200, f"got {r.status_code}"
"""


ALERT_ON_FIRST_FAILURE = """
[alerting]
webhook = { url = { env = "TEST_WEBHOOK_URL" } }
routes = { warning = ["webhook"] }
heartbeat = false

[alerting.journeys.broken]
consecutive = 1
retries = 0
rechecks = 0
"""


def tracing_toml(endpoint: str, **extra: str) -> str:
    lines = [
        "[tracing]",
        "enabled = true",
        f'endpoint = "{endpoint}"',
        'flush_interval = "0.1s"',
        'ui_url = "https://tempo.example/trace/{trace_id}"',
        *(f"{k} = {v}" for k, v in extra.items()),
    ]
    return "\n".join(lines) + "\n"


def by_name(spans: list[SeenSpan], name: str) -> SeenSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def _complete(trace_id: str, n: int) -> Callable[[Received], bool]:
    return lambda r: len(r.of(trace_id)) >= n


class TestRunTrace:
    @pytest.mark.parametrize("workers", [0, 2], ids=["in_process", "workers"])
    async def test_run_is_a_trace_of_steps_and_requests_joined_by_the_backend(
        self, tmp_path: Path, shop: RunningShop, monkeypatch: pytest.MonkeyPatch, workers: int
    ) -> None:
        """A run arrives as one trace (run → steps → HTTP requests) whose id is the run
        id, with the journey's attributes and the semantic conventions' synthetic and
        test attributes; the shop got each request's own span as traceparent and the
        synthetic baggage; the collector got the configured (secret) header. The same
        when the run happens in a worker process (docs/workers.md)."""
        monkeypatch.setenv("OTLP_TOKEN", "s3cret-token")
        async with otlp_http() as (url, received):
            settings = make_settings(
                tmp_path,
                targets={"shop": shop.url},
                journeys={"j.py": SHOP_JOURNEY},
                extra_toml=tracing_toml(url, service_name='"probe-eu"')
                + 'headers = { authorization = { env = "OTLP_TOKEN" } }\n'
                + f"[scheduler]\nworkers = {workers}\n",
            )
            async with run_daemon(settings) as (daemon, _):
                shop.state.reset()
                result = await daemon.run_pair(daemon.journeys["browse"], daemon.targets["shop"])
                assert result.ok, result.error_message
                await received.wait_for(_complete(result.run_id, 5))
                seen = shop.state.seen()
                text = await scrape(daemon)
        spans = received.of(result.run_id)
        assert result.trace_id == result.run_id
        root = by_name(spans, "journey browse")
        assert root.parent_id == ""
        for key, value in {
            "synthmon.journey": "browse",
            "synthmon.target": "shop",
            "synthmon.run_id": result.run_id,
            "synthmon.attempt": 1,
            "synthmon.severity": "critical",
            "synthmon.result": "success",
            "user_agent.synthetic.type": "test",
            "test.suite.name": "browse",
            "test.suite.run.status": "success",
        }.items():
            assert root.attributes.get(key) == value, (key, root.attributes)
        assert root.resource["service.name"] == "probe-eu"
        home, search = by_name(spans, "step home"), by_name(spans, "step search")
        for step in (home, search):
            assert step.parent_id == root.span_id
            assert step.attributes["test.case.result.status"] == "pass"
        assert home.attributes["test.case.name"] == "home"
        gets = [s for s in spans if s.name == "GET"]
        assert {s.parent_id for s in gets} == {home.span_id, search.span_id}
        for span in gets:
            assert span.kind == 3  # CLIENT
            assert span.attributes["http.request.method"] == "GET"
            assert span.attributes["http.response.status_code"] == 200
            assert span.attributes["server.address"] == "127.0.0.1"
        search_get = next(s for s in gets if s.parent_id == search.span_id)
        assert search_get.attributes["url.full"] == f"{shop.url}/api/products?q=mug"
        # The shop saw the trace: each request's traceparent names its client span.
        parents = {}
        for request in seen:
            match = re.fullmatch(
                r"00-([0-9a-f]{32})-([0-9a-f]{16})-0[13]", request.headers["traceparent"]
            )
            assert match, request.headers["traceparent"]
            assert match[1] == result.run_id
            parents[request.path] = match[2]
            assert request.headers["baggage"] == "synthetic=true,journey=browse"
        assert parents["/api/products"] == search_get.span_id
        assert set(parents.values()) == {s.span_id for s in gets}
        assert all(h.get("authorization") == "s3cret-token" for h in received.headers)
        assert (sample(text, "synthmon_trace_spans_exported_total") or 0) >= 5

    @pytest.mark.parametrize("workers", [0, 2], ids=["in_process", "workers"])
    async def test_a_failed_run_marks_its_trace_and_links_it(
        self, tmp_path: Path, shop: RunningShop, monkeypatch: pytest.MonkeyPatch, workers: int
    ) -> None:
        """A failing run's root, step and request spans have error status with the
        reason; its alert and /api/runs/{id} link to the trace through ui_url."""
        async with otlp_http() as (url, received), webhook() as (hook, alerts):
            monkeypatch.setenv("TEST_WEBHOOK_URL", hook)
            settings = make_settings(
                tmp_path,
                targets={"shop": shop.url},
                journeys={"j.py": SHOP_JOURNEY},
                extra_toml=tracing_toml(url)
                + ALERT_ON_FIRST_FAILURE
                + f"[scheduler]\nworkers = {workers}\n",
            )
            async with run_daemon(settings) as (daemon, _):
                result = await daemon.run_pair(daemon.journeys["broken"], daemon.targets["shop"])
                assert result.status.value == "failure"
                await received.wait_for(_complete(result.run_id, 3))
                await daemon.fanout.flush()
                for _ in range(100):
                    async with httpx.AsyncClient() as client:
                        r = await client.get(f"{daemon.server.url}/api/runs/{result.run_id}")
                    if r.status_code == 200 and alerts:
                        break
                    await asyncio.sleep(0.1)
        spans = received.of(result.run_id)
        root = by_name(spans, "journey broken")
        assert root.status_code == 2
        assert "got 404" in root.status_message
        assert root.attributes["synthmon.result"] == "failure"
        assert root.attributes["test.suite.run.status"] == "failure"
        assert root.attributes["synthmon.failed_step"] == "missing"
        step = by_name(spans, "step missing")
        assert step.status_code == 2 and step.attributes["test.case.result.status"] == "fail"
        get = by_name(spans, "GET")
        assert get.attributes["http.response.status_code"] == 404 and get.status_code == 2
        link = f"https://tempo.example/trace/{result.run_id}"
        assert r.status_code == 200, r.text
        assert r.json()["run"]["trace_url"] == link
        assert alerts and alerts[0]["trace_url"] == link, alerts


class TestExportNeverHoldsUpRuns:
    async def test_unreachable_collector_is_logged_once_and_counted(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """With nothing listening at the endpoint, runs pass as usual, the lost spans are
        counted (reason export_failed) and the failure is logged once, not per run or
        per batch."""
        endpoint = f"http://127.0.0.1:{closed_port()}"
        settings = make_settings(
            tmp_path,
            targets={"shop": shop.url},
            journeys={"j.py": SHOP_JOURNEY},
            extra_toml=tracing_toml(endpoint, timeout='"1s"'),
        )
        with structlog.testing.capture_logs() as logs:
            async with run_daemon(settings) as (daemon, _):
                for _ in range(5):
                    result = await daemon.run_pair(
                        daemon.journeys["browse"], daemon.targets["shop"]
                    )
                    assert result.ok, result.error_message
                for _ in range(100):
                    text = await scrape(daemon)
                    lost = sample(
                        text, "synthmon_trace_spans_dropped_total", reason="export_failed"
                    )
                    if (lost or 0) >= 25:
                        break
                    await asyncio.sleep(0.1)
        assert lost == 25  # 5 runs x (root + 2 steps + 2 requests)
        failed = [e for e in logs if e["event"] == "trace_export_failed"]
        assert len(failed) == 1, failed
        assert failed[0]["endpoint"] == f"{endpoint}/v1/traces"
        assert failed[0]["spans_lost"] >= 1

    async def test_wedged_collector_drops_spans_instead_of_queueing_without_bound(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """While a collector holds an export open (never answers), runs go on and the
        spans beyond max_queue are dropped and counted (reason queue_full)."""
        async with black_hole() as (url, connections):
            settings = make_settings(
                tmp_path,
                targets={"shop": shop.url},
                journeys={"j.py": SHOP_JOURNEY},
                extra_toml=tracing_toml(url, timeout='"30s"', max_queue="16", max_batch="5"),
            )
            async with run_daemon(settings) as (daemon, _):
                first = await daemon.run_pair(daemon.journeys["browse"], daemon.targets["shop"])
                for _ in range(100):  # the first batch is out, and hangs there
                    if connections:
                        break
                    await asyncio.sleep(0.05)
                assert connections, "no export reached the black hole"
                passed = 0
                for _ in range(10):
                    result = await daemon.run_pair(
                        daemon.journeys["browse"], daemon.targets["shop"]
                    )
                    passed += result.ok
                text = await scrape(daemon)
        assert first.ok and passed == 10
        dropped = sample(text, "synthmon_trace_spans_dropped_total", reason="queue_full")
        # 55 spans made, at most 16 waiting or in flight at once.
        assert dropped is not None and dropped >= 55 - 16


LEAKY_JOURNEY = """
import os
from synthmon import journey

@journey(interval="1h", timeout="10s")
async def leaky(ctx):
    async with ctx.step("search"):
        secret = os.environ["OTLP_TOKEN"]
        r = await ctx.http.get("/no-such-page", params={"token": secret})
        assert r.status_code == 200, f"token {secret} refused"
"""


class TestSecretsStayHome:
    @pytest.mark.parametrize("workers", [0, 2], ids=["in_process", "workers"])
    async def test_spans_are_scrubbed_like_every_other_sink(
        self, tmp_path: Path, shop: RunningShop, monkeypatch: pytest.MonkeyPatch, workers: int
    ) -> None:
        """A configured secret in a request URL or an error message reaches the
        collector masked, as it reaches logs and alerts."""
        monkeypatch.setenv("OTLP_TOKEN", "tok-9f8e7d6c5b4a")
        async with otlp_http() as (url, received):
            settings = make_settings(
                tmp_path,
                targets={"shop": shop.url},
                journeys={"j.py": LEAKY_JOURNEY},
                extra_toml=tracing_toml(url)
                + 'headers = { authorization = { env = "OTLP_TOKEN" } }\n'
                + f"[scheduler]\nworkers = {workers}\n",
            )
            async with run_daemon(settings) as (daemon, _):
                result = await daemon.run_pair(daemon.journeys["leaky"], daemon.targets["shop"])
                await received.wait_for(_complete(result.run_id, 3))
        spans = received.of(result.run_id)
        assert result.status.value == "failure"
        text = repr([(s.attributes, s.status_message) for s in spans])
        assert "tok-9f8e7d6c5b4a" not in text
        assert "token=" in by_name(spans, "GET").attributes["url.full"]


class TestConfig:
    async def test_standard_otel_variables_configure_the_exporter(
        self, tmp_path: Path, shop: RunningShop, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With no endpoint in [tracing], OTEL_EXPORTER_OTLP_ENDPOINT, _HEADERS and
        OTEL_SERVICE_NAME decide where spans go, with what, and under which name."""
        async with otlp_http() as (url, received):
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=team-a")
            monkeypatch.setenv("OTEL_SERVICE_NAME", "synthetic-eu")
            settings = make_settings(
                tmp_path,
                targets={"shop": shop.url},
                journeys={"j.py": SHOP_JOURNEY},
                extra_toml='[tracing]\nenabled = true\nflush_interval = "0.1s"\n',
            )
            async with run_daemon(settings) as (daemon, _):
                result = await daemon.run_pair(daemon.journeys["browse"], daemon.targets["shop"])
                await received.wait_for(_complete(result.run_id, 5))
        root = by_name(received.of(result.run_id), "journey browse")
        assert root.resource["service.name"] == "synthetic-eu"
        assert all(h.get("x-tenant") == "team-a" for h in received.headers)

    async def test_mutual_tls_to_the_collector(self, tmp_path: Path, shop: RunningShop) -> None:
        """certificate (the collector's CA) and client_certificate/client_key (mTLS)
        take spans to an HTTPS collector that requires a client certificate."""
        pki = make_pki(tmp_path)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki["ca.pem"]))
        tls.load_cert_chain(pki["server.pem"], pki["server.key"])
        tls.verify_mode = ssl.CERT_REQUIRED
        async with otlp_http(tls) as (url, received):
            settings = make_settings(
                tmp_path,
                targets={"shop": shop.url},
                journeys={"j.py": SHOP_JOURNEY},
                extra_toml=tracing_toml(url)
                + f'certificate = "{pki["ca.pem"]}"\n'
                + f'client_certificate = "{pki["client.pem"]}"\n'
                + f'client_key = "{pki["client.key"]}"\n',
            )
            async with run_daemon(settings) as (daemon, _):
                result = await daemon.run_pair(daemon.journeys["browse"], daemon.targets["shop"])
                await received.wait_for(_complete(result.run_id, 5))
        assert url.startswith("https://")
        assert by_name(received.of(result.run_id), "journey browse").parent_id == ""

    def test_bad_tracing_settings_name_the_field(self, tmp_path: Path) -> None:
        """A ui_url without {trace_id}, or an endpoint that is no URL, is refused at
        load naming the file and the field."""
        from synthmon.config.settings import load_settings
        from synthmon.errors import ConfigError

        for body, field, hint in (
            ('ui_url = "https://tempo.example/trace/"', "tracing.ui_url", "{trace_id}"),
            ('endpoint = "collector:4318"', "tracing.endpoint", "http(s) URL"),
        ):
            config = tmp_path / "s.toml"
            config.write_text(f"[tracing]\nenabled = true\n{body}\n")
            with pytest.raises(ConfigError) as caught:
                load_settings(config)
            message = str(caught.value)
            assert str(config) in message and field in message and hint in message
