"""`synthmon check` and `synthmon run` as a user calls them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from synthmon_demo import RunningShop
from tests.harness import write_config, write_journeys
from tests.loopback import free_port

REPO = Path(__file__).resolve().parents[2]


def synthmon(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synthmon", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


class TestCheck:
    def test_repository_examples_are_clean(self) -> None:
        """The shipped config and journeys pass `synthmon check` (CI runs it too)."""
        out = synthmon(
            "check", "--config", str(REPO / "config.example.toml"), str(REPO / "journeys")
        )
        assert out.returncode == 0, out.stderr
        assert "browse_catalog" in out.stdout and "critical" in out.stdout
        assert "0 problems" in out.stdout

    def test_every_problem_is_file_line_message(self, tmp_path: Path) -> None:
        """Syntax errors, import errors, bad options, duplicate names and unknown targets
        are each reported as file:line: message, and the exit status is non-zero."""
        jdir = write_journeys(
            tmp_path / "journeys",
            {
                "a_ok.py": """
                    from synthmon import journey

                    @journey(interval="30s")
                    async def home(ctx): ...
                """,
                "b_syntax.py": "def broken(:\n",
                "c_import.py": "x = 1\ny = 2\nimport not_a_module_anywhere\n",
                "d_option.py": """
                    from synthmon import journey

                    @journey(severity="urgent")
                    async def loud(ctx): ...
                """,
                "e_dup.py": """
                    from synthmon import journey

                    @journey
                    async def home(ctx): ...
                """,
                "f_target.py": """
                    from synthmon import journey

                    @journey(targets=["staging"])
                    async def elsewhere(ctx): ...
                """,
            },
        )
        cfg = write_config(
            tmp_path / "c.toml", '[targets.prod]\nbase_url = "https://shop.example"\n'
        )
        out = synthmon("check", "--config", str(cfg), str(jdir))
        assert out.returncode == 1
        problems = out.stderr.strip().splitlines()
        assert problems[0].startswith(f"{jdir}/b_syntax.py:1: syntax error")
        assert problems[1].startswith(f"{jdir}/c_import.py:3: ModuleNotFoundError")
        assert problems[2].startswith(f"{jdir}/d_option.py:3: journey 'loud': severity='urgent'")
        assert problems[3].startswith(f"{jdir}/e_dup.py:3: duplicate journey name 'home'")
        assert "a_ok.py:3" in problems[3]
        assert problems[4].startswith(
            f"{jdir}/f_target.py:3: journey 'elsewhere' names unknown target"
        )
        assert len(problems) == 5
        assert "home" in out.stdout and "5 problems" in out.stdout

    def test_invalid_config_exits_2_naming_file_and_field(self, tmp_path: Path) -> None:
        """A bad config value exits with status 2 and names the file and the field."""
        cfg = write_config(tmp_path / "bad.toml", '[targets.prod]\nbase_url = "shop.example"\n')
        out = synthmon("check", "--config", str(cfg))
        assert out.returncode == 2
        assert f"{cfg}: targets.prod.base_url: " in out.stderr
        assert "absolute http(s) URL" in out.stderr

    def test_environment_override_errors_name_the_variable(self, tmp_path: Path) -> None:
        """An invalid SYNTHMON_* override is reported against the variable, not the file."""
        cfg = write_config(
            tmp_path / "ok.toml", '[targets.prod]\nbase_url = "https://shop.example"\n'
        )
        out = synthmon(
            "run", "--config", str(cfg), env={"SYNTHMON_SCHEDULER__MAX_CONCURRENCY": "lots"}
        )
        assert out.returncode == 2
        assert (
            "environment SYNTHMON_SCHEDULER__MAX_CONCURRENCY: scheduler.max_concurrency"
            in out.stderr
        )

    def test_unknown_key_is_an_error(self, tmp_path: Path) -> None:
        """A misspelt key is refused rather than silently ignored."""
        cfg = write_config(tmp_path / "typo.toml", '[server]\nlisen = "127.0.0.1:1"\n')
        out = synthmon("check", "--config", str(cfg))
        assert out.returncode == 2 and "server.lisen: unknown setting" in out.stderr

    def test_unusable_data_dir_exits_2(self, tmp_path: Path) -> None:
        """A data_dir that cannot be created is reported by path, not as a traceback."""
        (tmp_path / "file").write_text("not a folder")
        cfg = write_config(
            tmp_path / "c.toml",
            f"""
            data_dir = "{tmp_path / "file" / "data"}"
            [server]
            listen = "127.0.0.1:0"
            [targets.prod]
            base_url = "http://127.0.0.1:9"
            """,
        )
        out = synthmon("run", "--config", str(cfg))
        assert out.returncode == 2, out.stderr
        assert f"{tmp_path / 'file' / 'data'}" in out.stderr
        assert "Traceback" not in out.stderr

    def test_version(self) -> None:
        """--version prints the one version."""
        from synthmon import __version__

        assert synthmon("--version").stdout.strip() == f"synthmon {__version__}"


def _start(
    tmp_path: Path, shop: RunningShop, journeys: dict[str, str]
) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    jdir = write_journeys(tmp_path / "journeys", journeys)
    cfg = write_config(
        tmp_path / "synthmon.toml",
        f"""
        journeys_dir = "{jdir}"
        data_dir = "{tmp_path / "data"}"
        [server]
        listen = "127.0.0.1:{port}"
        [scheduler]
        shutdown_grace = "5s"
        loop_lag_warning = "200ms"
        [logging]
        format = "json"
        [targets.demo]
        base_url = "{shop.url}"
        """,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "synthmon", "run", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # Start-up imports and loads journeys: seconds on a loaded machine.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200:
                return proc, port
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"daemon did not come up: {proc.communicate()[0]}")


def _events(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


# In flight for 2 s of a 5 s timeout: the SIGTERM sent when /metrics shows it in flight
# lands before it ends, and it passes even on a loaded machine (with 0.8 s of a 1 s
# timeout, a loaded machine turned the drained run into a timeout, or let it finish
# before the signal arrived).
SLOW = """
    import asyncio
    from synthmon import Context, journey

    @journey(interval="5s", timeout="5s")
    async def slow(ctx: Context) -> None:
        async with ctx.step("wait"):
            await asyncio.sleep(2.0)
