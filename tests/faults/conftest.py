"""The standing fault suite's harness: `synthmon run` as a user starts it, against the
loopback fault server, with a webhook receiver counting the alerts it delivers.

`FaultRun` starts the three (daemon subprocess with JSON logs, fault server, receiver),
lets the daemon run for a window, scrapes /metrics, stops it with SIGTERM and keeps
everything a test asserts on: each run's `run_finished` event, every log event, the
alerts delivered and the final metrics. One run serves a whole module (the matrix's
rows share a daemon), so the suite stays within a couple of minutes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.harness import sample, write_journeys
from tests.loopback import WebhookReceiver, free_port

HERE = Path(__file__).resolve().parent
# How long past its window `run_synthmon` waits for its `until` condition at most.
SETTLE = 60.0


class Receiver(WebhookReceiver):
    """The webhook receiver, with the alerts it was sent picked by journey."""

    def triggers(self, journey: str) -> list[dict[str, Any]]:
        return [a for a in self.alerts if a["journey"] == journey and a["event"] == "trigger"]


@dataclass
class Faults:
    url: str
    hang_url: str
    tls_url: str
    refused_url: str
    proc: subprocess.Popen[str]


@contextlib.contextmanager
def fault_server() -> Iterator[Faults]:
    """tests/faults/faultserver.py in its own process (its slow handlers never compete
    with the test for a loop)."""
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "faultserver.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        urls = dict(part.split("=", 1) for part in line.split())
        if "url" not in urls:
            raise RuntimeError(f"fault server did not start: {line!r} {proc.stderr.read()!r}")  # type: ignore[union-attr]
        yield Faults(urls["url"], urls["hang"], urls["tls"], urls["refused"], proc)
    finally:
        proc.kill()
        proc.wait()


@dataclass
class FaultRun:
    """What one `synthmon run` did during its window."""

    events: list[dict[str, Any]] = field(default_factory=list)
    metrics: str = ""
    alerts: list[dict[str, Any]] = field(default_factory=list)
    window: float = 0.0
    returncode: int | None = None
    output: str = ""
    # Sampled from the daemon process every 0.25 s during the window.
    peak_rss: int = 0
    peak_fds: int = 0

    def runs(self, journey: str) -> list[dict[str, Any]]:
        return [
            e for e in self.events if e.get("event") == "run_finished" and e["journey"] == journey
        ]

    def of(self, event: str, **match: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e.get("event") == event and all(e.get(k) == v for k, v in match.items())
        ]

    def triggers(self, journey: str) -> list[dict[str, Any]]:
        return [a for a in self.alerts if a["journey"] == journey and a["event"] == "trigger"]

    def value(self, name: str, **labels: str) -> float:
        return sample(self.metrics, name, **labels) or 0.0

    def skipped(self, journey: str) -> float:
        return sum(
            self.value("synthmon_journey_skipped_runs_total", journey=journey, reason=r)
            for r in ("overlap", "coalesced", "missed", "concurrency")
        )


def config_toml(
    tmp: Path, port: int, targets: Mapping[str, str], target_extra: tuple[str, ...] = ()
) -> str:
    lines = [
        f'journeys_dir = "{tmp / "journeys"}"',
        f'data_dir = "{tmp / "data"}"',
        "[server]",
        f'listen = "127.0.0.1:{port}"',
        "[scheduler]",
        'shutdown_grace = "3s"',
        "[logging]",
        'format = "json"',
        "[alerting]",
        'retry_base_delay = "0.2s"',
        'retry_max_delay = "1s"',
        "[alerting.webhook]",
        'url = { env = "FAULTS_WEBHOOK_URL" }',
        "[alerting.routes]",
        'critical = ["webhook"]',
    ]
    for name, url in targets.items():
        lines += [f"[targets.{name}]", f'base_url = "{url}"', *target_extra]
    return "\n".join(lines) + "\n"


def run_synthmon(
    tmp: Path,
    journeys: Mapping[str, str],
    targets: Mapping[str, str],
    *,
    window: float,
    receiver: Receiver,
    env: Mapping[str, str] | None = None,
    wrap: list[str] | None = None,
    port: int | None = None,
    until: Callable[[], bool] | None = None,
    target_extra: tuple[str, ...] = (),
) -> FaultRun:
    """`synthmon run` for `window` seconds after it is healthy, then SIGTERM; returns
    everything it logged, its last /metrics and the alerts the receiver got.

    `until` is what the test waits for before the stop, such as the alerts it expects
    having reached the receiver: after the window the daemon runs on until it holds
    (at most `SETTLE` s more). A loaded machine, or journeys that block the loop on
    purpose, can delay a delivery past any fixed window, and the stop must not be
    what decides whether it arrived. `target_extra` are TOML lines for every target.

    `wrap` prefixes the command (e.g. `unshare` into a network namespace); the daemon
    is then not reachable from here, so /metrics is not scraped and the window starts
    when it logs daemon_started."""
    write_journeys(tmp / "journeys", journeys)
    port = port or free_port()
    cfg = tmp / "synthmon.toml"
    cfg.write_text(config_toml(tmp, port, targets, target_extra), encoding="utf-8")
    log_path = tmp / "daemon.log"
    cmd = [sys.executable, "-m", "synthmon", "run", "--config", str(cfg)]
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [*(wrap or []), *cmd],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "FAULTS_WEBHOOK_URL": receiver.url, **(env or {})},
        )
        out = FaultRun(window=window)
        try:
            if wrap is None:
                _wait_healthy(port, proc, log_path)
            else:
                _wait_logged('"daemon_started"', proc, log_path)
            started = time.monotonic()
            daemon = psutil.Process(proc.pid)
            while time.monotonic() - started < window:
                with contextlib.suppress(psutil.Error):
                    out.peak_rss = max(out.peak_rss, daemon.memory_info().rss)
                    out.peak_fds = max(out.peak_fds, daemon.num_fds())
                time.sleep(0.25)
            settle = time.monotonic() + SETTLE
            while until is not None and not until() and time.monotonic() < settle:
                time.sleep(0.25)
            out.window = time.monotonic() - started
            if wrap is None:
                # Generous: the journeys of a fault test may hold the daemon's loop most
                # of the time, and the machine may be loaded.
                out.metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=60).text
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    out.returncode = proc.returncode
    out.output = log_path.read_text()
    for line in out.output.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                out.events.append(json.loads(line))
    out.alerts = list(receiver.alerts)
    return out


def _wait_healthy(port: int, proc: subprocess.Popen[str], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"synthmon run exited: {log_path.read_text()[-3000:]}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"synthmon run did not become healthy: {log_path.read_text()[-3000:]}")


def _wait_logged(text: str, proc: subprocess.Popen[str], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None or text in log_path.read_text():
            return
        time.sleep(0.1)
    raise AssertionError(f"synthmon run did not log {text}: {log_path.read_text()[-3000:]}")


def journey_file(body: str) -> str:
    return (
        "import asyncio\nimport time\n\nimport httpx\n\nfrom synthmon import Context, journey\n"
        + (textwrap.dedent(body))
    )


@pytest.fixture(scope="module")
def faults() -> Iterator[Faults]:
    with fault_server() as running:
        yield running


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    try:
        yield rec
    finally:
        rec.close()


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])


def have_netns() -> bool:
    """Unprivileged user + network namespaces (`unshare -rn`) work here."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rn", "true"], capture_output=True, text=True, check=False, timeout=10
    )
    return probe.returncode == 0
