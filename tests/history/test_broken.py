"""History is best-effort: a corrupt, read-only or full history database is reported
(log, metric, /readyz detail) while the daemon keeps running journeys, exporting
metrics and firing alerts."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from synthmon.model import RunResult, Status
from synthmon.sinks.history.store import SqliteHistory
from synthmon_demo import RunningShop
from tests.conftest import set_chaos
from tests.harness import make_settings, run_daemon, sample, scrape
from tests.history.conftest import FAST_CRITICAL, check, eventually

LABELS = {"journey": "home", "target": "demo"}


@contextlib.contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at `path` (root runs the tests, so chmod would not stop writes)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): needs root/CAP_SYS_ADMIN")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _settings(tmp_path: Path, shop: RunningShop, history_dir: Path | None = None) -> Any:
    extra = '[history]\nflush_interval = "100ms"\nstats_interval = "200ms"\n'
    if history_dir is not None:
        extra += f'dir = "{history_dir}"\n'
    return make_settings(
        tmp_path, targets={"demo": shop.url}, journeys={"h.py": FAST_CRITICAL}, extra_toml=extra
    )


async def _monitoring_goes_on(daemon: Any, shop: RunningShop, results: Any) -> str:
    """Runs are counted and an outage still fires its alert; returns the last scrape."""
    await set_chaos(shop, "error")

    async def firing() -> str | None:
        text = await scrape(daemon)
        state = sample(text, "synthmon_alert_state", alertname="SyntheticJourneyFailed", **LABELS)
        return text if state == 2 else None

    text = await eventually(firing, what="the alert fires")
    await set_chaos(shop, "ok")
    assert (sample(text, "synthmon_journey_runs_total", result="failure", **LABELS) or 0) >= 2
    return text


def _fake_run(i: int) -> RunResult:
    return RunResult("home", "demo", f"{i:032x}", f"{i:032x}", Status.SUCCESS, 1e9 + i, 0.01)


class TestCorruptDatabase:
    @pytest.mark.parametrize("damage", ["truncated", "garbage"])
    async def test_damaged_file_is_moved_aside_and_recording_resumes(
        self, shop: RunningShop, tmp_path: Path, damage: str
    ) -> None:
        """A truncated or overwritten history.sqlite3 is reported, kept as
        history.sqlite3.corrupt-<time>, and a new one records the runs."""
        data = tmp_path / "data"
        store = SqliteHistory(data / "history.sqlite3")
        store.write([_fake_run(i) for i in range(2000)], [], [])
        store.maintain(2e9, 1e12, 1 << 40)  # checkpoint: everything in the main file
        store.close()
        path = data / "history.sqlite3"
        if damage == "truncated":
            os.truncate(path, path.stat().st_size // 3)
        else:
            with path.open("r+b") as f:
                f.write(b"\x00not a database\x00" * 16)
        settings = _settings(tmp_path, shop)
        async with (
            run_daemon(settings) as (daemon, results),
            httpx.AsyncClient(base_url=daemon.server.url) as c,
        ):

            async def recorded() -> list[Any]:
                r = await c.get("/api/journeys/home/runs")
                return list(r.json().get("runs", [])) if r.status_code == 200 else []

            await eventually(recorded, what="runs recorded in the new file")
            ready = (await c.get("/readyz")).json()
            text = await _monitoring_goes_on(daemon, shop, results)
        assert list(data.glob("history.sqlite3.corrupt-*"))
        history = ready["checks"]["history"]
        assert ready["ready"] is True and history["ok"] is True
        assert "corrupt" in history["last_problem"]
        assert sample(text, "synthmon_history_problems_total", problem="corrupt") == 1
        assert sample(text, "synthmon_history_up") == 1


class TestUnwritableDatabase:
    async def test_read_only_directory(self, shop: RunningShop, tmp_path: Path) -> None:
        """History on a read-only mount: reported down (metric, /readyz, 503 from the
        API naming why) while runs, metrics and alerts go on."""
        with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
            settings = _settings(tmp_path, shop, history_dir=ro)
            async with (
                run_daemon(settings) as (daemon, results),
                httpx.AsyncClient(base_url=daemon.server.url) as c,
            ):
                text = await _monitoring_goes_on(daemon, shop, results)
                ready = (await c.get("/readyz")).json()
                api = await c.get("/api/journeys/home/runs")
                journeys = check("/api/journeys", await c.get("/api/journeys"))
        history = ready["checks"]["history"]
        assert ready["ready"] is True and history["ok"] is False
        assert "read-only" in history["error"] or "unable to open" in history["error"]
        assert sample(text, "synthmon_history_up") == 0
        assert (sample(text, "synthmon_history_problems_total", problem="open_failed") or 0) >= 1
        assert api.status_code == 503 and "history unavailable" in api.json()["error"]
        assert journeys["journeys"][0]["runs"] >= 2  # /api/journeys still answers

    async def test_full_disk_then_space_again(self, shop: RunningShop, tmp_path: Path) -> None:
        """The history's disk fills up: writes fail and are reported, monitoring and
        alerting go on; when space is back, recording resumes by itself."""
        with tmpfs(tmp_path / "small", "size=2m") as small:
            settings = _settings(tmp_path, shop, history_dir=small)
            async with (
                run_daemon(settings) as (daemon, results),
                httpx.AsyncClient(base_url=daemon.server.url) as c,
            ):
                await results.wait_for(lambda rs: len(rs) >= 2, timeout=10)
                filler = small / "filler"
                with filler.open("wb") as f:
                    with contextlib.suppress(OSError):
                        while True:
                            f.write(b"\0" * 65536)
                            f.flush()
                    # Whatever the page cache still holds.
                    with contextlib.suppress(OSError):
                        os.fsync(f.fileno())

                async def broken() -> dict[str, Any] | None:
                    h = (await c.get("/readyz")).json()["checks"]["history"]
                    return h if not h["ok"] else None

                down = await eventually(broken, what="the full disk reported")
                text = await _monitoring_goes_on(daemon, shop, results)
                freed = time.time()
                filler.unlink()
                n = len(results.results)
                await results.wait_for(lambda rs: len(rs) >= n + 3, timeout=10)

                async def healthy() -> dict[str, Any] | None:
                    h = (await c.get("/readyz")).json()["checks"]["history"]
                    return h if h["ok"] else None

                await eventually(healthy, what="recording resumes")
                after = check(
                    "/api/journeys/{name}/runs", await c.get("/api/journeys/home/runs?limit=1")
                )
        assert "full" in down["error"] or errno.errorcode[errno.ENOSPC] in down["error"]
        assert sample(text, "synthmon_history_up") == 0
        assert (sample(text, "synthmon_history_problems_total", problem="write_failed") or 0) >= 1
        assert after["runs"][0]["started_at"] >= freed  # recorded after space came back
