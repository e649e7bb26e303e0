"""`synthmon compare`: blue/green and canary verdicts, run as a pipeline step runs them
(a subprocess) against two demo shops on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from synthmon.cli.verdict import Thresholds, compare
from synthmon.model import RunResult, Status, StepResult
from synthmon_demo import RunningShop, serve
from tests.cli.test_once import once_cli
from tests.conftest import set_chaos
from tests.harness import write_config, write_journeys

JOURNEY = """
from synthmon import journey

@journey(interval="1m", timeout="5s", compare={"max_latency_ratio": 1.5})
async def browse(ctx):
    async with ctx.step("home"):
        r = await ctx.http.get("/")
        assert r.status_code == 200
    async with ctx.step("search"):
        r = await ctx.http.get("/api/products", params={"q": "mug"})
        r.raise_for_status()
"""


@pytest.fixture
async def green() -> AsyncIterator[RunningShop]:
    async with serve() as running:
        yield running


def _config(tmp_path: Path, blue: str, green: str) -> Path:
    jdir = write_journeys(tmp_path / "journeys", {"catalog.py": JOURNEY})
    return write_config(
        tmp_path / "synthmon.toml",
        f"""
        journeys_dir = "{jdir}"
        data_dir = "{tmp_path / "data"}"
        [targets.blue]
        base_url = "{blue}"
        [targets.green]
        base_url = "{green}"
        """,
    )


class TestCompareCommand:
    async def test_identical_targets_are_promoted(
        self, tmp_path: Path, shop: RunningShop, green: RunningShop
    ) -> None:
        """Two healthy copies of the same shop: exit 0, PROMOTE, nothing flagged."""
        cfg = _config(tmp_path, shop.url, green.url)
        out_json = tmp_path / "verdict.json"
        code, out, err = await once_cli(
            "compare", "--config", cfg, "--baseline", "blue", "--candidate", "green",
            "--runs", "20", "--json", out_json,
        )  # fmt: skip
        assert code == 0, out + err
        assert out.strip().splitlines()[-1] == "PROMOTE"
        body = json.loads(out_json.read_text())
        assert body["verdict"] == "promote"
        assert not any(f["regression"] for f in body["findings"])

    async def test_broken_candidate_is_flagged_naming_journey_step_and_metric(
        self, tmp_path: Path, shop: RunningShop, green: RunningShop
    ) -> None:
        """A candidate whose search fails: exit 1; the table and the markdown report name
        the journey, the metric, the step and the p-value."""
        cfg = _config(tmp_path, shop.url, green.url)
        await set_chaos(green, "error", paths=["/api/products"])
        report = tmp_path / "report.md"
        code, out, err = await once_cli(
            "compare", "--config", cfg, "--baseline", "blue", "--candidate", "green",
            "--runs", "10", "--report", report,
        )  # fmt: skip
        assert code == 1, out + err
        flagged = [line for line in out.splitlines() if " REGRESSION " in line]
        assert any(
            line.startswith("browse") and "failures" in line and "search" in line
            for line in flagged
        ), out
        text = report.read_text()
        assert text.startswith("# synthmon compare: REGRESSION")
        assert "## browse: failures" in text and "step `search`" in text and "p=" in text

    async def test_unknown_target_exits_2(self, tmp_path: Path, shop: RunningShop) -> None:
        """A target that is not configured is a usage error naming the known ones."""
        cfg = _config(tmp_path, shop.url, shop.url)
        code, _, err = await once_cli(
            "compare", "--config", cfg, "--baseline", "blue", "--candidate", "red"
        )
        assert code == 2
        assert "no target named red; known: ['blue', 'green']" in err


def _run(status: Status, duration: float, step: str = "search") -> RunResult:
    failed = status is not Status.SUCCESS
    return RunResult(
        journey="j",
        target="t",
        run_id="0" * 32,
        trace_id="0" * 32,
        status=status,
        started_at=0.0,
        duration=duration,
        steps=(StepResult(step, status, duration),),
        failed_step=step if failed else None,
        error_message="boom" if failed else None,
    )


class TestVerdict:
    def test_threshold_decides_between_significant_and_allowed(self) -> None:
        """A significant but allowed slowdown (1.1x under a 1.2x limit) is not a regression;
        the same slowdown under a 1.05x limit is."""
        base = [_run(Status.SUCCESS, 0.100 + i * 0.0001) for i in range(30)]
        cand = [_run(Status.SUCCESS, 0.110 + i * 0.0001) for i in range(30)]
        relaxed = compare({"j": (base, cand)}, {"j": Thresholds(max_latency_ratio=1.2)})
        strict = compare({"j": (base, cand)}, {"j": Thresholds(max_latency_ratio=1.05)})
        assert relaxed.promote
        assert "median_latency" in {f.metric for f in strict.regressions}
        assert "failures" not in {f.metric for f in strict.regressions}

    def test_failure_delta_allows_a_known_flaky_rate(self) -> None:
        """max_failure_delta=0.5 lets a candidate fail 30 % more often without a flag."""
        base = [_run(Status.SUCCESS, 0.1) for _ in range(30)]
        cand = [_run(Status.FAILURE if i % 3 == 0 else Status.SUCCESS, 0.1) for i in range(30)]
        assert not compare({"j": (base, cand)}, {"j": Thresholds()}).promote
        assert compare({"j": (base, cand)}, {"j": Thresholds(max_failure_delta=0.5)}).promote
