"""Hot reload: journey authors add a file to `journeys/` and nothing else; the config
file applies what it can live. Through a Daemon built as `synthmon run` builds it
(config path given, watcher on) and through `synthmon run` itself (SIGHUP)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import structlog

from synthmon.config.settings import load_settings
from synthmon.daemon import Daemon
from synthmon_demo import RunningShop
from tests.core.test_cli import _events
from tests.harness import make_settings, run_daemon, sample, scrape, write_config
from tests.loopback import free_port

FAST = """
    from synthmon import Context, journey

    @journey(interval="1s", timeout="1s")
    async def {name}(ctx: Context) -> None:
        async with ctx.step("{step}"):
            r = await ctx.http.get("/")
            assert r.status_code == 200
"""


def fast(name: str, step: str = "home") -> str:
    return textwrap.dedent(FAST.format(name=name, step=step)).lstrip()


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def _phase(daemon: Daemon, key: str) -> float:
    nxt = daemon.scheduler.next_run(key)
    assert nxt is not None
    return nxt % 1.0  # every journey here runs each second


class TestJourneyFolderReload:
    async def test_new_file_runs_and_others_keep_their_schedule(
        self, shop: RunningShop, tmp_path: Path
    ) -> None:
        """A file dropped into journeys/ is scheduled; the other pairs keep phase and object."""
        settings = make_settings(tmp_path, targets={"demo": shop.url}, journeys={"a.py": fast("a")})
        async with run_daemon(settings, config_path=tmp_path / "synthmon.toml") as (d, results):
            before = (d.pairs["a@demo"][0], _phase(d, "a@demo"))
            (tmp_path / "journeys" / "b.py").write_text(fast("b"))
            await results.wait_for(lambda rs: any(r.journey == "b" for r in rs), timeout=10)
            after = (d.pairs["a@demo"][0], _phase(d, "a@demo"))
        assert after[0] is before[0]
        assert abs(after[1] - before[1]) < 1e-6

    async def test_changed_file_runs_its_new_version(
        self, shop: RunningShop, tmp_path: Path
    ) -> None:
        """Editing a journey file runs the new code at the pair's next slot."""
        settings = make_settings(
            tmp_path, targets={"demo": shop.url}, journeys={"a.py": fast("a", "old")}
        )
        async with run_daemon(settings, config_path=tmp_path / "synthmon.toml") as (_, results):
            await results.wait_for(lambda rs: len(rs) >= 1, timeout=5)
            (tmp_path / "journeys" / "a.py").write_text(fast("a", "new"))
            await results.wait_for(
                lambda rs: any(r.steps and r.steps[0].name == "new" for r in rs), timeout=10
            )

    async def test_removed_file_is_unscheduled_and_its_series_go(
        self, shop: RunningShop, tmp_path: Path
    ) -> None:
        """Deleting a journey file stops its runs and removes its series from /metrics."""
        settings = make_settings(
            tmp_path,
            targets={"demo": shop.url},
            journeys={"a.py": fast("a"), "b.py": fast("b")},
        )
        async with run_daemon(settings, config_path=tmp_path / "synthmon.toml") as (d, results):
            await results.wait_for(lambda rs: {r.journey for r in rs} == {"a", "b"}, timeout=6)
            await d.fanout.flush()
            (tmp_path / "journeys" / "b.py").unlink()
            await eventually(lambda: "b@demo" not in d.pairs)
            text = await scrape(d)
            scheduled = d.scheduler.keys()
        assert "b@demo" not in scheduled
        assert 'journey="b"' not in text
        assert 'journey="a"' in text

    async def test_broken_edit_keeps_the_previous_version_running(
        self, shop: RunningShop, tmp_path: Path
    ) -> None:
        """A broken edit is reported (log, metric, /readyz) and the last good version runs on."""
        settings = make_settings(tmp_path, targets={"demo": shop.url}, journeys={"a.py": fast("a")})
        path = tmp_path / "journeys" / "a.py"
        with structlog.testing.capture_logs() as logs:
            async with run_daemon(settings, config_path=tmp_path / "synthmon.toml") as (
                d,
                results,
            ):
                await results.wait_for(lambda rs: len(rs) >= 1, timeout=5)
                path.write_text(fast("a") + "\ndef broken(:\n")
                await eventually(lambda: bool(d.load_report.problems))
                seen = len(results.results)
                await results.wait_for(lambda rs: len(rs) >= seen + 2, timeout=5)
                text = await scrape(d)
                async with httpx.AsyncClient() as client:
                    ready = (await client.get(f"{d.server.url}/readyz")).json()
        assert "a@demo" in d.pairs
        assert sample(text, "synthmon_journey_load_errors", file=str(path)) == 1
        errors = [e for e in logs if e["event"] == "journey_load_error"]
        assert errors and errors[-1]["file"] == str(path) and errors[-1]["line"] == 9
        assert errors[-1]["running"] == "previous version"
        assert ready["ready"] is True


