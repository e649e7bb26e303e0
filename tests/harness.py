"""Test harnesses: write a journeys folder and a config, run a real daemon, wait for
results. Every server binds port 0 on loopback, so tests run side by side."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from synthmon.config.settings import Settings, load_settings
from synthmon.daemon import Daemon
from synthmon.model import RunResult
from synthmon.sinks.pairstate import TextWritten


def write_journeys(directory: Path, files: Mapping[str, str]) -> Path:
    """Write `{filename: source}` (dedented) into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        (directory / name).write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
    return directory


def write_config(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


def synthmon_check(tmp_path: Path, files: Mapping[str, str]) -> tuple[Path, Any]:
    """`synthmon check` (a subprocess, as a user runs it) on journey `files` with one
    target: (the journeys directory, the completed process)."""
    jdir = write_journeys(tmp_path / "journeys", files)
    cfg = write_config(
        tmp_path / "synthmon.toml",
        f'journeys_dir = "{jdir}"\n[targets.demo]\nbase_url = "http://127.0.0.1:9"\n',
    )
    out = subprocess.run(
        [sys.executable, "-m", "synthmon", "check", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    return jdir, out


def make_settings(
    tmp_path: Path,
    *,
    targets: Mapping[str, str],
    journeys: Mapping[str, str] | None = None,
    extra_toml: str = "",
) -> Settings:
    """Settings for a daemon on a free port with `targets` {name: base_url}."""
    jdir = write_journeys(tmp_path / "journeys", journeys or {})
    lines = [
        f'journeys_dir = "{jdir}"',
        f'data_dir = "{tmp_path / "data"}"',
        "",
        "[server]",
        'listen = "127.0.0.1:0"',
        "",
    ]
    for name, url in targets.items():
        lines += [f"[targets.{name}]", f'base_url = "{url}"', ""]
    cfg = write_config(tmp_path / "synthmon.toml", "\n".join(lines) + textwrap.dedent(extra_toml))
    return load_settings(cfg)


class Collector:
    """A sink that keeps every result, for tests to wait on."""

    def __init__(self) -> None:
        self.results: list[RunResult] = []
        self._changed = asyncio.Event()

    async def emit(self, result: RunResult) -> None:
        self.results.append(result)
        self._changed.set()

    async def wait_for(
        self, predicate: Callable[[list[RunResult]], bool], timeout: float = 10.0
    ) -> list[RunResult]:
        deadline = time.monotonic() + timeout
        while not predicate(self.results):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [(r.journey, r.target, r.status.value, r.failed_step) for r in self.results]
                raise AssertionError(f"condition not met within {timeout}s; results so far: {seen}")
            self._changed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return self.results

    def of(self, journey: str) -> list[RunResult]:
        return [r for r in self.results if r.journey == journey]


@asynccontextmanager
async def run_daemon(settings: Settings, **kwargs: Any) -> AsyncIterator[tuple[Daemon, Collector]]:
    """A started daemon (real scheduler, real status server on a free port) plus a
    Collector sink; always stopped afterwards."""
    collector = Collector()
    extra = list(kwargs.pop("extra_sinks", []))
    daemon = Daemon(
        settings,
        registry=kwargs.pop("registry", CollectorRegistry()),
        extra_sinks=[("collector", collector), *extra],
        **kwargs,
    )
    await daemon.start()
    try:
        yield daemon, collector
    finally:
        await daemon.stop(grace=2.0)


async def scrape(daemon: Daemon) -> str:
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{daemon.server.url}/metrics")
        r.raise_for_status()
        return r.text


def sample(metrics_text: str, name: str, **labels: str) -> float | None:
    """The value of one series in Prometheus text format, or None."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def families_built(collector: TextWritten) -> list[str]:
    """From now on, the names of the families `collector.collect()` builds: none while
    /metrics is served by the collector's text writer (web/server.py, `TextSource`)."""
    built: list[str] = []
    collect = collector.collect

    def counted() -> Iterator[Metric]:
        families = list(collect())
        built.extend(f.name for f in families)
        return iter(families)

    collector.collect = counted  # type: ignore[method-assign]
    return built
