"""Playwright errors, classified and described for people; everything else goes to
`runners.base`."""

from __future__ import annotations

from playwright.async_api import Error as PlaywrightError

from synthmon.model import Status
from synthmon.runners import base


def classify(exc: BaseException) -> tuple[Status, str | None]:
    """(status, reason) for an exception a browser journey raised."""
    if isinstance(exc, PlaywrightError):
        # A Playwright TimeoutError (an element or URL that never showed up within the
        # action's timeout) and net::ERR_* navigation errors are what a customer would
        # see as a broken page: failures. The run's own deadline is "timeout" (in
        # `execute`). A closed page/browser is our problem; the browser runner upgrades
        # it to browser_crash when Chromium really died.
        if closed_target(exc):
            return Status.ERROR, None
        return Status.FAILURE, None
    return base.classify(exc)


def describe(exc: BaseException, journey_file: str | None = None) -> tuple[str, str]:
    """(type name, message): a Playwright error's first line and the first line of its
    call log, at the journey line that failed."""
    if not isinstance(exc, PlaywrightError):
        return base.describe(exc, journey_file)
    msg = playwright_message(exc)
    if journey_file:
        msg = base.at_journey_line(msg, exc, journey_file)
    return type(exc).__name__, msg


def closed_target(exc: PlaywrightError) -> bool:
    msg = exc.message if isinstance(exc.message, str) else str(exc)
    return type(exc).__name__ == "TargetClosedError" or "has been closed" in msg


def playwright_message(exc: PlaywrightError) -> str:
    """First line of a Playwright error plus the first line of its call log, which
    names the selector or URL it waited for ("waiting for locator('#email')")."""
    text = exc.message if isinstance(exc.message, str) else str(exc)
    head, _, call_log = text.partition("Call log:")
    first = head.strip().splitlines()[0] if head.strip() else type(exc).__name__
    entries = [line.strip(" -\t") for line in call_log.strip().splitlines() if line.strip()]
    return f"{first} ({entries[0]})" if entries and entries[0] not in first else first