class TestConfigReload:
    async def test_target_changes_apply_live(self, shop: RunningShop, tmp_path: Path) -> None:
        """A new target gets its pairs, a changed target's headers reach the next runs."""
        settings = make_settings(tmp_path, targets={"demo": shop.url}, journeys={"a.py": fast("a")})
        cfg = tmp_path / "synthmon.toml"
        async with run_daemon(settings, config_path=cfg) as (d, results):
            await results.wait_for(lambda rs: len(rs) >= 1, timeout=5)
            body = cfg.read_text() + (
                '[targets.demo.headers]\nX-Env = "reloaded"\n'
                f'[targets.second]\nbase_url = "{shop.url}"\n'
            )
            cfg.write_text(body)
            await results.wait_for(lambda rs: any(r.target == "second" for r in rs), timeout=10)
            shop.state.reset()
            seen = len(results.results)
            await results.wait_for(lambda rs: len(rs) >= seen + 2, timeout=5)
        assert {"a@demo", "a@second"} <= d.pairs.keys()
        assert any(r.headers.get("x-env") == "reloaded" for r in shop.state.seen("/"))

    async def test_settings_that_need_a_restart_are_named(
        self, shop: RunningShop, tmp_path: Path
    ) -> None:
        """Changing server.listen or data_dir logs which fields wait for a restart."""
        settings = make_settings(tmp_path, targets={"demo": shop.url}, journeys={"a.py": fast("a")})
        cfg = tmp_path / "synthmon.toml"
        with structlog.testing.capture_logs() as logs:
            async with run_daemon(settings, config_path=cfg) as (d, _):
                text = cfg.read_text().replace("127.0.0.1:0", "127.0.0.1:1")
                cfg.write_text(text.replace(str(tmp_path / "data"), str(tmp_path / "other")))
                await eventually(
                    lambda: any(e["event"] == "config_change_needs_restart" for e in logs)
                )
                url = d.server.url
        event = next(e for e in logs if e["event"] == "config_change_needs_restart")
        assert event["fields"] == ["data_dir", "server.listen"]
        assert url.endswith(f":{d.server.port}") and d.settings.data_dir == tmp_path / "data"

    async def test_invalid_config_keeps_the_running_one(
        self, shop: RunningShop, tmp_path: Path
    ) -> None:
        """A broken config edit is logged with the field; targets and journeys run on."""
        settings = make_settings(tmp_path, targets={"demo": shop.url}, journeys={"a.py": fast("a")})
        cfg = tmp_path / "synthmon.toml"
        with structlog.testing.capture_logs() as logs:
            async with run_daemon(settings, config_path=cfg) as (d, results):
                cfg.write_text(cfg.read_text() + "[targets.bad]\nbase_url = 'nope'\n")
                await eventually(lambda: any(e["event"] == "config_reload_error" for e in logs))
                seen = len(results.results)
                await results.wait_for(lambda rs: len(rs) >= seen + 1, timeout=5)
        error = next(e for e in logs if e["event"] == "config_reload_error")
        assert "targets.bad.base_url" in error["error"]
        assert set(d.targets) == {"demo"}


