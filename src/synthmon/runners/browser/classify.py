"""Playwright errors, classified and described for people (everything else goes to
`runners.base`), and a run's result explained by what its page saw (a crash, a
blocked navigation)."""

from __future__ import annotations

import dataclasses

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from synthmon.errors import BrowserCrashError, HostNotAllowedError
from synthmon.model import RunResult, Status
from synthmon.runners import base
from synthmon.runners.browser.page import RunState


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


def classify_in_run(exc: BaseException, state: RunState) -> tuple[Status, str | None]:
    if state.crashed and isinstance(exc, PlaywrightError):
        return Status.ERROR, BrowserCrashError.reason
    if state.blocked and isinstance(exc, PlaywrightError):
        return Status.ERROR, None
    return classify(exc)


def describe_in_run(exc: BaseException, state: RunState, journey_file: str) -> tuple[str, str]:
    if state.crashed and isinstance(exc, PlaywrightError):
        return BrowserCrashError.__name__, crash_message(state)
    if state.blocked and isinstance(exc, PlaywrightError):
        err = HostNotAllowedError(state.blocked[-1], tuple(state.target.allowed_hosts))
        return type(err).__name__, str(err)
    return describe(exc, journey_file)


def crash_message(state: RunState) -> str:
    what = "the page crashed" if state.page_crashed else "Chromium died"
    return (
        f"{what} during the run (infrastructure, not the target); the browser is "
        "relaunched for the next run"
    )


def explain(result: RunResult, state: RunState, page: Page) -> RunResult:
    """Name the real cause of a failed run: a crash or a blocked navigation rather
    than the Playwright error they surfaced as; and where the page was."""
    if result.status is Status.SUCCESS:
        return result
    if state.crashed:
        return dataclasses.replace(
            result,
            status=Status.ERROR,
            reason=BrowserCrashError.reason,
            error_type=BrowserCrashError.__name__,
            error_message=crash_message(state),
        )
    if state.blocked and result.status is not Status.TIMEOUT:
        # Same status as the HTTP runner's HostNotAllowedError: the journey (or a
        # redirect the config did not foresee) went somewhere it may not go.
        err = HostNotAllowedError(state.blocked[-1], tuple(state.target.allowed_hosts))
        return dataclasses.replace(
            result, status=Status.ERROR, error_type=type(err).__name__, error_message=str(err)
        )
    url = page.url
    if result.error_message and url and url not in result.error_message:
        return dataclasses.replace(result, error_message=f"{result.error_message} [page: {url}]")
    return result