"""


def _wait_in_flight(port: int) -> None:
    """Until /metrics shows a run in flight (the first slot is up to one interval away)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        if "synthmon_runs_in_flight 1.0" in text:
            return
        time.sleep(0.05)
    raise AssertionError("no run was in flight within 60 s")


class TestRun:
    @pytest.mark.slow
    async def test_sigterm_drains_in_flight_runs_and_exits_0(
        self, shop: RunningShop, tmp_path: Path
    ) -> None:
        """SIGTERM stops scheduling, lets the run in flight finish, and exits 0."""
        proc, port = _start(tmp_path, shop, {"s.py": SLOW})
        # Wait until a run is in flight, then ask the daemon to stop.
        _wait_in_flight(port)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        events = _events(out)
        names = [e["event"] for e in events]
        assert "shutdown_started" in names and names[-1] == "shutdown_complete"
        finished = [e for e in events if e["event"] == "run_finished"]
        assert finished and finished[-1]["result"] == "success"
        assert names.index("shutdown_started") < names.index(
            "run_finished", names.index("shutdown_started")
        )

    @pytest.mark.slow
    async def test_second_signal_exits_at_once(self, shop: RunningShop, tmp_path: Path) -> None:
        """A second signal does not wait for the grace period."""
        stuck = """
            import asyncio
            from synthmon import Context, journey

            @journey(interval="1s", timeout="1s")
            async def stuck(ctx: Context) -> None:
                # Cleanup has its own 10 s budget: the run stays in flight past the grace.
                ctx.defer(lambda: asyncio.sleep(45))
        """
        proc, port = _start(tmp_path, shop, {"s.py": stuck})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if "synthmon_runs_in_flight 1.0" in httpx.get(f"http://127.0.0.1:{port}/metrics").text:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
        assert time.monotonic() - t0 < 3  # not the 5 s grace
        assert proc.returncode == 1
        assert "forced_exit" in out

    @pytest.mark.slow
    async def test_blocking_journey_is_named(self, shop: RunningShop, tmp_path: Path) -> None:
        """A journey blocking the event loop is named in a warning and shows in the lag metric."""
        blocking = """
            import time
            from synthmon import Context, journey

            @journey(interval="1s", timeout="1s")
            async def sleepy(ctx: Context) -> None:
                time.sleep(0.6)
        """
        proc, port = _start(tmp_path, shop, {"b.py": blocking})
        lag = 0.0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and lag < 0.3:
            for line in httpx.get(f"http://127.0.0.1:{port}/metrics").text.splitlines():
                if line.startswith("synthmon_event_loop_lag_seconds "):
                    lag = max(lag, float(line.split()[1]))
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        warnings = [e for e in _events(out) if e["event"] == "event_loop_blocked"]
        assert warnings, out
        # On a loaded machine the loop may also stall at start-up, before any journey
        # runs; those warnings name no journey. The journey's own stalls must name it.
        named = [(w.get("journey"), w.get("at")) for w in warnings if w.get("journey")]
        assert named, warnings
        assert set(named) == {("sleepy@demo", "b.py:6")}, warnings
        assert lag >= 0.3
