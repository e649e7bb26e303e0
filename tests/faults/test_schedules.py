"""Bad schedules: `synthmon check` and `synthmon run` give the same verdict, naming the
file, line and bounds; `run` keeps the good journeys running instead of crashing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.faults.conftest import Faults, Receiver, config_toml, journey_file, run_synthmon
from tests.harness import write_journeys

FILES = {
    "rare.py": journey_file(
        """
        @journey(interval="99999999w")
        async def rare(ctx: Context) -> None:
            pass
        """
    ),
    "flood.py": journey_file(
        """
        @journey(interval="1ms")
        async def flood(ctx: Context) -> None:
            pass
        """
    ),
    "endless.py": journey_file(
        """
        @journey(cron="0 * * * *", timeout="9999d")
        async def endless(ctx: Context) -> None:
            pass
        """
    ),
    "good.py": journey_file(
        """
        @journey(interval="1s", timeout="1s")
        async def good(ctx: Context) -> None:
            (await ctx.http.get("/ok")).raise_for_status()
        """
    ),
}
EXPECTED = {
    "rare.py": "interval='99999999w' is out of bounds: use between 1s and 7d",
    "flood.py": "interval='1ms' is out of bounds: use between 1s and 7d",
    "endless.py": "timeout='9999d' is out of bounds: use between 100ms and 1d",
}


class TestScheduleBounds:
    def test_check_rejects_each_naming_file_line_and_bounds(
        self, tmp_path: Path, faults: Faults
    ) -> None:
        """`synthmon check` exits 1 and lists every out-of-bounds schedule as
        file:line: message; the good journey is listed."""
        write_journeys(tmp_path / "journeys", FILES)
        cfg = tmp_path / "synthmon.toml"
        cfg.write_text(config_toml(tmp_path, 0, {"faults": faults.url}))
        proc = subprocess.run(
            [sys.executable, "-m", "synthmon", "check", "--config", str(cfg)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "FAULTS_WEBHOOK_URL": "http://127.0.0.1:9/"},
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1, out
        for name, message in EXPECTED.items():
            assert f"{name}:8: journey '{name[:-3]}': {message}" in out, out
        assert "Traceback" not in out
        assert "good" in proc.stdout

    def test_run_reports_the_same_and_runs_the_rest(
        self, tmp_path: Path, faults: Faults, receiver: Receiver
    ) -> None:
        """`synthmon run` logs the same problems as journey_load_error (no traceback,
        no crash), runs the good journey, and stops cleanly."""
        run = run_synthmon(tmp_path, FILES, {"faults": faults.url}, window=3.0, receiver=receiver)
        assert run.returncode == 0, run.output[-3000:]
        assert "Traceback" not in run.output
        errors = {Path(e["file"]).name: e["error"] for e in run.of("journey_load_error")}
        for name, message in EXPECTED.items():
            assert message in errors[name], errors
        assert {r["result"] for r in run.runs("good")} == {"success"}
        assert run.runs("flood") == []
