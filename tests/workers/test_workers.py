"""`[scheduler] workers = N`: HTTP journeys run in worker processes (docs/workers.md).

Every test runs a real daemon (as `synthmon run` builds it) with real worker
processes against the demo shop; the last one runs `synthmon run` itself."""

from __future__ import annotations

import asyncio
import os
import signal
import textwrap
import time
from pathlib import Path

import pytest

from synthmon.model import Status
from synthmon.runners.workers import pool as pool_module
from synthmon_demo import RunningShop
from tests.harness import make_settings, run_daemon, sample, scrape
from tests.safety.conftest import ACCOUNTS_TOML, SECRETS

WORKERS = "[scheduler]\nworkers = 2\n"

PID_JOURNEY = """
    import os
    from synthmon import Context, journey

    @journey(interval="1h", timeout="5s")
    async def where(ctx: Context) -> None:
        async with ctx.step(f"pid-{os.getpid()}"):
            r = await ctx.http.get("/api/products")
            assert r.status_code == 200

    @journey(interval="1h", timeout="5s")
    async def wrong(ctx: Context) -> None:
        r = await ctx.http.get("/api/products")
        assert r.status_code == 201
"""


def worker_pids() -> set[int]:
    """This test process's live worker processes, as `ps` shows them."""
    import psutil

    found = set()
    for child in psutil.Process().children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "workers.child" in " ".join(
                child.cmdline()
            ):
                found.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return found


