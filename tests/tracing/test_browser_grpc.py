"""Browser navigations as spans, export over gRPC, and tracing off: each through a
daemon built as `synthmon run` builds it (or `synthmon run` itself)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from synthmon_demo import RunningShop
from tests.browser.conftest import NO_SANDBOX
from tests.harness import make_settings, run_daemon
from tests.tracing.receivers import otlp_grpc, otlp_http
from tests.tracing.test_otlp import SHOP_JOURNEY, by_name, tracing_toml

pytestmark = pytest.mark.slow

BROWSER_JOURNEY = """
from synthmon import journey

@journey(kind="browser", interval="1h", timeout="20s")
async def products_page(ctx):
    async with ctx.step("products"):
        r = await ctx.page.goto("/products")
        assert r is not None and r.status == 200
"""
FREQUENT_JOURNEY = """
from synthmon import journey

@journey(interval="1s", timeout="1s")
async def home(ctx):
    async with ctx.step("home"):
        (await ctx.http.get("/")).raise_for_status()
"""
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-0[13]")


class TestBrowserNavigationSpans:
    @pytest.mark.browser
    async def test_navigation_is_a_span_with_timings_joined_by_the_backend(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """A page.goto in a step is a navigation span under the step, with the page's
        TTFB/DOMContentLoaded/load; the document request the shop received carries the
        navigation span's traceparent and the synthetic baggage."""
        async with otlp_http() as (url, received):
            settings = make_settings(
                tmp_path,
                targets={"shop": shop.url},
                journeys={"b.py": BROWSER_JOURNEY},
                extra_toml=tracing_toml(url)
                + f"[browser]\nno_sandbox = {str(NO_SANDBOX).lower()}\n",
            )
            async with run_daemon(settings) as (daemon, _):
                shop.state.reset()
                result = await daemon.run_pair(
                    daemon.journeys["products_page"], daemon.targets["shop"]
                )
                assert result.ok, result.error_message
                await received.wait_for(lambda r: len(r.of(result.run_id)) >= 3)
                seen = shop.state.seen("/products")
        spans = received.of(result.run_id)
        root = by_name(spans, "journey products_page")
        assert root.attributes["synthmon.kind"] == "browser"
        step = by_name(spans, "step products")
        nav = by_name(spans, "navigation")
        assert step.parent_id == root.span_id and nav.parent_id == step.span_id
        assert nav.kind == 3
        assert nav.attributes["url.full"] == f"{shop.url}/products"
        assert nav.attributes["http.response.status_code"] == 200
        for timing in ("ttfb", "dom_content_loaded", "load"):
            assert nav.attributes[f"synthmon.navigation.{timing}_seconds"] > 0
        document = seen[0]
        match = TRACEPARENT.fullmatch(document.headers["traceparent"])
        assert match and match[1] == result.run_id and match[2] == nav.span_id
        assert document.headers["baggage"] == "synthetic=true,journey=products_page"


class TestGrpcExport:
    async def test_runs_reach_a_grpc_collector(self, tmp_path: Path, shop: RunningShop) -> None:
        """protocol = "grpc" exports the same trace to an OTLP/gRPC trace service."""
        async with otlp_grpc() as (endpoint, received):
            settings = make_settings(
                tmp_path,
                targets={"shop": shop.url},
                journeys={"j.py": SHOP_JOURNEY},
                extra_toml=tracing_toml(endpoint, protocol='"grpc"'),
            )
            async with run_daemon(settings) as (daemon, _):
                result = await daemon.run_pair(daemon.journeys["browse"], daemon.targets["shop"])
                await received.wait_for(lambda r: len(r.of(result.run_id)) >= 5)
        spans = received.of(result.run_id)
        root = by_name(spans, "journey browse")
        assert {s.parent_id for s in spans if s.name.startswith("step ")} == {root.span_id}
        assert root.attributes["synthmon.result"] == "success"


class TestTracingOff:
    def test_off_loads_no_sdk_and_still_tags_requests(
        self, tmp_path: Path, shop_process: str
    ) -> None:
        """With [tracing] off, `synthmon run` never imports OpenTelemetry, and requests
        to the target still carry the run id as trace id and the synthetic baggage."""
        journeys = tmp_path / "journeys"
        journeys.mkdir()
        (journeys / "j.py").write_text(textwrap.dedent(FREQUENT_JOURNEY))
        config = tmp_path / "synthmon.toml"
        config.write_text(
            f'journeys_dir = "{journeys}"\ndata_dir = "{tmp_path / "data"}"\n'
            '[server]\nlisten = "127.0.0.1:0"\n'
            f'[targets.shop]\nbase_url = "{shop_process}"\n'
        )
        # `synthmon run`, with a hook that reports at exit whether the SDK was loaded.
        code = (
            "import atexit, sys\n"
            "atexit.register(lambda: print('OTEL_LOADED', "
            "any(m.startswith('opentelemetry') for m in sys.modules), flush=True))\n"
            "from synthmon.cli import main\n"
            f"sys.exit(main(['run', '--config', {str(config)!r}]))\n"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        out = ""
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                out += line
                if out.count("run_finished") >= 2 or "journey_load_error" in line:
                    break
        finally:
            proc.terminate()
            rest, _ = proc.communicate(timeout=30)
            out += rest
        assert "OTEL_LOADED False" in out, out
        run_ids = set(re.findall(r'"run_id": "([0-9a-f]{32})"', out))
        import httpx

        seen = httpx.get(f"{shop_process}/_seen").json()
        tagged = [r for r in seen if r["path"] == "/"]
        assert tagged
        for request in tagged:
            match = TRACEPARENT.fullmatch(request["headers"]["traceparent"])
            assert match and match[1] in run_ids, (request, run_ids)
            assert request["headers"]["baggage"] == "synthetic=true,journey=home"


@pytest.fixture
def shop_process(tmp_path: Path) -> str:  # type: ignore[misc]
    """The demo shop in a process of its own (the daemon under test is a subprocess)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "synthmon_demo", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    import time

    import httpx

    for _ in range(100):
        try:
            httpx.get(f"{url}/_chaos", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
