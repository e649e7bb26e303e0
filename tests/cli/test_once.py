"""`synthmon once`: the deploy smoke test and the journey author's loop, run as a
pipeline step runs it (a subprocess) against the demo shop."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import httpx
import jsonschema
import pytest
import xmlschema
from junitparser import Error, Failure, JUnitXml

from synthmon_demo import RunningShop
from tests.alerting.conftest import Receiver
from tests.conftest import set_chaos
from tests.harness import write_config, write_journeys

ROOT = Path(__file__).resolve().parents[2]
SYNTHMON = [sys.executable, "-m", "synthmon"]
JUNIT_XSD = Path(__file__).with_name("junit.xsd")
JSON_SCHEMA = ROOT / "docs" / "schemas" / "once-results.schema.json"

JOURNEYS = {
    "catalog.py": """
    from synthmon import journey

    @journey(interval="1m", timeout="5s", tags=["smoke"])
    async def browse(ctx):
        async with ctx.step("home"):
            r = await ctx.http.get("/")
            assert r.status_code == 200
        async with ctx.step("search"):
            r = await ctx.http.get("/api/products", params={"q": "mug"})
            r.raise_for_status()
    """,
    "source.py": """
    from synthmon import journey

    @journey(interval="1m", timeout="5s", tags=["meta"])
    async def says_where(ctx):
        async with ctx.step("source"):
            assert ctx.run_source == "once", ctx.run_source
            r = await ctx.http.get("/")
            assert r.status_code == 200
    """,
}


def _config(tmp_path: Path, targets: dict[str, str], extra: dict[str, str] | None = None) -> Path:
    jdir = write_journeys(tmp_path / "journeys", {**JOURNEYS, **(extra or {})})
    lines = [f'journeys_dir = "{jdir}"', f'data_dir = "{tmp_path / "data"}"', ""]
    for name, url in targets.items():
        lines += [f"[targets.{name}]", f'base_url = "{url}"', ""]
    return write_config(tmp_path / "synthmon.toml", "\n".join(lines))


async def once_cli(
    *args: str | Path, env_extra: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """`synthmon ARGS...` as a subprocess: (exit code, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNTHMON_")}
    env.update(env_extra or {})
    proc = await asyncio.create_subprocess_exec(
        *SYNTHMON,
        *map(str, args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def once(*args: str | Path, env_extra: dict[str, str] | None = None) -> tuple[int, str, str]:
    return await once_cli("once", *args, env_extra=env_extra)


class TestOnce:
    async def test_all_pass_exits_0_with_a_line_per_pair_and_steps(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """Every selected pair passes: exit 0, each step shown, a summary line."""
        cfg = _config(tmp_path, {"demo": shop.url})
        code, out, err = await once("--config", cfg)
        assert code == 0, out + err
        assert "ok      browse @ demo" in out
        assert "ok      says_where @ demo" in out  # the journey saw run_source == "once"
        assert "search (" in out
        assert out.strip().splitlines()[-1] == "2 passed, 0 failed"

    async def test_failure_exits_1_naming_step_and_error_in_every_report(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """A broken endpoint: exit 1; the table, JUnit XML and JSON name the failed step
        and the error; JUnit validates against the schema CI systems read."""
        cfg = _config(tmp_path, {"demo": shop.url})
        await set_chaos(shop, "error", paths=["/api/products"])
        junit, out_json = tmp_path / "out" / "junit.xml", tmp_path / "out" / "results.json"
        code, out, err = await once(
            "--config", cfg, "--tag", "smoke", "--junit", junit, "--json", out_json
        )
        assert code == 1, out + err
        assert "FAIL    browse @ demo" in out and "step 'search'" in out
        assert "500 Internal Server Error" in out
        # JUnit, read back with a real parser and validated against the schema.
        xmlschema.XMLSchema(JUNIT_XSD).validate(junit)
        suites = JUnitXml.fromfile(str(junit))
        [suite] = list(suites)
        [case] = list(suite)
        assert case.name == "browse @ demo"
        [problem] = case.result
        assert isinstance(problem, Failure) and not isinstance(problem, Error)
        assert "step 'search'" in (problem.message or "")
        assert "500 Internal Server Error" in (problem.message or "")
        # junitparser reads properties only at suite level: take the case's by element.
        props = {p.get("name"): p.get("value") for p in case._elem.iter("property")}
        assert props["step.1.home"].startswith("success")
        assert props["step.2.search"].startswith("failure")
        # JSON, against its published schema.
        body = json.loads(out_json.read_text())
        jsonschema.validate(body, json.loads(JSON_SCHEMA.read_text()))
        assert body["passed"] is False
        [result] = body["results"]
        assert result["failed_step"] == "search" and result["result"] == "failure"

    async def test_retries_rerun_a_blip(self, tmp_path: Path, shop: RunningShop) -> None:
        """--retries 1 re-runs a failed pair; only the last attempt decides the exit code."""
        marker = tmp_path / "failed-once"
        blip = f"""
        from pathlib import Path
        from synthmon import journey

        @journey(interval="1m", timeout="5s")
        async def blip(ctx):
            async with ctx.step("flaky"):
                marker = Path({str(marker)!r})
                if not marker.exists():
                    marker.touch()
                    ctx.fail("first attempt fails")
        """
        cfg = _config(tmp_path, {"demo": shop.url}, extra={"blip.py": blip})
        code, out, err = await once("--config", cfg, "--journey", "blip", "--retries", "1")
        assert code == 0, out + err
        assert "blip @ demo: attempt 1 FAIL, retrying" in out
        code, out, err = await once("--config", cfg, "--journey", "browse", "--retries", "0")
        assert code == 0, out + err

    async def test_base_url_is_an_ad_hoc_target(self, tmp_path: Path, shop: RunningShop) -> None:
        """--base-url runs the journeys against a preview environment not in the config."""
        cfg = _config(tmp_path, {"prod": "http://127.0.0.1:9"})  # nothing listens there
        code, out, err = await once("--config", cfg, "--base-url", shop.url, "-j", "browse")
        assert code == 0, out + err
        assert "ok      browse @ adhoc" in out
        async with httpx.AsyncClient() as client:
            seen = (await client.get(f"{shop.url}/_seen")).json()
        # Tagged as synthetic like the daemon's traffic.
        assert seen and all(r["headers"].get("x-synthetic-monitor") for r in seen), seen

    @pytest.mark.parametrize(
        ("args", "needle"),
        [
            (["--journey", "nope"], "no journey named nope; known: ['browse', 'says_where']"),
            (["--target", "nope"], "no target named nope; known: ['demo']"),
            (["--tag", "nope"], "no journey has tag nope"),
            (["--parallel", "0"], "--parallel must be >= 1"),
        ],
    )
    async def test_usage_errors_exit_2_saying_what_exists(
        self, tmp_path: Path, shop: RunningShop, args: list[str], needle: str
    ) -> None:
        """Unknown names and bad flags exit 2 and list the known names."""
        cfg = _config(tmp_path, {"demo": shop.url})
        code, out, err = await once("--config", cfg, *args)
        assert code == 2, out + err
        assert needle in err


@pytest.mark.browser
class TestAuthorLoop:
    async def test_browser_journey_shows_steps_and_where_artifacts_went(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """`once --journey browser_checkout --artifacts always` with the repository's
        example config: each step shown, the screenshot and trace paths printed and on disk."""
        env = {
            "DEMO_SHOPPER1_PASSWORD": "shopper1-pass",
            "DEMO_SHOPPER2_PASSWORD": "shopper2-pass",
            "DEMO_MFA_PASSWORD": "mfa-pass",
            "DEMO_MFA_TOTP_SECRET": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
            "SYNTHMON_TARGETS__DEMO__BASE_URL": shop.url,
            "SYNTHMON_DATA_DIR": str(tmp_path / "data"),
        }
        if os.geteuid() == 0:
            env["SYNTHMON_BROWSER__NO_SANDBOX"] = "true"  # Chromium's sandbox refuses root
        code, out, err = await once(
            "--config",
            ROOT / "config.example.toml",
            "--journey",
            "browser_checkout",
            "--artifacts",
            "always",
            env_extra=env,
        )
        assert code == 0, out + err
        for step in ("login", "add to cart", "checkout"):
            assert f"ok      {step} (" in out
        paths = [
            line.split("artifact: ", 1)[1] for line in out.splitlines() if "artifact: " in line
        ]
        names = {Path(p).name for p in paths}
        assert {"screenshot.png", "trace.zip"} <= names, out
        assert all(os.path.getsize(p) > 0 for p in paths)


class TestNotify:
    async def test_notify_sends_an_alert_per_failed_run_and_nothing_without_it(
        self, tmp_path: Path, shop: RunningShop, receiver: Receiver
    ) -> None:
        """Without --notify a failed smoke test alerts nobody; with it, the configured
        webhook gets one trigger naming the journey and the failed step."""
        cfg = _config(tmp_path, {"demo": shop.url})
        cfg.write_text(
            cfg.read_text() + '\n[alerting.webhook]\nurl = { env = "TEST_WEBHOOK_URL" }\n'
        )
        await set_chaos(shop, "error", paths=["/api/products"])
        env = {"TEST_WEBHOOK_URL": f"{receiver.url}/webhook"}
        code, out, err = await once("--config", cfg, "-j", "browse", env_extra=env)
        assert code == 1, out + err
        assert receiver.bodies.get("/webhook") is None
        code, out, err = await once("--config", cfg, "-j", "browse", "--notify", env_extra=env)
        assert code == 1, out + err
        [body] = receiver.json("/webhook")
        assert body["journey"] == "browse" and body["failing_step"] == "search", body
        assert body["event"] == "trigger" and body["state"] == "firing"
