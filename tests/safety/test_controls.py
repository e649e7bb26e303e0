from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from synthmon.cli import main
from synthmon.config.settings import Settings, load_settings
from synthmon.daemon import Daemon
from synthmon.errors import ConfigError
from synthmon.safety.pauses import PauseControls
from synthmon.web.auth import AccessPolicy
from synthmon_demo import RunningShop
from tests.harness import make_settings, run_daemon, sample, scrape

JOURNEYS = {
    "shop.py": """
        from synthmon import journey

        @journey(interval="1s", timeout="1s", tags=["shop"])
        async def home(ctx):
            await ctx.http.get("/")

        @journey(interval="1h", timeout="1s", tags=["other"])
        async def other(ctx):
            await ctx.http.get("/healthz")
    """
}


async def api(daemon: Daemon, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=daemon.server.url) as client:
        return await client.request(method, path, **kwargs)


async def paused_flags(daemon: Daemon) -> dict[str, bool]:
    r = await api(daemon, "GET", "/api/journeys")
    return {j["journey"]: j["paused"] for j in r.json()["journeys"]}


async def wait_until(predicate: Any, within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while not await predicate():
            await asyncio.sleep(0.05)


class TestKillSwitch:
    async def test_paused_journey_is_not_run_and_shows_as_paused(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """After POST /api/pause by tag, the journey stops running, is counted as skipped
        "paused", shows "paused": true in /api and synthmon_journey_paused is 1."""
        settings = make_settings(tmp_path, targets={"demo": shop.url}, journeys=JOURNEYS)
        async with run_daemon(settings) as (daemon, collector):
            r = await api(daemon, "POST", "/api/pause", json={"tag": "shop", "reason": "deploy"})
            assert r.status_code == 200, r.text
            assert r.json()["pairs"] == [{"journey": "home", "target": "demo"}]
            # A run already in flight may still finish; none may start from now on.
            paused_at = time.time()

            async def skipped_twice() -> bool:
                text = await scrape(daemon)
                n = sample(
                    text, "synthmon_journey_skipped_runs_total", journey="home", reason="paused"
                )
                return (n or 0) >= 2

            await wait_until(skipped_twice)
            await daemon.fanout.flush()
            assert [r for r in collector.of("home") if r.started_at >= paused_at] == []
            assert await paused_flags(daemon) == {"home": True, "other": False}
            text = await scrape(daemon)
            assert sample(text, "synthmon_journey_paused", journey="home") == 1
            assert sample(text, "synthmon_journey_paused", journey="other") == 0
            assert daemon.safety.is_paused(daemon.journeys["home"], "demo")
            assert not daemon.safety.is_paused(daemon.journeys["other"], "demo")

    async def test_pause_survives_restart_and_resume_too(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """A pause outlives a daemon restart; a resume does as well."""
        settings = make_settings(tmp_path, targets={"demo": shop.url}, journeys=JOURNEYS)
        async with run_daemon(settings) as (daemon, _):
            r = await api(daemon, "POST", "/api/pause", json={"journey": "other"})
            assert r.status_code == 200
        async with run_daemon(settings) as (daemon, _):
            assert await paused_flags(daemon) == {"home": False, "other": True}
            r = await api(daemon, "POST", "/api/resume", json={"journey": "other"})
            assert r.status_code == 200
            assert r.json()["still_paused"] == []
        async with run_daemon(settings) as (daemon, _):
            assert await paused_flags(daemon) == {"home": False, "other": False}

    async def test_resume_reports_other_rules_still_pausing(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """Resuming one rule tells which other rule still pauses the pair; --all clears."""
        settings = make_settings(tmp_path, targets={"demo": shop.url}, journeys=JOURNEYS)
        async with run_daemon(settings) as (daemon, _):
            await api(daemon, "POST", "/api/pause", json={"target": "demo"})
            await api(daemon, "POST", "/api/pause", json={"journey": "home"})
            r = await api(daemon, "POST", "/api/resume", json={"journey": "home"})
            assert {"journey": "home", "target": "demo", "paused_by": "target=demo"} in r.json()[
                "still_paused"
            ]
            r = await api(daemon, "POST", "/api/resume", json={"all": True})
            assert r.json()["still_paused"] == []
            assert await paused_flags(daemon) == {"home": False, "other": False}

    async def test_unknown_names_are_refused(self, tmp_path: Path, shop: RunningShop) -> None:
        """Pausing a misspelt journey is a 400 naming the known ones; nothing changes."""
        settings = make_settings(tmp_path, targets={"demo": shop.url}, journeys=JOURNEYS)
        async with run_daemon(settings) as (daemon, _):
            r = await api(daemon, "POST", "/api/pause", json={"journey": "hom"})
            assert r.status_code == 400
            assert "'home'" in r.json()["error"]
            r = await api(daemon, "POST", "/api/pause", json={})
            assert r.status_code == 400
            assert await paused_flags(daemon) == {"home": False, "other": False}
        assert not (settings.data_dir / "pauses.json").exists()

    async def test_cli_pause_and_resume_talk_to_the_daemon(
        self, tmp_path: Path, shop: RunningShop, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`synthmon pause --tag shop` pauses in the running daemon; `resume` undoes it."""
        settings = make_settings(tmp_path, targets={"demo": shop.url}, journeys=JOURNEYS)
        cfg = str(tmp_path / "synthmon.toml")
        async with run_daemon(settings) as (daemon, _):
            url = daemon.server.url
            code = await asyncio.to_thread(
                main, ["pause", "-c", cfg, "--url", url, "--tag", "shop", "--reason", "x"]
            )
            assert code == 0
            assert "home @ demo" in capsys.readouterr().out
            assert await paused_flags(daemon) == {"home": True, "other": False}
            code = await asyncio.to_thread(
                main, ["resume", "-c", cfg, "--url", url, "--tag", "shop"]
            )
            assert code == 0
            assert await paused_flags(daemon) == {"home": False, "other": False}
        code = await asyncio.to_thread(main, ["pause", "-c", cfg, "--url", url, "--all"])
        assert code == 1
        assert "cannot reach the daemon" in capsys.readouterr().err
        assert main(["pause", "-c", cfg]) == 2  # no selector given


class TestAccessControl:
    @pytest.fixture
    def token_settings(
        self, tmp_path: Path, shop: RunningShop, monkeypatch: pytest.MonkeyPatch
    ) -> Settings:
        monkeypatch.setenv("T_API_TOKEN", "tok-7f3a9c1e5b")
        monkeypatch.setenv("T_METRICS_PW", "scrape-pw-991")
        make_settings(tmp_path, targets={"demo": shop.url}, journeys=JOURNEYS)
        text = (
            (tmp_path / "synthmon.toml")
            .read_text()
            .replace(
                'listen = "127.0.0.1:0"',
                'listen = "127.0.0.1:0"\napi_token = { env = "T_API_TOKEN" }\n'
                'metrics_auth = { username = "prom", password = { env = "T_METRICS_PW" } }',
            )
        )
        (tmp_path / "synthmon.toml").write_text(text)
        return load_settings(tmp_path / "synthmon.toml")

    async def test_change_without_right_token_is_401_and_changes_nothing(
        self, token_settings: Settings
    ) -> None:
        """POST /api/pause without or with a wrong token gets 401 and pauses nothing."""
        async with run_daemon(token_settings) as (daemon, _):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "tok"}):
                r = await api(daemon, "POST", "/api/pause", json={"all": True}, headers=headers)
                assert r.status_code == 401
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
            assert daemon.safety.controls.rules == []
            assert not (token_settings.data_dir / "pauses.json").exists()
            r = await api(
                daemon,
                "POST",
                "/api/pause",
                json={"all": True},
                headers={"Authorization": "Bearer tok-7f3a9c1e5b"},
            )
            assert r.status_code == 200
            assert len(daemon.safety.controls.rules) == 1

    async def test_cli_sends_token_from_config(
        self, token_settings: Settings, tmp_path: Path
    ) -> None:
        """The CLI reads server.api_token from the config and is let through."""
        async with run_daemon(token_settings) as (daemon, _):
            code = await asyncio.to_thread(
                main,
                [
                    "pause",
                    "-c",
                    str(tmp_path / "synthmon.toml"),
                    "--url",
                    daemon.server.url,
                    "--journey",
                    "other",
                ],
            )
            assert code == 0
            assert daemon.safety.is_paused(daemon.journeys["other"], "demo")

    async def test_metrics_basic_auth(self, token_settings: Settings) -> None:
        """/metrics needs the configured basic credentials; reading /api does not."""
        async with run_daemon(token_settings) as (daemon, _):
            assert (await api(daemon, "GET", "/metrics")).status_code == 401
            bad = base64.b64encode(b"prom:nope").decode()
            r = await api(daemon, "GET", "/metrics", headers={"Authorization": f"Basic {bad}"})
            assert r.status_code == 401
            good = base64.b64encode(b"prom:scrape-pw-991").decode()
            r = await api(daemon, "GET", "/metrics", headers={"Authorization": f"Basic {good}"})
            assert r.status_code == 200
            assert "synthmon_build_info" in r.text
            assert (await api(daemon, "GET", "/api/journeys")).status_code == 200

    def test_non_loopback_without_token_refuses_changes(self) -> None:
        """Bound beyond loopback with no api_token, changes are refused; on loopback allowed."""
        assert AccessPolicy("0.0.0.0").check_change("") is not None
        assert AccessPolicy("10.1.2.3").check_change("Bearer x") is not None
        assert AccessPolicy("127.0.0.1").check_change("") is None
        assert AccessPolicy("::1").check_change("") is None
        token = AccessPolicy("127.0.0.1", api_token=SecretStr("t0ken"))
        assert token.check_change("") is not None  # a configured token is always required
        assert token.check_change("Bearer t0ken") is None

    def test_metrics_bearer_token(self) -> None:
        """metrics_auth with a token accepts only that bearer token."""
        policy = AccessPolicy("127.0.0.1", metrics_token=SecretStr("m-tok"))
        assert policy.check_metrics("Bearer m-tok") is None
        assert policy.check_metrics("Bearer other") is not None
        assert policy.check_metrics("") is not None


class TestPauseControls:
    def test_pause_file_is_json(self, tmp_path: Path) -> None:
        """The persisted pause state is readable JSON an operator can inspect."""
        controls = PauseControls(tmp_path / "pauses.json")
        controls.pause(tag="shop", reason="incident 42")
        data = json.loads((tmp_path / "pauses.json").read_text())
        assert data["rules"][0]["tag"] == "shop"
        assert data["rules"][0]["reason"] == "incident 42"

    async def test_corrupt_pause_file_stops_startup_with_clear_error(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """A corrupt pauses.json refuses to start (naming the file) rather than
        silently resuming journeys an operator paused."""
        settings = make_settings(tmp_path, targets={"demo": shop.url}, journeys=JOURNEYS)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        (settings.data_dir / "pauses.json").write_text("{not json")
        daemon = Daemon(settings)
        with pytest.raises(ConfigError, match=r"pauses\.json: corrupt pause state"):
            await daemon.start()
        assert daemon.state == "created"
