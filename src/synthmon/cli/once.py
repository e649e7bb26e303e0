"""`synthmon once`: run the selected journeys once — the deploy smoke test, and the
journey author's loop.

The same runners, accounts, tagging, scrubbing and artifacts as the daemon
(`run_source` = `once`), built from the same settings, without the scheduler, the
metrics server or alerting. Prints each step as it ends and one line per
(journey, target) as it finishes; writes JUnit XML and JSON on request. Exit 0 when
everything passed, 1 when anything failed, 2 on usage or config errors.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from synthmon.config.settings import Settings, TargetConfig
from synthmon.errors import ConfigError
from synthmon.model import Kind, RunResult, RunSource, Selector, Severity, Status, StepResult

if TYPE_CHECKING:
    from synthmon.execution import Executor
    from synthmon.journeys.dsl import Journey
    from synthmon.model import Target
    from synthmon.runners.base import Runner

# The runners, safety and reports are imported by the functions that use them: the CLI
# builds every command's parser, and `synthmon healthcheck` (the container's liveness
# probe, run every 30 s) must not pay for httpx, Playwright or scipy.

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
MARK = {
    Status.SUCCESS: "ok",
    Status.FAILURE: "FAIL",
    Status.TIMEOUT: "TIMEOUT",
    Status.ERROR: "ERROR",
}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "once",
        help="run journeys once and exit (deploy smoke test; trying a new journey)",
        description="Exit 0 when every run passed, 1 when any failed, 2 on usage errors.",
    )
    p.add_argument("--config", "-c", help="TOML config file")
    p.add_argument("--target", "-t", action="append", default=[], help="target name (repeat)")
    p.add_argument(
        "--base-url",
        help="an ad-hoc target (a preview environment); with --target NAME it replaces "
        "that target's base_url and keeps its headers, limits and accounts",
    )
    p.add_argument("--journey", "-j", action="append", default=[], help="journey (repeat)")
    p.add_argument("--tag", action="append", default=[], help="journeys with this tag (repeat)")
    p.add_argument("--junit", type=Path, help="write JUnit XML here")
    p.add_argument("--json", type=Path, help="write the results as JSON here")
    p.add_argument("--retries", type=int, default=0, help="re-run a failed run N times")
    p.add_argument("--parallel", type=int, default=4, help="runs at once (default 4)")
    p.add_argument(
        "--artifacts",
        choices=("always", "failure", "never"),
        help="browser artifacts (default: [artifacts].on from the config)",
    )
    p.add_argument(
        "--notify",
        action="store_true",
        help="send an alert for each failed run through the configured notifiers",
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Selection:
    pairs: list[tuple[Journey, Target]]


def select(
    settings: Settings,
    journeys: Sequence[Journey],
    *,
    names: Sequence[str],
    tags: Sequence[str],
    targets: Sequence[str],
    base_url: str | None,
) -> Selection:
    """The (journey, target) pairs to run. ConfigError names what does not exist."""
    known = {j.name: j for j in journeys}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"no journey named {', '.join(unknown)}; known: {sorted(known)}")
    all_tags = {t for j in journeys for t in j.tags}
    bad_tags = [t for t in tags if t not in all_tags]
    if bad_tags:
        raise ConfigError(f"no journey has tag {', '.join(bad_tags)}; known: {sorted(all_tags)}")
    wanted = Selector(frozenset(names), frozenset(), frozenset(tags))
    chosen = [j for j in journeys if wanted.matches(j.name, "", j.tags)]
    bad_targets = [t for t in targets if t not in settings.targets]
    if bad_targets:
        raise ConfigError(
            f"no target named {', '.join(bad_targets)}; known: {sorted(settings.targets)}"
        )
    if base_url is not None:
        if len(targets) > 1:
            raise ConfigError("--base-url replaces one target: give at most one --target")
        name = targets[0] if targets else "adhoc"
        base = settings.targets.get(name)
        try:
            cfg = (
                base.model_copy(update={"base_url": base_url, "allowed_hosts": None})
                if base is not None
                else TargetConfig(base_url=base_url)
            )
            target = TargetConfig.model_validate(cfg.model_dump()).to_target(name)
        except ValueError as exc:
            raise ConfigError(f"--base-url {base_url!r}: {exc}") from None
        # A preview environment stands in for whatever the journeys declare.
        return Selection([(j, target) for j in chosen])
    by_name = {t.name: t for t in settings.target_list()}
    wanted = Selector(frozenset(names), frozenset(targets), frozenset(tags))
    pairs = [
        (j, by_name[tname])
        for j in chosen
        for tname in (j.targets if j.targets is not None else tuple(by_name))
        if tname in by_name and wanted.matches(j.name, tname, j.tags)
    ]
    return Selection(pairs)


class _NoSafetyEvents:
    """`once` exports no metrics."""

    def set_paused(self, pairs: Iterable[tuple[str, str, bool]]) -> None:
        pass

    def set_pool(self, pool: str, size: int, in_use: int) -> None:
        pass


class _NoExecutionEvents:
    def skipped_run(self, journey: str, target: str, reason: str, n: int = 1) -> None:
        pass

    def set_in_flight(self, n: int) -> None:
        pass


class _NoStalls:
    """`once` has no loop watchdog: a run a neighbour's stall cut short stays a timeout
    (the developer running it sees the blocking journey's own timeout beside it)."""

    def stolen_from(self, task: str | None, since: float, until: float) -> tuple[float, None]:
        return 0.0, None


def build_executor(
    settings: Settings,
    pairs: Sequence[tuple[Journey, Target]],
    *,
    emit: Any,
    retries: int,
) -> tuple[Executor, dict[Kind, Runner]]:
    """An executor with the daemon's runners, accounts, tagging and scrubbing."""
    from synthmon.daemon import user_agent
    from synthmon.execution import Executor, NoTracing, RetryPolicy
    from synthmon.runners.http import HttpRunner
    from synthmon.safety.facade import Safety

    safety = Safety(settings, events=_NoSafetyEvents(), pairs=lambda: list(pairs))
    http = HttpRunner(
        user_agent=user_agent(settings),
        tag_headers=[(settings.synthetic.header, settings.synthetic.value)],
        pace=safety.rate_limits.acquire,
    )
    runners: dict[Kind, Runner] = {Kind.HTTP: http}
    if any(j.kind is Kind.BROWSER for j, _ in pairs):
        from synthmon.runners.browser.runner import browser_runner_from_settings

        runners[Kind.BROWSER] = browser_runner_from_settings(
            settings,
            pace=safety.rate_limits.acquire,
            http_factory=http.client_factory,
            scrub=safety.scrub,
        )
    # Every configured target, so ctx.shadow can compare with any of them.
    targets = {t.name: t for t in settings.target_list()} | {t.name: t for _, t in pairs}
    executor = Executor(
        runners=runners,
        safety=safety,
        emit=emit,
        retry_policy=lambda _j, _t: RetryPolicy(retries=retries, rechecks=0, delay=1.0),
        events=_NoExecutionEvents(),
        targets=targets,
        max_concurrency=settings.scheduler.max_concurrency,
        stalls=_NoStalls(),
        # `once` exports no traces (docs/tracing.md); requests still carry the run id.
        tracing=NoTracing(),
        run_source=RunSource.ONCE,
        location=settings.location,
    )
    return executor, runners


class Printer:
    """The terminal view: each step as it ends, one line per pair as it finishes."""

    def __init__(self, out: TextIO, *, show_pair: bool) -> None:
        self._out = out
        self._show_pair = show_pair

    def step(self, journey: str, step: StepResult) -> None:
        who = f"{journey} > " if self._show_pair else ""
        line = f"  {MARK[step.status]:<7} {who}{step.name} ({step.duration:.2f}s)"
        if step.soft and step.status is not Status.SUCCESS:
            line += " [soft]"
        if step.error_message:
            line += f": {_first_line(step.error_message)}"
        print(line, file=self._out, flush=True)

    def result(self, r: RunResult) -> None:
        if r.retried:
            print(
                f"{r.journey} @ {r.target}: attempt {r.attempt} {MARK[r.status]}, retrying",
                file=self._out,
                flush=True,
            )
            return
        line = f"{MARK[r.status]:<7} {r.journey} @ {r.target}  {r.duration:.2f}s"
        if r.failed_step:
            line += f"  step {r.failed_step!r}"
        if r.reason:
            line += f"  ({r.reason})"
        print(line, file=self._out, flush=True)
        if r.error_message and r.status is not Status.SUCCESS:
            print(f"        {_first_line(r.error_message)}", file=self._out, flush=True)
        for path in r.artifacts:
            print(f"        artifact: {path}", file=self._out, flush=True)


async def notify_failures(
    settings: Settings, pairs: Sequence[tuple[Journey, Target]], results: Sequence[RunResult]
) -> None:
    """An alert for each failed run, through the notifiers and routes of [alerting]
    (severity routing as in the daemon). A smoke test has no history: every failed run
    fires at once, with state in a throw-away folder so it never touches a daemon's.
    A passing run sends nothing (there is nothing to resolve)."""
    import tempfile

    from prometheus_client import CollectorRegistry

    from synthmon.alerting.engine import AlertEngine
    from synthmon.config.alerting import PolicyOverride

    if all(r.ok for r in results):
        return
    at_once = PolicyOverride(consecutive=1, failures=0, window=0, retries=0, rechecks=0)
    journeys = {j.name: j for j, _ in pairs}
    config = settings.alerting.model_copy(
        update={
            "severity": {s.value: at_once for s in Severity},
            "journeys": dict.fromkeys(journeys, at_once),
        }
    )
    with tempfile.TemporaryDirectory(prefix="synthmon-once-") as tmp:
        engine = AlertEngine(
            config,
            data_dir=tmp,
            registry=CollectorRegistry(),
            journeys=journeys.get,
            # An explicit smoke test: whoever asked for it wants its result, paused or not.
            is_paused=lambda _j, _t: False,
            location=settings.location,
            external_url=settings.server.external_url,
        )
        engine.start()
        try:
            for r in results:
                if not r.ok:
                    await engine.emit(r)
        finally:
            await engine.stop(flush_seconds=settings.alerting.send_timeout * 2)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


async def run_once(
    settings: Settings,
    pairs: Sequence[tuple[Journey, Target]],
    *,
    retries: int = 0,
    parallel: int = 4,
    notify: bool = False,
    out: TextIO,
) -> list[RunResult]:
    """Run every pair once (with `retries`); returns each pair's final result, in the
    order of `pairs`."""
    from synthmon.journeys.context import step_listener

    printer = Printer(out, show_pair=len(pairs) > 1 and parallel > 1)
    executor, runners = build_executor(settings, pairs, emit=printer.result, retries=retries)
    gate = asyncio.Semaphore(max(1, parallel))

    async def one(journey: Journey, target: Target) -> RunResult:
        async with gate:
            step_listener.set(printer.step)
            return await executor.run_pair(journey, target)

    try:
        # Each pair in its own task, so the step listener stays with its run.
        results = list(await asyncio.gather(*(one(j, t) for j, t in pairs)))
        if notify:
            await notify_failures(settings, pairs, results)
        return results
    finally:
        for runner in runners.values():
            close = getattr(runner, "aclose", None)
            if close is not None:
                await close()


def quiet_logging(settings: Settings, err: TextIO) -> None:
    """The terminal shows steps and results; logs only say what went wrong, on stderr,
    scrubbed like the daemon's."""
    from synthmon.runtime.logs import configure_logging
    from synthmon.safety.facade import scrubber_for

    configure_logging(
        level="warning", stream=err, extra_processors=[scrubber_for(settings).processor]
    )


def load_selection(
    settings: Settings,
    command: str,
    names: Sequence[str],
    tags: Sequence[str],
    targets: Sequence[str],
    *,
    base_url: str | None,
    err: TextIO,
) -> tuple[Selection, list[str]] | None:
    """Load the journeys and pick the (journey, target) pairs of a one-shot command.
    Each broken journey file is printed (and returned); None on a selection error."""
    from synthmon.journeys.loader import load_journeys

    report = load_journeys(settings.journeys_dir, known_targets=settings.targets)
    for problem in report.problems:
        print(f"synthmon {command}: {problem}", file=err)
    try:
        chosen = select(
            settings, report.journeys, names=names, tags=tags, targets=targets, base_url=base_url
        )
    except ConfigError as exc:
        print(f"synthmon {command}: {exc}", file=err)
        return None
    return chosen, [str(p) for p in report.problems]


def once(args: Any, settings: Settings, *, out: TextIO, err: TextIO) -> int:
    if args.parallel < 1 or args.retries < 0:
        print("synthmon once: --parallel must be >= 1 and --retries >= 0", file=err)
        return EXIT_USAGE
    quiet_logging(settings, err)
    if args.artifacts is not None:
        settings = settings.model_copy(
            update={"artifacts": settings.artifacts.model_copy(update={"on": args.artifacts})}
        )
    from synthmon.cli.reports import write_json, write_junit

    loaded = load_selection(
        settings, "once", args.journey, args.tag, args.target, base_url=args.base_url, err=err
    )
    if loaded is None:
        return EXIT_USAGE
    chosen, problems = loaded
    if not chosen.pairs:
        print("synthmon once: nothing selected to run (check --journey/--tag/--target)", file=err)
        return EXIT_USAGE
    results = asyncio.run(
        run_once(
            settings,
            chosen.pairs,
            retries=args.retries,
            parallel=args.parallel,
            notify=args.notify,
            out=out,
        )
    )
    failed = [r for r in results if r.status is not Status.SUCCESS]
    print(
        f"{len(results) - len(failed)} passed, {len(failed)} failed",
        file=out,
        flush=True,
    )
    journeys = {j.name: j for j, _ in chosen.pairs}
    if args.junit is not None:
        write_junit(args.junit, results, journeys)
    if args.json is not None:
        write_json(args.json, results)
    if problems:
        # A broken journey file is a failed smoke test, not a silent skip.
        return EXIT_FAILED
    return EXIT_FAILED if failed else EXIT_OK
