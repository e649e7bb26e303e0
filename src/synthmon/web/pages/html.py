"""HTML building blocks of the status pages: escaping, the page frame, state badges,
durations and times in words, the sparkline and the uptime bar.

Plain functions returning strings (stdlib only): every value that reaches the page
passes through `esc`, because errors, step names and journey descriptions come from
targets and journey authors. Templates would have been another dependency for pages
whose structure is a few loops; rendering 500 rows of 90 uptime cells also needs to
stay well under the 100 ms budget, which plain string joins do.
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
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


def _cell_title(c: DayCell) -> str:
    day = time.strftime("%Y-%m-%d", time.gmtime(c.day * DAY))
    if c.counted == 0 and not c.incidents:
        return f"{day}: no runs recorded"
    text = f"{day}: {percent(c.availability)} of {c.counted} runs passed"
    if c.incidents:
        plural = "s" if c.incidents > 1 else ""
        text += f"; {c.incidents} incident{plural}, down {duration(c.down_seconds)}"
    return text


def uptime_bar(days: Sequence[DayCell]) -> str:
    """One cell per UTC day, oldest first; a run of days without data is one cell."""
    if not days:
        return '<span class="muted">no history yet</span>'
    cells: list[str] = []
    i = 0
    while i < len(days):
        c = days[i]
        if c.counted == 0 and not c.incidents:
            j = i
            while j + 1 < len(days) and days[j + 1].counted == 0 and not days[j + 1].incidents:
                j += 1
            first = time.strftime("%Y-%m-%d", time.gmtime(c.day * DAY))
            last = time.strftime("%Y-%m-%d", time.gmtime(days[j].day * DAY))
            title = (
                f"{first} to {last}: no runs recorded" if j > i else f"{first}: no runs recorded"
            )
            cells.append(f'<i class="u-none" style="flex-grow:{j - i + 1}" title="{title}"></i>')
            i = j + 1
            continue
        cells.append(f'<i class="{_cell_class(c)}" title="{esc(_cell_title(c))}"></i>')
        i += 1
    counted = sum(c.counted for c in days)
    passed = sum(c.passed for c in days)
    ratio = percent(passed / counted if counted else None)
    summary = f"{len(days)} days: {ratio} of {counted} runs passed"
    return f'<div class="uptime" role="img" aria-label="{esc(summary)}">{"".join(cells)}</div>'


def frame(
    title: str, body: str, *, site: str, refresh: float, header: str = "", status_line: str = ""
) -> str:
    """The whole document. `main` is what the in-place refresh replaces; the header
    (filters) stays, so a half-chosen filter is never reset."""
    refresh_attr = f' data-refresh="{refresh:g}"' if refresh > 0 else ""
    return (
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
        f"{header}<main{refresh_attr}>{body}</main></body></html>\n"
    )
