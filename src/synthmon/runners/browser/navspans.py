"""A span per main-frame navigation of a browser run (docs/tracing.md).

The span opens when Chromium sends the document request (routing sees it first), so
the traceparent of that request, of its redirects and of the page's subresources
names it and the backend's spans join under it. It ends when the step that navigated
reads the page's Navigation Timing (`runners.browser.page`), at the moment the load
event finished, with TTFB, DOMContentLoaded and load as attributes; or at the next
navigation or the end of the run, whichever comes first.

Only this module and page.py know about navigation spans: capture of other page
metrics lives in modules of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from playwright.async_api import Request

from synthmon.model import RunTrace, SpanHandle


class NavigationSpans:
    """The navigation spans of one run."""

    def __init__(self, trace: RunTrace) -> None:
        self._trace = trace
        self._open: SpanHandle | None = None
        self._request: Request | None = None
        self._error: str | None = None
        self._status: int | None = None

    def traceparent(self, request: Request, *, main_navigation: bool) -> str:
        """The traceparent for a request to an allowed host: a main-frame navigation
        (not a redirect hop) opens a new navigation span first."""
        if main_navigation and request.redirected_from is None:
            self.close()
            self._request = request
            self._open = self._trace.span(
                "navigation",
                {"url.full": request.url, "http.request.method": request.method},
                client=True,
            )
        if self._open is not None:
            return self._open.traceparent()
        return self._trace.traceparent()

    def responded(self, request: Request, status: int) -> None:
        """The navigation's document answered (`status` of its last hop)."""
        if self._open is not None and _same(request, self._request):
            self._status = status
            if status >= 400:
                self._error = str(status)

    def failed(self, request: Request, why: str | None) -> None:
        """The navigation's document request failed (refused, reset, aborted)."""
        if self._open is not None and _same(request, self._request):
            self._error = why or "navigation failed"

    def timed(self, time_origin_ms: float, timings: Sequence[tuple[str, float]]) -> None:
        """The page's Navigation Timing (seconds since its start): end the span at the
        end of the load event, or now when the page has not loaded."""
        if self._open is None:
            return
        values = dict(timings)
        load = values.get("load")
        self._end(
            {f"synthmon.navigation.{name}_seconds": round(v, 6) for name, v in values.items()},
            end_time=time_origin_ms / 1000.0 + load if load else None,
        )

    def close(self) -> None:
        """End a navigation span still open (next navigation, end of the run)."""
        if self._open is not None:
            self._end({})

    def _end(self, attributes: dict[str, float], end_time: float | None = None) -> None:
        span, self._open, self._request = self._open, None, None
        assert span is not None
        extra: dict[str, float | int] = dict(attributes)
        if self._status is not None:
            extra["http.response.status_code"] = self._status
        span.end(extra, error=self._error, end_time=end_time)
        self._error = self._status = None


def _same(request: Request, navigation: Request | None) -> bool:
    """`request` is the navigation's document request or one of its redirect hops."""
    hop: Request | None = request
    while hop is not None:
        if hop is navigation:
            return True
        hop = hop.redirected_from
    return False