async def _until(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


class TestRunsInWorkers:
    async def test_http_runs_happen_in_worker_processes(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """Runs execute in the worker processes, tagged as synthetic traffic like any
        run, and land in /metrics of the one daemon; a failure names the journey line."""
        settings = make_settings(
            tmp_path, targets={"demo": shop.url}, journeys={"j.py": PID_JOURNEY}, extra_toml=WORKERS
        )
        async with run_daemon(settings) as (daemon, _):
            workers = worker_pids()
            assert len(workers) == 2
            results = [await daemon.run_pair(*daemon.pairs["where@demo"]) for _ in range(6)]
            wrong = await daemon.run_pair(*daemon.pairs["wrong@demo"])
            await daemon.fanout.flush()
            text = await scrape(daemon)
        assert all(r.status is Status.SUCCESS for r in results), results
        pids = {int(r.steps[0].name.removeprefix("pid-")) for r in results}
        assert pids <= workers and os.getpid() not in pids
        assert wrong.status is Status.FAILURE
        assert "at j.py:13" in (wrong.error_message or ""), wrong.error_message
        assert "last response: 200" in (wrong.error_message or "")
        assert sample(text, "synthmon_journey_runs_total", journey="where", result="success") == 6
        assert sample(text, "synthmon_workers_up") == 2
        seen = [r for r in shop.state.seen() if r.path == "/api/products"]
        assert len(seen) == 7
        assert all(r.headers.get("x-synthetic-monitor") == "synthmon" for r in seen)
        assert all(r.headers.get("user-agent", "").startswith("synthmon/") for r in seen)

    async def test_accounts_and_totp_reach_the_worker(
        self, tmp_path: Path, shop: RunningShop, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A leased account (password, attributes, TOTP) is usable in a worker, and its
        requests carry the account tag."""
        for name, value in SECRETS.items():
            monkeypatch.setenv(name, value)
        from tests.safety.test_accounts import JOURNEYS

        settings = make_settings(
            tmp_path,
            targets={"demo": shop.url},
            journeys=JOURNEYS,
            extra_toml=WORKERS + ACCOUNTS_TOML,
        )
        async with run_daemon(settings) as (daemon, _):
            login = await daemon.run_pair(*daemon.pairs["shopper_login@demo"])
            mfa = await daemon.run_pair(*daemon.pairs["mfa_login@demo"])
            assert daemon.safety.accounts.in_use("shopper") == 0
        assert login.status is Status.SUCCESS, login.error_message
        assert mfa.status is Status.SUCCESS, mfa.error_message
        seen = [r for r in shop.state.seen() if r.path == "/api/login"]
        assert [r.headers.get("x-synthetic-account") for r in seen] == ["shopper", "mfa"]

    async def test_per_run_target_copies_keep_their_target(
        self, tmp_path: Path, shop: RunningShop, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A journey with its own max_response_size gets a new Target per run; the
        worker's table of sent objects is bounded (emptied and refilled), and every run
        still runs against its own target."""
        monkeypatch.setattr(pool_module, "MAX_REFS", 3)
        journeys = {
            "capped.py": """
                from synthmon import journey

                @journey(interval="1h", timeout="5s", max_response_size="1MB")
                async def capped(ctx):
                    async with ctx.step(ctx.target.name):
                        (await ctx.http.get("/api/products")).raise_for_status()
            """
        }
        settings = make_settings(
            tmp_path,
            targets={"one": shop.url, "two": shop.url},
            journeys=journeys,
            extra_toml="[scheduler]\nworkers = 1\n",
        )
        async with run_daemon(settings) as (daemon, _):
            results = await asyncio.gather(
                *(daemon.run_pair(*daemon.pairs[f"capped@{t}"]) for t in ["one", "two"] * 8)
            )
        assert all(r.status is Status.SUCCESS for r in results), results
        assert [r.steps[0].name for r in results] == [r.target for r in results]

    async def test_timeout_in_a_worker_is_a_timeout(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """A journey that overruns its timeout in a worker ends as timeout, as in-process."""
        journeys = {
            "slow.py": """
                import asyncio
                from synthmon import journey

                @journey(interval="1h", timeout="0.5s")
                async def slow(ctx):
                    async with ctx.step("wait"):
                        await asyncio.sleep(5)
            """
        }
        settings = make_settings(
            tmp_path, targets={"demo": shop.url}, journeys=journeys, extra_toml=WORKERS
        )
        async with run_daemon(settings) as (daemon, _):
            result = await daemon.run_pair(*daemon.pairs["slow@demo"])
        assert result.status is Status.TIMEOUT
        assert result.failed_step == "wait"


SLOW = """
    import asyncio, time
    from synthmon import journey

    @journey(interval="1h", timeout="10s")
    async def slow(ctx):
        await asyncio.sleep(8)

    @journey(interval="1h", timeout="1s")
    async def blocks(ctx):
        time.sleep(6)  # blocks the worker's event loop

    @journey(interval="1h", timeout="5s")
    async def quick(ctx):
        (await ctx.http.get("/api/products")).raise_for_status()
"""


class TestWorkerFailures:
    async def test_killed_worker_loses_its_runs_not_the_target(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """A worker killed mid-run: its run ends as error worker_lost (an infrastructure
        error: no alert for the target), the worker is started again, runs go on."""
        settings = make_settings(
            tmp_path,
            targets={"demo": shop.url},
            journeys={"s.py": SLOW},
            extra_toml="[scheduler]\nworkers = 1\n[alerting.severity.warning]\nfailures = 1\n",
        )
        async with run_daemon(settings) as (daemon, _):
            (victim,) = worker_pids()
            running = asyncio.create_task(daemon.run_pair(*daemon.pairs["slow@demo"]))
            await asyncio.sleep(1.0)
            os.kill(victim, signal.SIGKILL)
            lost = await running
            await _until(lambda: len(worker_pids()) == 1 and worker_pids() != {victim})
            after = await daemon.run_pair(*daemon.pairs["quick@demo"])
            await daemon.fanout.flush()
            text = await scrape(daemon)
            firing = daemon.alerting.firing("slow", "demo")
        assert lost.status is Status.ERROR and lost.reason == "worker_lost", lost
        assert "killed by signal 9" in (lost.error_message or ""), lost.error_message
        assert not firing
        assert after.status is Status.SUCCESS, after.error_message
        assert sample(text, "synthmon_worker_restarts_total", reason="exited") == 1
        assert (
            sample(
                text,
                "synthmon_journey_infrastructure_errors_total",
                journey="slow",
                reason="worker_lost",
            )
            == 1
        )

    async def test_stuck_worker_is_restarted(
        self, tmp_path: Path, shop: RunningShop, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A journey blocking its worker's event loop (time.sleep) stops only that
        worker: the run ends worker_lost once past its deadline, the worker is
        restarted, and the daemon's own loop never stalls."""
        monkeypatch.setattr(pool_module, "CLEANUP_BUDGET", 0.5)
        monkeypatch.setattr(pool_module, "STUCK_GRACE", 0.5)
        settings = make_settings(
            tmp_path, targets={"demo": shop.url}, journeys={"s.py": SLOW}, extra_toml=WORKERS
        )
        async with run_daemon(settings) as (daemon, _):
            before = worker_pids()
            t0 = time.monotonic()
            stuck = await daemon.run_pair(*daemon.pairs["blocks@demo"])
            waited = time.monotonic() - t0
            await _until(lambda: len(worker_pids()) == 2 and worker_pids() != before)
            after = await daemon.run_pair(*daemon.pairs["quick@demo"])
            text = await scrape(daemon)
        assert stuck.status is Status.ERROR and stuck.reason == "worker_lost", stuck
        assert "stopped answering" in (stuck.error_message or "")
        assert waited < 5.5  # not the 6 s the journey blocks for
        assert after.status is Status.SUCCESS
        assert sample(text, "synthmon_worker_restarts_total", reason="stuck") == 1

    async def test_a_file_that_imports_only_in_the_daemon_is_an_error_naming_it(
        self, tmp_path: Path, shop: RunningShop, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A journey file whose import fails in a worker (it depends on the process)
        gives runs that are error worker_load naming the file and the exception, not
        failures of the target; the worker goes on serving other journeys."""
        monkeypatch.setenv("DAEMON_PID", str(os.getpid()))
        journeys = {
            "picky.py": """
                import os
                from synthmon import journey

                if os.environ["DAEMON_PID"] != str(os.getpid()):
                    raise RuntimeError("imports only in the daemon")

                @journey(interval="1h", timeout="5s")
                async def picky(ctx):
                    pass
            """,
            "fine.py": """
                from synthmon import journey

                @journey(interval="1h", timeout="5s")
                async def fine(ctx):
                    (await ctx.http.get("/api/products")).raise_for_status()
            """,
        }
        settings = make_settings(
            tmp_path,
            targets={"demo": shop.url},
            journeys=journeys,
            extra_toml="[scheduler]\nworkers = 1\n",
        )
        async with run_daemon(settings) as (daemon, _):
            picky = await daemon.run_pair(*daemon.pairs["picky@demo"])
            fine = await daemon.run_pair(*daemon.pairs["fine@demo"])
        assert picky.status is Status.ERROR and picky.reason == "worker_load", picky
        assert "picky.py" in (picky.error_message or "")
        assert "RuntimeError on import: imports only in the daemon" in (picky.error_message or "")
        assert fine.status is Status.SUCCESS, fine.error_message

    async def test_workers_that_cannot_start_are_retried_and_runs_say_so(
        self, tmp_path: Path, shop: RunningShop, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When no worker can start (a broken interpreter), the daemon still serves,
        runs end as error worker_unavailable (not against the target) after waiting
        their timeout for a worker, and the failed starts are counted and retried."""
        monkeypatch.setattr("sys.executable", "/bin/false")
        journeys = {
            "q.py": """
                from synthmon import journey

                @journey(interval="1h", timeout="1s")
                async def quick(ctx):
                    (await ctx.http.get("/api/products")).raise_for_status()
            """
        }
        settings = make_settings(
            tmp_path, targets={"demo": shop.url}, journeys=journeys, extra_toml=WORKERS
        )
        async with run_daemon(settings) as (daemon, _):
            result = await daemon.run_pair(*daemon.pairs["quick@demo"])
            await asyncio.sleep(1.0)  # a retry after the 0.5 s back-off
            await daemon.fanout.flush()
            text = await scrape(daemon)
        assert result.status is Status.ERROR and result.reason == "worker_unavailable"
        assert result.duration >= 0.9
        assert sample(text, "synthmon_workers_up") == 0
        assert (sample(text, "synthmon_worker_restarts_total", reason="start_failed") or 0) >= 3
        assert shop.state.stats("/api/products").total == 0


class TestWorkersHotReload:
    async def test_log_level_change_reaches_the_workers(
        self, tmp_path: Path, shop: RunningShop, capfd: pytest.CaptureFixture[str]
    ) -> None:
        """`[logging] level` applies live (config reload) in the workers too: a journey's
        info line stops once the level is warning."""
        journeys = {
            "chatty.py": """
                from synthmon import journey

                @journey(interval="1h", timeout="5s")
                async def chatty(ctx):
                    ctx.log.info("hello_from_the_worker")
            """
        }
        cfg = tmp_path / "synthmon.toml"
        settings = make_settings(
            tmp_path, targets={"demo": shop.url}, journeys=journeys, extra_toml=WORKERS
        )
        async with run_daemon(settings, config_path=cfg, watch=False) as (daemon, _):
            await daemon.run_pair(*daemon.pairs["chatty@demo"])
            await asyncio.sleep(0.3)  # the worker's log line (stdout, as the daemon's)
            before = capfd.readouterr().out
            cfg.write_text(cfg.read_text() + '[logging]\nlevel = "warning"\n')
            daemon.reload_config()
            await asyncio.sleep(0.3)  # the level message reaches the workers first
            await daemon.run_pair(*daemon.pairs["chatty@demo"])
            await asyncio.sleep(0.3)
            after = capfd.readouterr().out
        assert "hello_from_the_worker" in before
        assert "hello_from_the_worker" not in after

    async def test_workers_run_the_version_the_daemon_loaded(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """An edited journey runs its new version in the workers; a broken edit keeps
        the previous version running there too."""

        def version(v: str) -> str:
            return textwrap.dedent(f"""
                from synthmon import journey

                @journey(interval="1h", timeout="5s")
                async def edited(ctx):
                    async with ctx.step("{v}"):
                        (await ctx.http.get("/api/products")).raise_for_status()
            """)

        settings = make_settings(
            tmp_path,
            targets={"demo": shop.url},
            journeys={"e.py": version("v1")},
            extra_toml=WORKERS,
        )
        path = settings.journeys_dir / "e.py"
        async with run_daemon(settings, watch=False) as (daemon, _):
            steps = []
            for text in (version("v2"), version("v3") + "\n)broken(\n"):
                steps.append((await daemon.run_pair(*daemon.pairs["edited@demo"])).steps[0].name)
                path.write_text(text)
                daemon.reload()
            # Both workers, not only the one that happens to be picked first.
            results = await asyncio.gather(
                *(daemon.run_pair(*daemon.pairs["edited@demo"]) for _ in range(4))
            )
        assert steps == ["v1", "v2"]
        assert [r.steps[0].name for r in results] == ["v2"] * 4


LOGS_SECRET = """
    from synthmon import Context, journey

    @journey(interval="1s", timeout="1s", account="shopper")
    async def chatty(ctx: Context) -> None:
        # A careless journey author: the password goes to the log.
        ctx.log.info("signing_in", password=ctx.account.password.get_secret_value())
        (await ctx.http.get("/api/products")).raise_for_status()
"""


class TestSynthmonRunWithWorkers:
    @pytest.mark.slow
    async def test_synthmon_run_scrubs_worker_logs_and_stops_its_workers(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """`synthmon run` with workers: runs pass, a secret a journey logs in a worker
        is masked on the daemon's stderr, and SIGTERM leaves no worker behind."""
        import subprocess
        import sys

        import httpx
        import psutil

        from tests.harness import write_config, write_journeys
        from tests.loopback import free_port

        port = free_port()
        jdir = write_journeys(tmp_path / "journeys", {"c.py": LOGS_SECRET})
        cfg = write_config(
            tmp_path / "synthmon.toml",
            f"""
            journeys_dir = "{jdir}"
            data_dir = "{tmp_path / "data"}"
            [server]
            listen = "127.0.0.1:{port}"
            [scheduler]
            workers = 2
            [logging]
            format = "json"
            [targets.demo]
            base_url = "{shop.url}"
            """
            + textwrap.dedent(ACCOUNTS_TOML),
        )
        log_path = tmp_path / "daemon.log"
        env = {**os.environ, **SECRETS}
        with log_path.open("w") as log:
            proc = subprocess.Popen(  # noqa: ASYNC220 - started once, stopped below
                [sys.executable, "-m", "synthmon", "run", "--config", str(cfg)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
            try:
                runs = 0.0
                deadline = time.monotonic() + 40
                async with httpx.AsyncClient() as c:
                    while runs < 3:
                        assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                        await asyncio.sleep(0.3)
                        try:
                            text = (await c.get(f"http://127.0.0.1:{port}/metrics")).text
                        except httpx.TransportError:
                            continue
                        runs = sample(text, "synthmon_journey_runs_total", result="success") or 0
                assert sample(text, "synthmon_workers_up") == 2
                workers = [
                    p
                    for p in psutil.Process(proc.pid).children()
                    if "workers.child" in " ".join(p.cmdline())
                ]
                assert len(workers) == 2
            finally:
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(timeout=30)
        assert code == 0
        assert not [p for p in workers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        logged = log_path.read_text()
        assert '"event": "signing_in"' in logged
        assert SECRETS["T_SHOPPER1_PASSWORD"] not in logged
        assert SECRETS["T_SHOPPER2_PASSWORD"] not in logged
        assert '"password": "***"' in logged