def _configmap(folder: Path, files: dict[str, str], version: int) -> None:
    """Lay out `files` as the kubelet mounts a ConfigMap, or swap to a new version:
    `..<ts>/` holds the data, `..data` points to it, each key is `key -> ..data/key`."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"..2026_11_29_21_00_0{version}.000000000"
    data.mkdir()
    for name, body in files.items():
        (data / name).write_text(textwrap.dedent(body).lstrip())
    old = os.readlink(folder / "..data") if (folder / "..data").is_symlink() else None
    os.symlink(data.name, folder / "..data_tmp")
    os.rename(folder / "..data_tmp", folder / "..data")  # the atomic swap
    for name in files:
        if not (folder / name).is_symlink():
            os.symlink(f"..data/{name}", folder / name)
    if old is not None:
        shutil.rmtree(folder / old)


class TestKubernetesConfigMap:
    async def test_symlink_swap_is_picked_up(self, shop: RunningShop, tmp_path: Path) -> None:
        """A ConfigMap update (atomic `..data` swap) reloads the journeys and the config."""
        jdir, cdir = tmp_path / "journeys", tmp_path / "config"
        config = f"""
            journeys_dir = "{jdir}"
            data_dir = "{tmp_path / "data"}"
            [server]
            listen = "127.0.0.1:0"
            [targets.demo]
            base_url = "{shop.url}"
        """
        _configmap(jdir, {"a.py": fast("a", "v1")}, 1)
        _configmap(cdir, {"synthmon.toml": config}, 1)
        cfg = cdir / "synthmon.toml"
        async with run_daemon(load_settings(cfg), config_path=cfg) as (d, results):
            await results.wait_for(lambda rs: len(rs) >= 1, timeout=5)
            _configmap(jdir, {"a.py": fast("a", "v2")}, 2)
            await results.wait_for(
                lambda rs: any(r.steps and r.steps[0].name == "v2" for r in rs), timeout=10
            )
            more = config + f'[targets.second]\nbase_url = "{shop.url}"\n'
            _configmap(cdir, {"synthmon.toml": more}, 2)
            await results.wait_for(lambda rs: any(r.target == "second" for r in rs), timeout=10)
        assert set(d.targets) == {"demo", "second"}


class TestSighup:
    async def test_sighup_reloads_through_synthmon_run(
        self, shop: RunningShop, tmp_path: Path
    ) -> None:
        """`synthmon run` reloads on SIGHUP, applies log level live and names restart fields."""
        port = free_port()
        jdir = tmp_path / "journeys"
        jdir.mkdir()
        (jdir / "a.py").write_text(fast("a"))
        body = f"""
            journeys_dir = "{jdir}"
            data_dir = "{tmp_path / "data"}"
            [server]
            listen = "127.0.0.1:{port}"
            [logging]
            format = "json"
            level = "info"
            [targets.demo]
            base_url = "{shop.url}"
        """
        # The config is a symlink to a file in a folder nobody watches: only SIGHUP
        # can tell the daemon about this edit.
        real = write_config(tmp_path / "elsewhere.toml", body)
        (tmp_path / "etc").mkdir()
        cfg = tmp_path / "etc" / "synthmon.toml"
        cfg.symlink_to(real)
        log_path = tmp_path / "out.log"
        proc = _spawn(cfg, log_path)
        metrics = f"http://127.0.0.1:{port}/metrics"
        # Everything below waits with asyncio: the shop answering the runs lives on
        # this test's event loop (a time.sleep here timed every run out).
        try:
            await _wait_for(metrics, 'journey="a"')
            await _wait_logged(log_path, _passed_at_info)
            other = free_port()
            edited = textwrap.dedent(body).replace('level = "info"', 'level = "warning"')
            real.write_text(edited.replace(f":{port}", f":{other}"))
            await asyncio.sleep(2.5)  # runs log at info; no watcher event: nothing reloads yet
            proc.send_signal(signal.SIGHUP)
            await _wait_logged(log_path, lambda e: e["event"] == "config_change_needs_restart")
            # Two more passing runs at the new level (counted, no longer logged); the
            # listen address needs a restart, so the old port still answers.
            runs = await _passed(metrics, "a")
            async with asyncio.timeout(60):
                while await _passed(metrics, "a") < runs + 2:
                    await asyncio.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        events = _events(log_path.read_text())
        names = [e["event"] for e in events]
        hup = names.index("config_change_needs_restart")
        # The reload follows the SIGHUP (runs may log in between), and nothing before
        # the signal reloaded the edited file.
        [signalled] = [i for i, e in enumerate(events) if e.get("signal") == "SIGHUP"]
        assert signalled < hup
        assert not {"config_change_needs_restart", "config_reloaded"} & set(names[:signalled])
        assert events[hup]["fields"] == ["server.listen"]
        assert any(_passed_at_info(e) for e in events[:signalled])
        # From warning on, passing runs (info) are no longer logged.
        later = [e for e in events[hup:] if e["event"] == "run_finished"]
        assert all(e["level"] != "info" for e in later)


def _spawn(cfg: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """`synthmon run`, its output into `log_path` (read while it runs)."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "synthmon", "run", "--config", str(cfg)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _passed_at_info(event: dict[str, object]) -> bool:
    return event["event"] == "run_finished" and event["level"] == "info"


async def _wait_logged(
    log_path: Path, match: Callable[[dict[str, object]], bool], timeout: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        # Whole lines only: the daemon may be writing the last one.
        done = log_path.read_text().rpartition("\n")[0]
        if any(match(e) for e in _events(done)):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not logged within {timeout}s: {log_path.read_text()[-3000:]}")
        await asyncio.sleep(0.1)


async def _passed(url: str, journey: str) -> float:
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(url)).text
    return sample(text, "synthmon_journey_runs_total", journey=journey, result="success") or 0.0


async def _wait_for(url: str, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < deadline:
            try:
                if text in (await client.get(url)).text:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{text!r} not at {url} within {timeout}s")
