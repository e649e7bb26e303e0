"""Result values. Frozen, I/O free: runners make them, sinks consume them.

A journey definition never holds run state (the same journey runs again and
again); everything one run learned lives in one `RunResult`.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

import pyotp
from pydantic import SecretStr

from synthmon.errors import NoAccountError

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


class Verdict(enum.Enum):
    """What a result says about the target once retries and synthmon's own problems
    are set aside (`RunResult.verdict`)."""

    PASS = enum.auto()
    FAIL = enum.auto()
    # A retried attempt (a retry follows) or an infrastructure error: says nothing.
    NONE = enum.auto()


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
class PageVitals:
    """Web Vitals and page weight of one document a browser run loaded (one hard
    navigation), attributed to the step in flight when its navigation started."""

    step: str
    # Scheme, host and path only: a query string may carry tokens.
    url: str
    # (metric, value): TTFB/FCP/LCP/INP in seconds, CLS a score, transfer_bytes,
    # requests. INP only when the page saw an interaction.
    values: tuple[tuple[str, float], ...]
    # (metric, threshold) of every value above the journey's `web_vitals` threshold.
    breaches: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class TlsChain:
    """The certificate chain one HTTPS server presented for `host` (`host:port` when
    the port is not 443): the leaf's details and the earliest expiry of the chain as
    presented (the trust store's root is not part of it). Times are epoch seconds."""

    host: str
    leaf_not_after: float
    subject: str  # RFC 4514, "CN=shop.example"
    issuer: str
    serial: str  # hex, as `openssl x509 -serial` prints it
    sans: tuple[str, ...]
    earliest_not_after: float
    earliest_subject: str  # the certificate of the chain that expires first
    earliest_issuer: str
    chain_length: int
    # False when only the leaf could be read (no chain API on this Python/TLS stack).
    chain_complete: bool = True


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
    # What the run left open and synthmon cancelled/closed: (("task", 2), ("http_client", 1)).
    left_behind: tuple[tuple[str, int], ...] = ()
    # Requests `ctx.shadow` found answered differently by another target, per target.
    shadow_mismatches: tuple[tuple[str, int], ...] = ()
    # Where the probe ran from (`location = "eu-west-1"`); set once, at hand-off to the
    # sinks, so every sink (logs, /api, history, alerts) reads the same value.
    location: str | None = None
    # The scheduled slot (epoch seconds) this run serves; None for runs nobody
    # scheduled (`synthmon once`). Retries and re-checks serve their slot too.
    scheduled_at: float | None = None
    # Certificate chains the run's HTTPS connections presented, one per host
    # (HTTP journeys; read off connections the run made anyway: runners/tls.py).
    tls: tuple[TlsChain, ...] = ()
    # Browser runs: Web Vitals per document loaded (runners/browser/vitals.py). A value
    # over its threshold makes a passing run degraded, never failed.
    web_vitals: tuple[PageVitals, ...] = ()

    @property
    def vitals_breached(self) -> bool:
        return any(page.breaches for page in self.web_vitals)

    @property
    def ok(self) -> bool:
        return self.status is Status.SUCCESS

    @property
    def is_infrastructure_error(self) -> bool:
        """An error synthmon caused (no browser, no account, ...): never a target outage."""
        return self.status is Status.ERROR and self.reason is not None

    @property
    def verdict(self) -> Verdict:
        """The one counting rule every sink applies: retried attempts and
        infrastructure errors do not count as failed runs, nor reset a failing streak."""
        if self.status is Status.SUCCESS:
            return Verdict.PASS
        if self.retried or self.is_infrastructure_error:
            return Verdict.NONE
        return Verdict.FAIL


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
    ca_file: str | None = None  # PEM bundle trusted instead of the public roots
    max_concurrency: int = 4
    max_requests_per_second: float | None = None
    # Cap on one response body of ctx.http (docs/config.md: max_response_size), and
    # where it was set, for the error ("target 'prod'", or the journey that raised it).
    max_response_bytes: int = 10 * 1024 * 1024
    max_response_source: str | None = None

    def allows(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(
            host == h or (h.startswith("*.") and host.endswith(h[1:])) for h in self.allowed_hosts
        )


# A span attribute value (OpenTelemetry allows these scalar types).
Attr = str | int | float | bool


class SpanHandle(Protocol):
    """One open span of a run's trace, as a runner sees it."""

    def traceparent(self) -> str:
        """The W3C traceparent naming this span (for a request it makes)."""
        ...

    def end(
        self,
        attributes: Mapping[str, Attr] | None = None,
        *,
        error: str | None = None,
        end_time: float | None = None,
    ) -> None:
        """Close the span (`error`: it failed, and why; `end_time`: epoch seconds)."""
        ...


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """A span a worker process recorded (runners/workers/), for the daemon's tracer to
    export as if it had made it: same ids, same times (epoch nanoseconds)."""

    span_id: int
    parent_id: int  # 0: the attempt's root span
    name: str
    client: bool
    attributes: Mapping[str, Attr]
    start: int
    end: int
    error: str | None = None


class RunTrace(Protocol):
    """One run's trace (docs/tracing.md). The executor opens it around each attempt;
    with tracing off it only names the run's trace id in traceparent headers."""

    def traceparent(self) -> str:
        """The traceparent of the innermost span still open (a step, else the run)."""
        ...

    def span(
        self,
        name: str,
        attributes: Mapping[str, Attr],
        *,
        client: bool = False,
        current: bool = False,
    ) -> SpanHandle:
        """Open a child of the innermost open span; `current`: spans opened inside it
        (this task and tasks it starts) become its children until it ends."""
        ...


@dataclass(frozen=True, slots=True)
class RunRequest:
    """What a runner needs to run one attempt of one (journey, target) pair."""

    journey: Journey
    target: Target
    run_id: str
    attempt: int = 1
    run_source: RunSource = RunSource.DAEMON
    # The leased synthetic account, when the journey asks for one.
    account: Account | None = None
    # Headers added to every request of the run (the account pool's tag, say).
    extra_headers: tuple[tuple[str, str], ...] = ()
    # Other configured targets `ctx.shadow` may compare with (`compare_to=`).
    peers: tuple[Target, ...] = ()
    # The attempt's trace (the executor's; None: a traceparent with the run id only).
    trace: RunTrace | None = None


@dataclass(frozen=True, slots=True)
class Selector:
    """Which (journey, target) pairs a pause, a silence or a maintenance window covers:
    each non-empty set must hold the pair's value (tags: any of the journey's tags);
    an empty set matches every pair. The one matcher of the code base."""

    journeys: frozenset[str] = frozenset()
    targets: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls, *, journey: str | None = None, target: str | None = None, tag: str | None = None
    ) -> Selector:
        """A selector of at most one name each (`None`: any)."""
        return cls(
            frozenset((journey,) if journey else ()),
            frozenset((target,) if target else ()),
            frozenset((tag,) if tag else ()),
        )

    def matches(self, journey: str, target: str, tags: Iterable[str]) -> bool:
        return (
            (not self.journeys or journey in self.journeys)
            and (not self.targets or target in self.targets)
            and (not self.tags or not self.tags.isdisjoint(tags))
        )


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with a journey file or the config, as file:line: message."""

    filename: str
    lineno: int
    message: str

    def __str__(self) -> str:
        return f"{self.filename}:{self.lineno}: {self.message}"


@dataclass(frozen=True, slots=True, eq=False)
class Account:
    """What a journey sees as ``ctx.account``. Secrets stay `SecretStr`: use
    ``ctx.account.password.get_secret_value()`` where the value must be sent."""

    pool: str
    username: str
    password: SecretStr
    attributes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    totp_secret: SecretStr | None = field(default=None, repr=False)
    targets: frozenset[str] | None = None
    # The runners send username/password as HTTP basic auth to the target's origin.
    basic_auth: bool = False

    def totp(self, at: float | None = None) -> str:
        """The current RFC 6238 code (30 s step, 6 digits, SHA-1), or the one valid
        at epoch second `at`."""
        if self.totp_secret is None:
            raise NoAccountError(
                f"account {self.username!r} of pool {self.pool!r} has no totp_secret; "
                "add totp_secret = { env = ... } to its [[accounts]] entry"
            )
        otp = pyotp.TOTP(self.totp_secret.get_secret_value())
        return otp.at(int(time.time() if at is None else at))

    def exists_on(self, target: str) -> bool:
        return self.targets is None or target in self.targets
