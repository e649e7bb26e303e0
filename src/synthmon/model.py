"""Result values. Frozen, I/O free: runners make them, sinks consume them.

A journey definition never holds run state (the same journey runs again and
again); everything one run learned lives in one `RunResult`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Type-only: the DSL builds on these values, never the other way round at run time.
    from synthmon.journeys.dsl import Journey


class Severity(enum.StrEnum):
    """How loudly a failing journey should be reported: critical pages, warning
    notifies, info only records."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class Kind(enum.StrEnum):
    """Which runner executes a journey."""

    HTTP = "http"
    BROWSER = "browser"


class Status(enum.StrEnum):
    """Outcome of a run or a step.

    - success: every hard step passed.
    - failure: the target misbehaved (an assertion, an HTTP status, a broken page).
    - timeout: the run did not finish within its timeout.
    - error:   anything else: a bug in the journey, or an infrastructure problem
               of synthmon's own (see `RunResult.reason`).
    """

    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"
    ERROR = "error"

    @property
    def is_target_failure(self) -> bool:
        """True for outcomes that say the *target* is broken (they may page)."""
        return self in (Status.FAILURE, Status.TIMEOUT)


@dataclass(frozen=True, slots=True)
class StepResult:
    """One `ctx.step(...)` block of one run."""

    name: str
    status: Status
    duration: float
    soft: bool = False
    error_type: str | None = None
    error_message: str | None = None
    # Navigation timings of a browser step, seconds since navigation start:
    # {"ttfb": .., "dom_content_loaded": .., "load": ..}.
    timings: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class RunResult:
    """Everything one run of one (journey, target) pair produced."""

    journey: str
    target: str
    run_id: str
    trace_id: str
    status: Status
    started_at: float  # wall clock, seconds since the epoch
    duration: float  # seconds, monotonic
    steps: tuple[StepResult, ...] = ()
    failed_step: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    # Why an `error` happened when it is synthmon's problem rather than the
    # target's: "browser_crash", "browser_unavailable", "no_account", ...
    reason: str | None = None
    artifacts: tuple[str, ...] = ()
    attempt: int = 1
    # True when a retry follows (retry-before-counting): this attempt is recorded but
    # is not the run's final word, so alerting does not count it.
    retried: bool = False
    # Cleanups (ctx.defer / cleanup=) that failed after the run; never changes `status`.
    cleanup_failures: int = 0
    # Requests `ctx.shadow` found answered differently by another target, per target.
    shadow_mismatches: tuple[tuple[str, int], ...] = ()
    # Where the probe ran from (`location = "eu-west-1"`); set once, at hand-off to the
    # sinks, so every sink (logs, /api, history, alerts) reads the same value.
    location: str | None = None
    # The scheduled slot (epoch seconds) this run serves; None for runs nobody
    # scheduled (`synthmon once`). Retries and re-checks serve their slot too.
    scheduled_at: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is Status.SUCCESS

    @property
    def is_infrastructure_error(self) -> bool:
        """An error synthmon caused (no browser, no account, ...): never a target outage."""
        return self.status is Status.ERROR and self.reason is not None


class RunSource(enum.StrEnum):
    """Where a run happens, so a journey can skip irreversible steps in some modes."""

    DAEMON = "daemon"
    ONCE = "once"
    TEST = "test"


@dataclass(frozen=True, slots=True)
class Target:
    """A named system under test, as the runners see it."""

    name: str
    base_url: str
    allowed_hosts: frozenset[str]
    headers: tuple[tuple[str, str], ...] = ()
    block_third_party: bool = False
    verify_tls: bool = True
    max_concurrency: int = 4
    max_requests_per_second: float | None = None

    def allows(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(
            host == h or (h.startswith("*.") and host.endswith(h[1:])) for h in self.allowed_hosts
        )


@dataclass(frozen=True, slots=True)
class RunRequest:
    """What a runner needs to run one attempt of one (journey, target) pair."""

    journey: Journey
    target: Target
    run_id: str
    attempt: int = 1
    run_source: RunSource = RunSource.DAEMON
    # The leased synthetic account (`safety.accounts.Account`), when the journey asks for one.
    account: Any = None
    # Headers added to every request of the run (the account pool's tag, say).
    extra_headers: tuple[tuple[str, str], ...] = ()
    # Other configured targets `ctx.shadow` may compare with (`compare_to=`).
    peers: tuple[Target, ...] = ()


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with a journey file or the config, as file:line: message."""

    filename: str
    lineno: int
    message: str

    def __str__(self) -> str:
        return f"{self.filename}:{self.lineno}: {self.message}"
