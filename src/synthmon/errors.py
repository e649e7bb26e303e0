"""synthmon's one exception tree.

    SynthmonError
    ├── ConfigError                 bad config file or environment override (file, field)
    ├── JourneyDefinitionError      bad @journey(...) options (file:line, journey)
    ├── DeliveryError               a notifier could not deliver an alert (retried by the outbox)
    ├── BadSelectorError            a pause/silence names nothing, or an unknown journey/tag/target
    └── RunError                    raised inside a run; the runner turns it into a RunResult
        ├── HostNotAllowedError     a request to a host outside the target's allowed_hosts
        ├── StepFailedError         a step's check failed (status "failure")
        └── InfrastructureError     synthmon's own problem (status "error" + reason);
            ├── BrowserCrashError       Chromium died or a page crashed mid-run
            ├── BrowserUnavailableError no Chromium could be found or launched
            ├── BrowserExhaustedError   no browser slot freed up within the run's timeout
            └── NoAccountError          no synthetic account of the pool was free

Errors are read in alerts at 3 a.m.: each says what failed, where (journey, step,
URL, file) and, when there is one, what to do about it.
"""

from __future__ import annotations


class SynthmonError(Exception):
    """Base of every error synthmon raises on purpose."""


class ConfigError(SynthmonError):
    """The configuration could not be loaded. The message names the file and field."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class JourneyDefinitionError(SynthmonError):
    """A journey was declared with bad options."""

    def __init__(self, message: str, *, filename: str | None = None, lineno: int | None = None):
        super().__init__(message)
        self.filename = filename
        self.lineno = lineno


class DeliveryError(SynthmonError):
    """A notifier could not hand an alert over (receiver down, 5xx, bad answer).
    The outbox keeps the notification and retries it with backoff."""

    def __init__(self, notifier: str, message: str, *, retryable: bool = True) -> None:
        super().__init__(f"{notifier}: {message}")
        self.notifier = notifier
        self.retryable = retryable


class BadSelectorError(SynthmonError, ValueError):
    """A pause/resume/silence request named nothing, or a journey/tag/target that does
    not exist. The message lists the known names."""


class RunError(SynthmonError):
    """Raised during a run; never escapes the runner."""


class HostNotAllowedError(RunError):
    """A journey tried to reach a host its target does not allow. Never sent."""

    def __init__(self, url: str, allowed: frozenset[str] | tuple[str, ...]) -> None:
        super().__init__(
            f"request to {url} blocked: host is not in the target's allowed_hosts "
            f"{sorted(allowed)}; add it to [targets.<name>].allowed_hosts if it is intended"
        )
        self.url = url


class StepFailedError(RunError):
    """A journey declared a check failed (`ctx.fail(...)`)."""


class InfrastructureError(RunError):
    """synthmon could not run the journey for reasons of its own. Must not page as
    a target outage."""

    reason = "internal"


class BrowserCrashError(InfrastructureError):
    reason = "browser_crash"


class BrowserUnavailableError(InfrastructureError):
    reason = "browser_unavailable"


class BrowserExhaustedError(InfrastructureError):
    reason = "browser_exhausted"


class NoAccountError(InfrastructureError):
    reason = "no_account"
