"""Web Vitals and page weight per document a browser run loads, measured in the page.

Google's `web-vitals` library (vendored, vendor/README.md) runs in every top-level
document of the run's context (`add_init_script`, never a CDN) with
`reportAllChanges: true`: each new value (an LCP candidate, a layout shift, a slower
interaction) is kept in the page. Two PerformanceObservers beside it sum the transfer
size and count the requests of the document and its resources (Resource Timing).

LCP, CLS and INP are final only when the page is hidden: the library reports them then
(`onHidden`). When a navigation starts (`beforeunload`) the script makes the library
report as if the page were hidden (`visibilityState` reads "hidden" for one synthetic
`visibilitychange`; the library takes its observers' pending records and reports) and
hands the document's values to a Playwright binding in one call (at `pagehide` the
document's binding calls no longer reach Playwright: measured). At the end of the run
`collect` does the same for the current document, before the context closes.

Each document is attributed to the step in flight when its navigation started
(`performance.timeOrigin` on the run's clock, give or take `CLOCK_SLACK`), else to
`NO_STEP`. See docs/browser.md ("Web Vitals").
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import structlog
from playwright.async_api import BrowserContext, Page
from playwright.async_api import Error as PlaywrightError

from synthmon.config.vitals import METRICS
from synthmon.journeys.context import RunRecord
from synthmon.model import PageVitals

log = structlog.get_logger("synthmon.browser")

BINDING = "__synthmonVital"
# The step label of a document loaded outside every ctx.step (a bare page.goto).
NO_STEP = "(none)"
# Reported in milliseconds by the page; exported in seconds.
_MILLISECONDS = frozenset({"TTFB", "FCP", "LCP", "INP"})
_KNOWN = frozenset(METRICS)
# A page that navigates in a loop must not grow a run's result without bound.
MAX_DOCUMENTS = 50
MAX_URL = 500
FLUSH_TIMEOUT = 2.0
HUNG_FLUSH_TIMEOUT = 0.5
CLOCK_SLACK = 0.05

_PAGE_JS = """
(() => {
  if (window !== window.top) return;  // top-level documents only, not iframes
  const origin = performance.timeOrigin;
  const values = {};
  const webVitals = (function () {
%(library)s
;return webVitals; })();
  // Every change is kept here, in the page: one binding call per document (when it
  // goes) instead of one per change costs the loaded machine far less.
  const all = { reportAllChanges: true };
  const report = (metric) => { values[metric.name] = metric.value; };
  try {
    webVitals.onTTFB(report, all); webVitals.onFCP(report, all);
    webVitals.onLCP(report, all); webVitals.onCLS(report, all); webVitals.onINP(report, all);
  } catch (e) {}
  let bytes = 0, requests = 0;
  try {
    const po = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) { bytes += e.transferSize || 0; requests += 1; }
      values.transfer_bytes = bytes; values.requests = requests;
    });
    po.observe({ type: 'navigation', buffered: true });
    po.observe({ type: 'resource', buffered: true });
  } catch (e) {}
  // What the library does when the page is hidden, on demand: it takes its observers'
  // pending records and reports the final CLS and INP (LCP was reported as it grew).
  const flush = () => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
    // On window, where the library listens: the page's own document listeners (an
    // analytics beacon on hide, say) do not see this synthetic event.
    try { window.dispatchEvent(new Event('visibilitychange')); }
    finally { delete document.visibilityState; }
    return [origin, location.href, values];
  };
  window[Symbol.for('synthmon.vitals.flush')] = flush;
  // Not pagehide: by then the document's binding calls no longer reach Playwright.
  addEventListener('beforeunload', () => {
    try { window.__synthmonVital(...flush()); } catch (e) {}
  }, { capture: true });
})();
"""

# Two frames first (at most 1 s): an interaction's Event Timing entry, and the
# LCP entry of an image that just arrived, exist only once the frame that painted them
# was presented. `load` fires when the image is fetched, before that paint, so a run
# ending at `load` (page.goto's default) could flush first and report the LCP of the
# text above the image instead: a slow hero image that never made the run degraded.
_FLUSH_JS = """async () => {
  const f = window[Symbol.for('synthmon.vitals.flush')];
  if (!f) return null;
  await Promise.race([
    new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r)))),
    new Promise((r) => setTimeout(r, 1000)),
  ]);
  return f();
}"""


@cache
def page_script() -> str:
    """The script every document of a browser run gets (read once per process)."""
    library = (
        resources.files("synthmon.runners.browser")
        .joinpath("vendor/web-vitals.iife.js")
        .read_text(encoding="utf-8")
    )
    return _PAGE_JS % {"library": library}


@dataclass(slots=True)
class _Document:
    url: str
    started: float  # navigation start on the run's clock
    values: dict[str, float] = field(default_factory=dict)


class VitalsRecorder:
    """One run's Web Vitals, per document, as the page reports them."""

    def __init__(self, clock: Callable[[], float], wall: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._wall = wall
        self._documents: dict[float, _Document] = {}

    async def install(self, context: BrowserContext) -> None:
        """Before the run's first page: the binding, then the script in every document."""
        await context.expose_binding(BINDING, self._on_vital)
        await context.add_init_script(script=page_script())

    def _on_vital(self, source: Any, *args: Any) -> None:
        # Any page script can call the binding: a call of another shape is dropped.
        if len(args) == 3:
            self.record_all(*args)

    def record_all(self, origin: Any, url: Any, values: Any) -> None:
        """A document's values as its script hands them over: {metric: value}."""
        if isinstance(values, dict):
            for name, value in values.items():
                self.record(origin, url, name, value)

    def record(self, origin: Any, url: Any, name: Any, value: Any) -> None:
        """One value from the page. The page is not trusted: anything malformed is
        dropped, and the number of documents is capped."""
        if not _number(origin) or not _number(value) or value < 0:
            return
        if name not in _KNOWN or not isinstance(url, str):
            return
        doc = self._documents.get(origin)
        if doc is None:
            scheme = urlsplit(url).scheme
            if scheme not in ("http", "https") or len(self._documents) >= MAX_DOCUMENTS:
                return
            now = self._clock()
            # timeOrigin is wall-clock milliseconds: moved onto the run's clock.
            started = now - (self._wall() - origin / 1000.0)
            doc = self._documents[origin] = _Document(_safe_url(url), started)
        doc.values[name] = value / 1000.0 if name in _MILLISECONDS else float(value)

    async def collect(
        self,
        page: Page,
        run: RunRecord,
        thresholds: Mapping[str, float],
        *,
        wait: float = FLUSH_TIMEOUT,
    ) -> tuple[PageVitals, ...]:
        """The current document's final values (the library reports as on page hide),
        then every document's values attributed to its step, with the thresholds'
        breaches. Bounded by `wait`: a hung or closed page loses only its own values."""
        final = None
        try:
            async with asyncio.timeout(wait):
                final = await page.evaluate(_FLUSH_JS)
        except (PlaywrightError, TimeoutError) as exc:
            log.debug("web_vitals_flush_failed", error=(str(exc) or type(exc).__name__))
        if isinstance(final, list) and len(final) == 3:
            self.record_all(*final)
        return self.pages(run, thresholds)

    def pages(self, run: RunRecord, thresholds: Mapping[str, float]) -> tuple[PageVitals, ...]:
        out: list[PageVitals] = []
        for _, doc in sorted(self._documents.items()):
            if not doc.values:
                continue
            # The page's timeOrigin and our wall clock may disagree by a few ms: a
            # navigation a step starts at once must not fall just before it.
            step = run.step_at(doc.started) or run.step_at(doc.started + CLOCK_SLACK) or NO_STEP
            values = tuple((m, round(doc.values[m], 6)) for m in METRICS if m in doc.values)
            breaches = tuple(
                (m, limit)
                for m, limit in thresholds.items()
                if m in doc.values and doc.values[m] > limit
            )
            out.append(PageVitals(step=step, url=doc.url, values=values, breaches=breaches))
        return tuple(out)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _safe_url(url: str) -> str:
    """Scheme, host and path: query strings and fragments may carry tokens."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))[:MAX_URL]
