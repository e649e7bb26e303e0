"""HTML building blocks of the status pages: escaping, the page frame, state badges,
durations and times in words, the sparkline and the uptime bar.

Plain functions returning strings (stdlib only): every value that reaches the page
passes through `esc`, because errors, step names and journey descriptions come from
targets and journey authors. Templates would have been another dependency for pages
whose structure is a few loops; rendering 500 rows of 90 uptime cells also needs to
stay well under the 100 ms budget, which plain string joins do.
"""

from __future__ import annotations

import functools
import html
import time
from collections.abc import Callable, Hashable, Sequence
from urllib.parse import urlencode

from synthmon.sinks.history.overview import DAY, DayCell, Point

STATIC_VERSION = "4"  # bump when a static file changes: browsers cache /static/ for a day

# State word, icon (drawn in SVG, never only colour) and how it sorts.
WORDS = {
    "failing": "failing",
    "degraded": "degraded",
    "passing": "passing",
    "paused": "paused",
    "silenced": "silenced",
    "never_run": "never run",
}
_PATHS = {
    # 16x16 glyphs: a cross, a warning triangle, a check, two bars, a muted bell, a dash.
    "failing": '<path d="M4 4l8 8M12 4l-8 8"/>',
    "degraded": '<path d="M8 2l6.5 12h-13z M8 6v4 M8 11.5v1"/>',
    "passing": '<path d="M3 8.5l3 3 7-7"/>',
    "paused": '<path d="M5.5 3v10M10.5 3v10"/>',
    "silenced": '<path d="M4 11h8l-1.5-2V6a2.5 2.5 0 0 0-5 0v3z M2 2l12 12"/>',
    "never_run": '<path d="M4 8h8"/>',
}


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def icon(state: str) -> str:
    return (
        '<svg class="icon" viewBox="0 0 16 16" width="16" height="16" aria-hidden="true" '
        f'focusable="false">{_PATHS.get(state, _PATHS["never_run"])}</svg>'
    )


def badge(state: str, note: str = "") -> str:
    """The state as an icon plus its word (colour is never the only signal)."""
    extra = f' <span class="note">{esc(note)}</span>' if note else ""
    return (
        f'<span class="state s-{esc(state)}">{icon(state)}'
        f'<span class="word">{esc(WORDS.get(state, state))}</span>{extra}</span>'
    )


def first_line(text: str | None, limit: int = 200) -> str:
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"
    return f"{int(seconds // 86400)} d {int(seconds % 86400 // 3600)} h"


def ago(at: float | None, now: float) -> str:
    if at is None:
        return "—"
    return f"{duration(max(now - at, 0.0))} ago"


def stamp(at: float | None) -> str:
    """A UTC time in a <time> element (machine-readable, no client-side formatting)."""
    if at is None:
        return "—"
    text = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(at))
    return f'<time datetime="{text.replace(" ", "T")}">{text}</time>'


def percent(ratio: float | None) -> str:
    if ratio is None:
        return "—"
    value = ratio * 100
    return f"{value:.0f} %" if value in (0, 100) else f"{value:.2f} %"


def query(params: dict[str, str], **changes: str | None) -> str:
    """`?a=b` keeping the current filters, with `changes` applied (None removes)."""
    merged = {**params, **changes}
    kept = {k: v for k, v in merged.items() if v}
    return "?" + urlencode(kept) if kept else ""


def sparkline(points: Sequence[Point], width: int = 120, height: int = 28) -> str:
    """Latency of the recent runs as an inline SVG line; failed runs as marks."""
    if len(points) < 2:
        return '<span class="muted">not enough runs yet</span>'
    top = max(p[1] for p in points) or 1.0
    t0, t1 = points[0][0], points[-1][0]
    span = (t1 - t0) or 1.0
    xy = [
        (
            round((p[0] - t0) / span * (width - 4) + 2, 1),
            round(height - 2 - p[1] / top * (height - 4), 1),
        )
        for p in points
    ]
    line = " ".join(f"{x},{y}" for x, y in xy)
    marks = "".join(
        f'<circle cx="{x}" cy="{y}" r="2" class="bad"/>'
        for (x, y), p in zip(xy, points, strict=True)
        if not p[2]
    )
    durations = sorted(p[1] for p in points)
    label = (
        f"{len(points)} runs in the last {duration(points[-1][0] - t0)}: median "
        f"{duration(durations[len(durations) // 2])}, slowest {duration(durations[-1])}, "
        f"{sum(1 for p in points if not p[2])} failed"
    )
    return (
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{esc(label)}"><title>{esc(label)}</title>'
        f'<polyline points="{line}"/>{marks}</svg>'
    )


