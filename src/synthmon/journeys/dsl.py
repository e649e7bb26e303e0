"""The `@journey` decorator: turns an async function into a `Journey` definition.

A `Journey` is a frozen description (what to run, how often, how loud). It holds
no run state: runs produce `RunResult` values instead.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, overload

from pydantic import ByteSize, Field, TypeAdapter, ValidationError

from synthmon.config.compare import parse_compare
from synthmon.config.durations import format_duration, parse_duration
from synthmon.config.vitals import parse_thresholds
from synthmon.errors import JourneyDefinitionError
from synthmon.model import Kind, Severity

if TYPE_CHECKING:
    from synthmon.journeys.context import Context

JourneyFunc = Callable[["Context"], Awaitable[None]]

# Set by `collecting_problems()`: where @journey records problems instead of raising.
_collected: ContextVar[list[JourneyDefinitionError] | None] = ContextVar(
    "synthmon_journey_problems", default=None
)
CleanupFunc = Callable[["Context"], Awaitable[None]]

# Schedules synthmon can keep: below 1 s a journey floods the loop, the logs and the
# alerts; beyond 7 d it is a cron job (and far beyond, a date out of range).
MIN_INTERVAL = 1.0
MAX_INTERVAL = 7 * 86400.0
# A run's hard limit: the clock's resolution of a run, and at most a day.
MIN_TIMEOUT = 0.1
MAX_TIMEOUT = 86400.0

# "50MB", "2MiB", 1048576: pydantic's byte sizes, as `[targets.*] max_response_size`.
_BYTES: TypeAdapter[int] = TypeAdapter(Annotated[ByteSize, Field(gt=0)])

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


@dataclass(frozen=True, slots=True)
class Journey:
    """A user journey as its author declared it."""

    name: str
    func: JourneyFunc = field(repr=False, compare=False)
    kind: Kind = Kind.HTTP
    severity: Severity = Severity.WARNING
    interval: float | None = 60.0
    cron: str | None = None
    timeout: float = 30.0
    tags: tuple[str, ...] = ()
    targets: tuple[str, ...] | None = None
    description: str = ""
    runbook_url: str | None = None
    account: str | None = None
    degraded_after: float | None = None
    # Alert policy overrides (see the alerting docs); passed through untouched here.
    alert: Mapping[str, Any] = field(default_factory=dict, compare=False)
    # Cap on one response body of ctx.http for this journey, over the target's.
    max_response_bytes: int | None = None
    # `synthmon compare` thresholds (config/compare.py), validated here.
    compare: Mapping[str, Any] = field(default_factory=dict, compare=False)
    cleanup: CleanupFunc | None = field(default=None, repr=False, compare=False)
    # Browser journeys: Web Vitals thresholds in base units (config/vitals.py); a value
    # over one makes the run degraded. Defaults: the published "good" limits.
    web_vitals: Mapping[str, float] = field(default_factory=dict, compare=False)
    filename: str = ""
    lineno: int = 0

    async def __call__(self, ctx: Context) -> None:
        await self.func(ctx)

    @property
    def schedule(self) -> str:
        """Human spelling of when it runs: "30s" or "cron 0 * * * *"."""
        if self.cron:
            return f"cron {self.cron}"
        assert self.interval is not None
        return format_duration(self.interval)

    @property
    def where(self) -> str:
        return f"{self.filename}:{self.lineno}"


@overload
def journey(func: JourneyFunc, /) -> Journey: ...


@overload
def journey(
    func: None = None,
    /,
    *,
    name: str | None = None,
    kind: str = "http",
    severity: str = "warning",
    interval: str | float | None = None,
    cron: str | None = None,
    timeout: str | float | None = None,
    tags: Iterable[str] = (),
    targets: Iterable[str] | None = None,
    description: str | None = None,
    runbook_url: str | None = None,
    account: str | None = None,
    degraded_after: str | float | None = None,
    alert: Mapping[str, Any] | None = None,
    compare: Mapping[str, Any] | None = None,
    max_response_size: str | int | None = None,
    cleanup: CleanupFunc | None = None,
    web_vitals: Mapping[str, Any] | bool | None = None,
) -> Callable[[JourneyFunc], Journey]: ...


def journey(
    func: JourneyFunc | None = None,
    /,
    *,
    name: str | None = None,
    kind: str = "http",
    severity: str = "warning",
    interval: str | float | None = None,
    cron: str | None = None,
    timeout: str | float | None = None,
    tags: Iterable[str] = (),
    targets: Iterable[str] | None = None,
    description: str | None = None,
    runbook_url: str | None = None,
    account: str | None = None,
    degraded_after: str | float | None = None,
    alert: Mapping[str, Any] | None = None,
    compare: Mapping[str, Any] | None = None,
    max_response_size: str | int | None = None,
    cleanup: CleanupFunc | None = None,
    web_vitals: Mapping[str, Any] | bool | None = None,
) -> Journey | Callable[[JourneyFunc], Journey]:
    """Declare a user journey.

    ``interval`` (default "1m") or ``cron`` (5 fields, e.g. "*/5 * * * *") sets when it
    runs; ``timeout`` (default: the smaller of 30 s and the interval) bounds one run.
    Bad options raise `JourneyDefinitionError` naming the file and line.
    """

    def decorate(fn: JourneyFunc) -> Journey:
        code = getattr(fn, "__code__", None)
        filename = code.co_filename if code else "<unknown>"
        lineno = code.co_firstlineno if code else 0

        def bad(message: str) -> JourneyDefinitionError:
            jname = name or getattr(fn, "__name__", "?")
            return JourneyDefinitionError(
                f"journey {jname!r}: {message}", filename=filename, lineno=lineno
            )

        # Every problem of the declaration, not just the first: `synthmon check` lists
        # them all (docs/journeys.md).
        problems: list[JourneyDefinitionError] = []
        if not inspect.iscoroutinefunction(fn):
            problems.append(bad("must be declared with 'async def'"))
        jname = str(name or getattr(fn, "__name__", ""))
        if not jname or not set(jname) <= _NAME_CHARS:
            problems.append(bad("name may only use letters, digits, '_', '-' and '.'"))
        jkind, jseverity = Kind.HTTP, Severity.WARNING
        try:
            jkind = Kind(kind)
        except ValueError:
            problems.append(bad(f"kind={kind!r}: use one of {[k.value for k in Kind]}"))
        try:
            jseverity = Severity(severity)
        except ValueError:
            problems.append(bad(f"severity={severity!r}: use one of {[s.value for s in Severity]}"))
        jinterval: float | None = None
        jtimeout: float | None = None
        jdegraded: float | None = None
        try:
            if interval is not None and cron is not None:
                raise bad("give either interval= or cron=, not both")
            if cron is not None:
                _check_cron(cron, bad)
            else:
                jinterval = _duration("interval", "1m" if interval is None else interval, bad)
            if jinterval is not None and not MIN_INTERVAL <= jinterval <= MAX_INTERVAL:
                jinterval = None  # the timeout checks below must not use it
                raise bad(
                    f"interval={interval!r} is out of bounds: use between "
                    f"{format_duration(MIN_INTERVAL)} and {format_duration(MAX_INTERVAL)} "
                    "(for rarer runs use cron=)"
                )
        except JourneyDefinitionError as exc:
            problems.append(exc)
        try:
            default_timeout = min(30.0, jinterval) if jinterval else 30.0
            jtimeout = (
                _duration("timeout", timeout, bad) if timeout is not None else default_timeout
            )
            if not MIN_TIMEOUT <= jtimeout <= MAX_TIMEOUT:
                raise bad(
                    f"timeout={timeout!r} is out of bounds: use between "
                    f"{format_duration(MIN_TIMEOUT)} and {format_duration(MAX_TIMEOUT)}"
                )
            if jinterval is not None and jtimeout > jinterval:
                raise bad(
                    f"timeout ({format_duration(jtimeout)}) is longer than interval "
                    f"({format_duration(jinterval)}): runs would overlap and be skipped; "
                    "shorten the timeout or lengthen the interval"
                )
        except JourneyDefinitionError as exc:
            problems.append(exc)
        if isinstance(tags, str) or (targets is not None and isinstance(targets, str)):
            problems.append(bad("tags= and targets= take a list of strings, e.g. tags=['shop']"))
        try:
            if degraded_after is not None:
                jdegraded = _duration("degraded_after", degraded_after, bad)
        except JourneyDefinitionError as exc:
            problems.append(exc)
        if compare:
            try:
                parse_compare(compare)
            except ValueError as exc:
                problems.append(bad(f"compare={dict(compare)!r}: {exc}"))
        jmax_body: int | None = None
        if max_response_size is not None:
            try:
                jmax_body = int(_BYTES.validate_python(max_response_size))
            except ValidationError as exc:
                why = exc.errors()[0]["msg"]
                problems.append(
                    bad(f"max_response_size={max_response_size!r}: {why} (e.g. '50MB', '2MiB')")
                )
        jvitals: dict[str, float] = {}
        try:
            jvitals = parse_thresholds(web_vitals)
        except ValueError as exc:
            problems.append(bad(f"web_vitals: {exc}"))
        if web_vitals not in (None, False) and jkind is not Kind.BROWSER:
            problems.append(bad("web_vitals= applies to browser journeys only: add kind='browser'"))
        if cleanup is not None and not inspect.iscoroutinefunction(cleanup):
            problems.append(bad("cleanup= must be an 'async def' function taking the Context"))
        if problems:
            collected = _collected.get()
            if collected is None:
                raise problems[0]
            collected.extend(problems)
            # The loader drops this file's journeys anyway; handing the function back
            # lets the rest of the file run, so its other problems are found too.
            return fn  # type: ignore[return-value]
        assert jtimeout is not None
        doc = inspect.getdoc(fn) or ""
        return Journey(
            name=jname,
            func=fn,
            kind=jkind,
            severity=jseverity,
            interval=jinterval,
            cron=cron,
            timeout=jtimeout,
            tags=tuple(tags),
            targets=tuple(targets) if targets is not None else None,
            description=description if description is not None else doc.split("\n\n")[0],
            runbook_url=runbook_url,
            account=account,
            degraded_after=jdegraded,
            alert=dict(alert or {}),
            compare=dict(compare or {}),
            max_response_bytes=jmax_body,
            cleanup=cleanup,
            web_vitals=jvitals if jkind is Kind.BROWSER else {},
            filename=filename,
            lineno=lineno,
        )

    if func is not None:
        return decorate(func)
    return decorate


@contextmanager
def collecting_problems() -> Iterator[list[JourneyDefinitionError]]:
    """While active, `@journey` records every problem of a bad declaration in the
    yielded list (instead of raising the first) and the file goes on loading, so the
    loader can report all of a file's problems at once."""
    collected: list[JourneyDefinitionError] = []
    token = _collected.set(collected)
    try:
        yield collected
    finally:
        _collected.reset(token)


def _duration(
    option: str, value: str | float, bad: Callable[[str], JourneyDefinitionError]
) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise bad(f"{option}={value!r}: {exc}") from None


def _check_cron(expr: str, bad: Callable[[str], JourneyDefinitionError]) -> None:
    # Validate here so `synthmon check` reports it at the journey's line, not at
    # scheduling time.
    from synthmon.config.cron import validate_cron

    try:
        validate_cron(expr)
    except ValueError as exc:
        raise bad(str(exc)) from None
