"""deploy/prometheus/canary-rules.yml: canary vs stable from the daemon's own metrics."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from synthmon_demo import RunningShop
from tests.harness import make_settings, run_daemon, scrape

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "canary-rules.yml"
pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool")

JOURNEY = {
    "home.py": """
    from synthmon import journey

    @journey(interval="1s", timeout="1s")
    async def home(ctx):
        async with ctx.step("home"):
            assert (await ctx.http.get("/")).status_code == 200
    """
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args], capture_output=True, text=True, timeout=60, check=False
    )


class TestCanaryRules:
    def test_rules_are_valid_and_their_unit_tests_pass(self) -> None:
        """promtool accepts the rules, and they fire and stay quiet as the tests specify."""
        done = promtool("check", "rules", str(RULES))
        assert done.returncode == 0, done.stdout + done.stderr
        done = promtool("test", "rules", str(RULES.with_name("canary-rules_test.yml")))
        assert done.returncode == 0, done.stdout + done.stderr

    async def test_rules_read_series_a_running_daemon_exports(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """Every synthmon_* series the rules read is on a real daemon's /metrics with the
        labels the rules group by (journey, target, result, le)."""
        settings = make_settings(
            tmp_path, targets={"production": shop.url, "canary": shop.url}, journeys=JOURNEY
        )
        async with run_daemon(settings) as (daemon, collector):
            await collector.wait_for(lambda rs: len({r.target for r in rs}) == 2)
            await daemon.fanout.flush()
            text = await scrape(daemon)
        for name in set(re.findall(r"\bsynthmon_[a-z_]+", RULES.read_text())):
            lines = [ln for ln in text.splitlines() if ln.startswith(name + "{")]
            assert lines, f"{name} is not exported"
            assert any('target="canary"' in ln and 'journey="home"' in ln for ln in lines), name
