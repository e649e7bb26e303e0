"""The composition root: builds every part from the settings, owns signals and the
ordered shutdown. Running a journey is `execution.Executor`'s job; serving status is
`web`'s; this module only wires them.

Lifecycle: created → starting → running → stopping → stopped. Stopping: stop
scheduling, let in-flight runs finish within the grace period, cancel the rest
(recorded as error reason "shutdown"), drain the sinks, close the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from synthmon._version import __version__
from synthmon.alerting.engine import AlertEngine
from synthmon.config.reload import changed_settings, restart_fields
from synthmon.config.settings import Settings, load_settings
from synthmon.errors import ConfigError
from synthmon.execution import Executor, RetryPolicy, Tracing, build_tracing, pair_key
from synthmon.journeys.dsl import Journey
from synthmon.journeys.loader import JourneyFolder, LoadReport
from synthmon.model import Kind, RunResult, RunSource, Target
from synthmon.runners.base import Runner
from synthmon.runners.http import HttpRunner, TransportFactory, default_transport
from synthmon.runners.workers.pool import WorkerPool, worker_pool_from_settings
from synthmon.runtime.logs import set_log_level
from synthmon.runtime.watchdog import LoopWatchdog
from synthmon.runtime.watcher import ChangeWatcher
from synthmon.safety.facade import Safety
from synthmon.scheduling.jobs import PairJobs
from synthmon.scheduling.scheduler import Schedule, Scheduler
from synthmon.scheduling.sharding import Shard, owned, parse_shard
from synthmon.scheduling.slots import SlotLedger, cron_fire_after
from synthmon.sinks.browser_metrics import BrowserMetrics
from synthmon.sinks.fanout import Fanout, Sink
from synthmon.sinks.history.sink import HistorySink
from synthmon.sinks.latest import LatestResults
from synthmon.sinks.logs import LogSink
from synthmon.sinks.metrics import Metrics, MetricsSink
from synthmon.sinks.safety_metrics import SafetyMetrics
from synthmon.sinks.shadow_metrics import ShadowMetrics
from synthmon.sinks.tls_metrics import TlsMetrics
from synthmon.sinks.worker_metrics import WorkerMetrics
from synthmon.web import api, auth, control, pages, silences_api
from synthmon.web.artifacts import artifact_routes
from synthmon.web.server import StatusServer
from synthmon.web.status import StatusViews

log = structlog.get_logger("synthmon.daemon")


def user_agent(settings: Settings) -> str:
    comment = settings.synthetic.user_agent_comment
    return f"synthmon/{__version__} ({comment})" if comment else f"synthmon/{__version__}"


class Daemon:
    def __init__(
        self,
        settings: Settings,
        *,
        registry: CollectorRegistry | None = None,
        transport_factory: TransportFactory = default_transport,
        runners: dict[Kind, Runner] | None = None,
        extra_sinks: list[tuple[str, Sink]] | None = None,
        run_source: RunSource = RunSource.DAEMON,
        config_path: str | Path | None = None,
        watch: bool = True,
    ) -> None:
        self.settings = settings
        # The file `settings` came from: re-read on change and on SIGHUP (hot reload).
        self.config_path = config_path
        self.folder = JourneyFolder(settings.journeys_dir)
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(
            self.registry,
            location=settings.location,
            step_histograms=settings.metrics.step_histograms,
        )
        self.latest = LatestResults()
        self.journeys: dict[str, Journey] = {}
        self.pairs: dict[str, tuple[Journey, Target]] = {}
        self.load_report = LoadReport()
        self.state = "created"
        # Best-effort memory of runs, slots and incidents (docs/history.md).
        self.history: HistorySink | None = (
            HistorySink(
                settings.history,
                data_dir=settings.history_dir,
                registry=self.registry,
                location=settings.location,
            )
            if settings.history.enabled
            else None
        )
        self.alerting = AlertEngine(
            settings.alerting,
            data_dir=settings.data_dir,
            registry=self.registry,
            journeys=lambda name: self.journeys.get(name),
            # Paused pairs notify nobody (built below; looked up at call time).
            is_paused=lambda journey, target: self.safety.is_paused(journey, target),
            location=settings.location,
            external_url=settings.server.external_url,
            pair_metrics=self.metrics.pairs,
            incidents=self.history,
            trace_url=settings.tracing.trace_url,
        )
        self.targets: dict[str, Target] = {t.name: t for t in settings.target_list()}
        safety_metrics = SafetyMetrics(
            self.registry, self.metrics.pairs, location=settings.location
        )
        self.safety = Safety(
            settings,
            events=safety_metrics,
            pairs=lambda: self.pairs.values(),
        )
        # Each attempt as an OpenTelemetry trace (docs/tracing.md); the SDK is imported
        # only when switched on.
        self.tracing: Tracing = build_tracing(
            settings, registry=self.registry, scrub=lambda text: self.safety.scrub(text)
        )
        self.http_runner = HttpRunner(
            user_agent=user_agent(settings),
            tag_headers=[(settings.synthetic.header, settings.synthetic.value)],
            transport_factory=transport_factory,
            pace=self.safety.rate_limits.acquire,
        )
        self.browser_metrics = BrowserMetrics(self.registry, location=settings.location)
        self.shadow_metrics = ShadowMetrics(self.registry, location=settings.location)
        # Certificates the HTTP runs' connections presented (docs/metrics.md, TLS).
        self.tls = TlsMetrics(self.registry, location=settings.location)
        # The browser runner is built when the first browser journey is loaded
        # (`reload`): HTTP-only deployments never load Playwright.
        self.runners: dict[Kind, Runner] = {Kind.HTTP: self.http_runner, **(runners or {})}
        if settings.scheduler.workers and Kind.HTTP not in (runners or {}):
            # HTTP runs in worker processes, one core each (docs/workers.md).
            self.runners[Kind.HTTP] = worker_pool_from_settings(
                settings,
                local=self.http_runner,
                sources=self.folder.source_of,
                pace=self.safety.rate_limits.acquire,
                scrubber=self.safety.scrub,
                user_agent=user_agent(settings),
                events=WorkerMetrics(
                    self.registry, size=settings.scheduler.workers, location=settings.location
                ),
            )
        self.fanout = Fanout(
            [
                ("metrics", MetricsSink(self.metrics)),
                ("latest", self.latest),
                ("logs", LogSink()),
                ("shadow_metrics", self.shadow_metrics),
                ("tls_metrics", self.tls),
                ("alerting", self.alerting),
                *([("history", self.history)] if self.history is not None else []),
                *(extra_sinks or []),
            ],
            timeout=settings.scheduler.sink_timeout,
            on_problem=self.metrics.sink_problem,
        )
        self.metrics.watch_sink_queues(self.fanout.depth)
        # Before the executor: it asks the watchdog who blocked the loop.
        self.watchdog = LoopWatchdog(
            threshold=settings.scheduler.loop_lag_warning,
            on_lag=self.metrics.set_loop_lag,
            journey_files=lambda: {j.filename for j in self.journeys.values()},
        )
        self.executor = Executor(
            runners=self.runners,
            safety=self.safety,
            emit=self.fanout.emit,
            retry_policy=self._retry_policy,
            events=self.metrics,
            targets=self.targets,
            max_concurrency=settings.scheduler.max_concurrency,
            stalls=self.watchdog,
            tracing=self.tracing,
            run_source=run_source,
            location=settings.location,
        )
        self.shard: Shard | None = parse_shard(settings.shard) if settings.shard else None
        # Each pair's scheduled job and the bookkeeping that gives every slot one
        # recorded outcome (docs/history.md).
        self.jobs = PairJobs(
            pairs=lambda: self.pairs,
            run=lambda journey, target, slot: self.run_pair(journey, target, slot=slot),
            is_paused=self.safety.is_paused,
            accepting=lambda: self.state == "running",
            in_chain=self.executor.in_chain,
            events=self.metrics,
            ledger=SlotLedger(cron_fire_after),
            record_slot=self.history.record_slot if self.history is not None else None,
        )
        self.scheduler = Scheduler(
            on_skip=self.jobs.on_skip,
            on_start=self.jobs.on_start,
            on_slot_skipped=self.jobs.on_slot_skipped,
        )
        self.views = StatusViews(self)
        self.server = StatusServer(
            self.views,
            self.registry,
            guard=auth.guard(
                auth.access_policy(settings.server, public_pages=settings.status_page.public),
                self.safety.scrub,
            ),
            host=settings.server.host,
            port=settings.server.port,
            extra_routes=[
                artifact_routes(settings.artifacts_dir),
                control.routes(self.safety),
                api.routes(self.history, lambda: self.views, trace_url=settings.tracing.trace_url),
                pages.routes(self),
                silences_api.routes(lambda: self.alerting.store),
            ],
            max_connections=settings.server.max_connections,
            idle_timeout=settings.server.idle_timeout,
            text_sources=[
                self.metrics.pair_text,
                *([self.history.metrics.text] if self.history else []),
            ],
        )
        self.watcher: ChangeWatcher | None = None
        if watch:
            self.watcher = ChangeWatcher(
                journeys_dir=settings.journeys_dir,
                config_file=Path(config_path) if config_path is not None else None,
                on_journeys=self.reload,
                on_config=self.reload_config,
            )
        self._stop_event: asyncio.Event | None = None

    def _browser_runner(self) -> Runner:
        # Imported here: deployments without browser journeys never load Playwright.
        from synthmon.runners.browser.runner import browser_runner_from_settings

        # One Chromium, launched on the first browser run (docs/browser.md).
        return browser_runner_from_settings(
            self.settings,
            # Browser requests share the target's max_requests_per_second with HTTP runs.
            pace=self.safety.rate_limits.acquire,
            events=self.browser_metrics,
            http_factory=self.http_runner.client_factory,
            # Account secrets typed into pages must not reach stored traces/HTML.
            scrub=self.safety.scrub,
            needed=lambda: any(j.kind is Kind.BROWSER for j in self.journeys.values()),
        )

    def _retry_policy(self, journey: Journey, target: Target) -> RetryPolicy:
        # Retries and re-checks are set per severity in [alerting] (docs/alerting.md):
        # they decide how fast an alert may fire, so they live beside the triggers.
        # Once the alert fires they confirm nothing: one run per interval then.
        if self.alerting.firing(journey.name, target.name):
            return RetryPolicy()
        p = self.alerting.policy_for(journey)
        return RetryPolicy(retries=p.retries, rechecks=p.rechecks, delay=p.retry_delay or 0.0)

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self.safety.load()  # persisted pauses apply before anything is scheduled
        self.state = "starting"
        self._stop_event = asyncio.Event()
        self.jobs.started_at = time.time()
        self.alerting.start()
        self.fanout.start()
        await self.server.start()
        for runner in self.runners.values():
            if isinstance(runner, WorkerPool):
                await runner.start()  # before the first run is scheduled
        self.watchdog.start()
        if self.history is not None:
            # After the server (a slow disk must not delay /healthz), before anything is
            # scheduled: the last slot each pair recorded before this start, so the
            # slots missed while the daemon was down are recorded as missed.
            for (journey, target), last in (await self.history.open()).items():
                self.jobs.ledger.resume(pair_key(journey, target), last)
            self.history.start()
        if self.watcher is not None:
            # Before the first load: a file added meanwhile is not missed.
            await self.watcher.start()
        self.reload()
        self.scheduler.start()
        self.state = "running"
        log.info(
            "daemon_started",
            version=__version__,
            listen=self.server.url,
            journeys=len(self.journeys),
            pairs=len(self.pairs),
            targets=sorted(self.targets),
        )

    async def stop(self, grace: float | None = None) -> None:
        if self.state in ("stopping", "stopped"):
            return
        grace = self.settings.scheduler.shutdown_grace if grace is None else grace
        self.state = "stopping"
        log.info("shutdown_started", in_flight=len(self.executor.in_flight), grace_seconds=grace)
        if self.watcher is not None:
            await self.watcher.stop()
        self.scheduler.pause()
        await self.executor.drain(grace)
        self.scheduler.shutdown()
        await self.fanout.close()
        await self.tracing.aclose()
        # After the sinks drained: the last results' notifications get a short flush.
        await self.alerting.stop(flush_seconds=2.0)
        if self.history is not None:
            await self.history.stop()
        await self.watchdog.stop()
        await self.server.stop()
        for runner in self.runners.values():
            close = getattr(runner, "aclose", None)
            if close is not None:
                await close()
        self.state = "stopped"
        log.info("shutdown_complete")

    async def run_forever(self) -> None:
        """Start, serve until SIGTERM/SIGINT, stop. A second signal exits at once.
        SIGHUP re-reads the config file and the journeys folder (hot reload)."""
        loop = asyncio.get_running_loop()
        await self.start()
        assert self._stop_event is not None
        signals_seen = 0

        def on_signal(sig: signal.Signals) -> None:
            nonlocal signals_seen
            signals_seen += 1
            if signals_seen > 1:
                log.warning("forced_exit", signal=sig.name)
                os._exit(1)
            log.info("signal_received", signal=sig.name)
            self.request_stop()

        def on_hangup() -> None:
            log.info("signal_received", signal="SIGHUP")
            self.reload_config()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, on_hangup)
        try:
            await self._stop_event.wait()
        finally:
            await self.stop()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    def request_stop(self) -> None:
        if self._stop_event is not None:
            self._stop_event.set()

    # -- journeys ----------------------------------------------------------------------

    def reload_config(self) -> None:
        """Re-read the config file, apply what can change live (targets, logging.level),
        name what needs a restart, then reload the journeys (docs/config.md#reload).
        An invalid file changes nothing: the running config stays."""
        if self.config_path is None:
            self.reload()
            return
        try:
            new = load_settings(self.config_path)
        except ConfigError as exc:
            log.error(
                "config_reload_error",
                file=str(self.config_path),
                error=str(exc),
                hint="the running config stays; fix the file",
            )
            return
        restart = restart_fields(self.settings, new)
        if restart:
            log.warning(
                "config_change_needs_restart",
                file=str(self.config_path),
                fields=restart,
                hint="these settings apply at the next start; the rest applied now",
            )
        live = self.settings.model_copy(
            update={
                "targets": new.targets,
                "logging": self.settings.logging.model_copy(update={"level": new.logging.level}),
            }
        )
        applied = changed_settings(self.settings, live)
        if live.logging.level != self.settings.logging.level:
            set_log_level(live.logging.level)
            for runner in self.runners.values():
                if isinstance(runner, WorkerPool):
                    runner.set_log_level(live.logging.level)
        self.settings = live
        if "targets" in applied:
            self._apply_targets(live.target_list())
        if applied:
            log.info("config_reloaded", file=str(self.config_path), applied=applied)
        self.reload()

    def _apply_targets(self, targets: list[Target]) -> None:
        # In place: the executor reads the same mapping.
        changed = {t.name for t in targets if self.targets.get(t.name) != t}
        self.targets.clear()
        self.targets.update((t.name, t) for t in targets)
        self.safety.retarget(self.settings, targets)
        self.executor.retarget(changed)

    def reload(self) -> LoadReport:
        """(Re)load the journeys folder and (re)schedule what changed: files whose
        content is the same keep their pairs as they are (phase, state); a broken edit
        keeps the file's previous version running and is reported."""
        report = self.folder.load(self.targets)
        running = {j.filename for j in report.journeys}
        for problem in report.problems:
            log.error(
                "journey_load_error",
                file=problem.filename,
                line=problem.lineno,
                error=problem.message,
                running="previous version" if problem.filename in running else "nothing",
            )
        self.load_report = report
        self.journeys = {j.name: j for j in report.journeys}
        if Kind.BROWSER not in self.runners and any(
            j.kind is Kind.BROWSER for j in report.journeys
        ):
            self.runners[Kind.BROWSER] = self._browser_runner()
        pairs: dict[str, tuple[Journey, Target]] = {}
        for j in report.journeys:
            names = j.targets if j.targets is not None else tuple(self.targets)
            for tname in names:
                pairs[pair_key(j.name, tname)] = (j, self.targets[tname])
        # Sharded replicas run only the pairs they own (docs/deploy.md#sharding).
        pairs = owned(pairs, self.shard)
        for key in self.scheduler.keys() - pairs.keys():
            self.scheduler.remove(key)
            self.jobs.ledger.forget(key)
        for key, (j, _) in pairs.items():
            self.jobs.ledger.track(key, interval=j.interval, cron=j.cron)
            old = self.pairs.get(key)
            # The job looks its pair up when it fires: a changed journey or target
            # needs no new job, and keeping the job keeps the pair's phase.
            if old is None or old[0].schedule != j.schedule:
                self.scheduler.add(
                    key, self.jobs.job(key), Schedule(interval=j.interval, cron=j.cron)
                )
        self.pairs = pairs
        self.metrics.set_catalog((j, t.name) for j, t in pairs.values())
        self.shadow_metrics.set_catalog((j.name, t.name) for j, t in pairs.values())
        self.tls.set_catalog((j.name, t.name) for j, t in pairs.values())
        self.alerting.set_catalog(
            [(j, t.name) for j, t in pairs.values()], complete=not report.problems
        )
        for j in report.journeys:
            self.alerting.policy_for(j)  # logs `retries_dropped` now, not at first failure
        self.metrics.set_load_problems(p.filename for p in report.problems)
        if self.history is not None:
            self.history.set_catalog((j.name, t.name) for j, t in pairs.values())
        self.safety.refresh()
        self.latest.forget({(j.name, t.name) for j, t in pairs.values()})
        log.info(
            "journeys_loaded",
            directory=str(self.settings.journeys_dir),
            files=len(report.files),
            journeys=len(report.journeys),
            pairs=len(pairs),
            problems=len(report.problems),
            shard=str(self.shard) if self.shard else None,
        )
        return report

    async def run_pair(
        self, journey: Journey, target: Target, *, attempt: int = 1, slot: float | None = None
    ) -> RunResult:
        """Run one pair now, with its retries and re-checks (`Executor.run_pair`)."""
        return await self.executor.run_pair(journey, target, attempt=attempt, slot=slot)


@contextlib.asynccontextmanager
async def running(daemon: Daemon) -> Any:
    """Start `daemon`, yield it, always stop it (for tests and embedding)."""
    await daemon.start()
    try:
        yield daemon
    finally:
        await daemon.stop(grace=5.0)