def _cell_class(c: DayCell) -> str:
    a = c.availability
    if a is None:
        return "u-none"
    if a >= 0.999 and not c.incidents:
        return "u-ok"
    if a >= 0.99:
        return "u-warn"
    return "u-bad"


@functools.lru_cache(maxsize=512)
def _date(day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day * DAY))


def _cell_title(c: DayCell) -> str:
    # Only digits and fixed words: nothing to escape.
    day = _date(c.day)
    if c.counted == 0 and not c.incidents:
        return f"{day}: no runs recorded"
    text = f"{day}: {percent(c.availability)} of {c.counted} runs passed"
    if c.incidents:
        plural = "s" if c.incidents > 1 else ""
        text += f"; {c.incidents} incident{plural}, down {duration(c.down_seconds)}"
    return text


def _cell(c: DayCell) -> str:
    return f'<i class="{_cell_class(c)}" title="{_cell_title(c)}"></i>'


def _kind(c: DayCell) -> str:
    if c.incidents:
        return "day"
    if c.counted == 0:
        return "none"
    return "perfect" if c.passed == c.counted else "day"


def _group(first: DayCell, last: DayCell, kind: str, n: int, counted: int) -> str:
    span = f"{_date(first.day)} to {_date(last.day)}" if n > 1 else _date(first.day)
    if kind == "none":
        return f'<i class="u-none" style="flex-grow:{n}" title="{span}: no runs recorded"></i>'
    title = f"{span}: all {counted} runs passed, no incidents"
    return f'<i class="u-ok" style="flex-grow:{n}" title="{title}"></i>'


def uptime_bar(days: Sequence[DayCell], cells_memo: Memo | None = None) -> str:
    """One cell per UTC day, oldest first. Consecutive days without data, and
    consecutive days where every run passed, share one cell as wide as they are (its
    title gives the range and the figures): a year of quiet days is one element, not
    365. With `cells_memo`, a day's cell is rendered once while its figures stay the
    same (only today's change between statistics refreshes)."""
    if not days:
        return '<span class="muted">no history yet</span>'
    cells: list[str] = []
    i = 0
    while i < len(days):
        c = days[i]
        kind = _kind(c)
        if kind == "day":
            cells.append(
                cells_memo.get(c, None, functools.partial(_cell, c)) if cells_memo else _cell(c)
            )
            i += 1
            continue
        j = i
        while j + 1 < len(days) and _kind(days[j + 1]) == kind:
            j += 1
        counted = sum(d.counted for d in days[i : j + 1])
        cells.append(_group(c, days[j], kind, j - i + 1, counted))
        i = j + 1
    counted = sum(c.counted for c in days)
    passed = sum(c.passed for c in days)
    ratio = percent(passed / counted if counted else None)
    summary = f"{len(days)} days: {ratio} of {counted} runs passed"
    return f'<div class="uptime" role="img" aria-label="{esc(summary)}">{"".join(cells)}</div>'


class Memo:
    """Rendered fragments (a pair's uptime bar, its sparkline), kept while their input
    is unchanged: the uptime cells change once per statistics refresh, a sparkline
    once per run, and re-rendering 500 x 90 cells on every request would cost most
    of the page's time budget."""

    def __init__(self, limit: int = 20_000) -> None:
        self._kept: dict[Hashable, tuple[object, str]] = {}
        self._limit = limit

    def get(self, key: Hashable, token: object, build: Callable[[], str]) -> str:
        """`build()`'s HTML, reused while `token` is the same object (or equal)."""
        hit = self._kept.get(key)
        if hit is not None and (hit[0] is token or hit[0] == token):
            return hit[1]
        if len(self._kept) >= self._limit:
            self._kept.clear()  # pairs removed by reloads: start over, rarely
        text = build()
        self._kept[key] = (token, text)
        return text


def frame(
    title: str,
    body: str | list[str],
    *,
    site: str,
    refresh: float,
    header: str = "",
    status_line: str = "",
) -> str:
    """The whole document. `main` is what the in-place refresh replaces; the header
    (filters) stays, so a half-chosen filter is never reset."""
    refresh_attr = f' data-refresh="{refresh:g}"' if refresh > 0 else ""
    head = (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f"<title>{esc(title)} · {esc(site)}</title>"
        f'<link rel="stylesheet" href="/static/status.css?v={STATIC_VERSION}">'
        f'<link rel="icon" href="/static/favicon.svg?v={STATIC_VERSION}" type="image/svg+xml">'
        f'<script src="/static/status.js?v={STATIC_VERSION}" defer></script>'
        "</head><body>"
        f'<header class="top"><a class="home" href="/">{esc(site)}</a>'
        f'<span class="updated" data-updated>{status_line}</span></header>'
        f"{header}<main{refresh_attr}>"
    )
    parts = body if isinstance(body, list) else [body]
    return "".join([head, *parts, "</main></body></html>\n"])
