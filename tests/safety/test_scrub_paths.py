from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest

from synthmon.config.settings import load_settings
from synthmon.model import Status
from synthmon.runtime.logs import configure_logging
from synthmon.safety.facade import scrubber_for
from synthmon_demo import RunningShop
from tests.harness import make_settings, run_daemon

from .conftest import ACCOUNTS_TOML

LEAKY = {
    "leaky.py": """
        import os
        from synthmon import Context, journey

        NAMES = ["T_SHOPPER1_PASSWORD", "T_SHOPPER2_PASSWORD", "T_MFA_PASSWORD",
                 "T_MFA_TOTP", "T_API_TOKEN"]

        @journey(interval="1h", timeout="5s", account="mfa")
        async def leaky(ctx: Context) -> None:
            # A careless journey: every secret it can reach ends up in output.
            everything = " ".join(os.environ[n] for n in NAMES)
            ctx.log.info("about to log in", secrets=everything, nested={"pw": [everything]})
            async with ctx.step("soft leak", soft=True):
                raise AssertionError(f"soft step saw {everything}")
            async with ctx.step("login"):
                pw = ctx.account.password.get_secret_value()
                raise RuntimeError(f"login failed for password {pw} / {everything}")
    """
}


class TestScrubbingEveryPath:
    @pytest.mark.usefixtures("restore_logging")
    async def test_no_secret_reaches_logs_results_api_or_data_dir(
        self, tmp_path: Path, shop: RunningShop, secret_env: dict[str, str]
    ) -> None:
        """Each configured secret written by a journey into logs, step and run errors is
        replaced by *** in the log stream, the RunResults the sinks get, every /api
        response and the files under data_dir."""
        make_settings(
            tmp_path, targets={"demo": shop.url}, journeys=LEAKY, extra_toml=ACCOUNTS_TOML
        )
        text = (tmp_path / "synthmon.toml").read_text()
        (tmp_path / "synthmon.toml").write_text(
            text.replace(
                'listen = "127.0.0.1:0"',
                'listen = "127.0.0.1:0"\napi_token = { env = "T_API_TOKEN" }',
            )
        )
        settings = load_settings(tmp_path / "synthmon.toml")
        logs = io.StringIO()
        configure_logging(
            fmt="json", stream=logs, extra_processors=[scrubber_for(settings).processor]
        )
        token = secret_env["T_API_TOKEN"]
        async with run_daemon(settings) as (daemon, collector):
            result = await daemon.run_pair(*daemon.pairs["leaky@demo"])
            await daemon.fanout.flush()
            async with httpx.AsyncClient(base_url=daemon.server.url) as c:
                auth = {"Authorization": f"Bearer {token}"}
                paused = await c.post(
                    "/api/pause", json={"journey": "leaky", "reason": f"by {token}"}, headers=auth
                )
                api_bodies = [
                    paused.text,
                    (await c.get("/api/journeys")).text,
                    (await c.get("/api/journeys/leaky")).text,
                    (await c.get("/api/pauses")).text,
                ]
        assert result.status is Status.ERROR
        assert "***" in (result.error_message or "")
        assert "***" in api_bodies[1]
        assert "***" in logs.getvalue()
        outputs = {
            "logs": logs.getvalue(),
            "results": repr(collector.results),
            **{f"api{i}": body for i, body in enumerate(api_bodies)},
            **{
                str(p): p.read_text(errors="replace")
                for p in settings.data_dir.rglob("*")
                if p.is_file()
            },
        }
        assert any(k.endswith("pauses.json") for k in outputs)
        for name, value in secret_env.items():
            for where, text in outputs.items():
                assert value not in text, f"{name} leaked into {where}"
