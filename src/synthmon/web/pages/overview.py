"""`GET /`: every journey x target, failing first (docs/status-page.md)."""

from __future__ import annotations

import time
from urllib.parse import quote

from synthmon.web.api import artifact_link
from synthmon.web.pages import extras
from synthmon.web.pages.html import (
    WORDS,
    Memo,
    ago,
    badge,
    duration,
    esc,
    first_line,
    frame,
    percent,
    query,
    sparkline,
    stamp,
    uptime_bar,
)
from synthmon.web.pages.rows import Row, Selection
from synthmon.web.status import DaemonState

ARTIFACT_LABELS = {
    "screenshot.png": "screenshot",
    "trace.zip": "Playwright trace",
    "page.html": "page HTML",
    "console.txt": "console log",
    "network.txt": "network log",
}


def journey_url(row: Row) -> str:
    return f"/journeys/{quote(row.journey.name)}?target={quote(row.target.name)}"


def trace_link(template: str | None, trace_id: str | None) -> str:
    if not template or not trace_id:
        return ""
    url = template.replace("{trace_id}", quote(trace_id))
    return f'<a href="{esc(url)}" rel="noopener">trace {esc(trace_id[:8])}…</a>'


def artifact_links(artifacts: tuple[str, ...] | list[str]) -> str:
    links = []
    for a in artifacts:
        name = a.rsplit("/", 1)[-1]
        label = ARTIFACT_LABELS.get(name, name)
        download = " download" if name.endswith(".zip") else ""
        links.append(f'<a href="{esc(artifact_link(a))}"{download}>{esc(label)}</a>')
    return " · ".join(links)


def screenshot(artifacts: tuple[str, ...] | list[str], alt: str, cls: str = "thumb") -> str:
    for a in artifacts:
        if a.endswith("screenshot.png"):
            src = esc(artifact_link(a))
            return f'<a href="{src}"><img class="{cls}" src="{src}" alt="{esc(alt)}"></a>'
    return ""


def _problem(row: Row, public: bool, trace_ui: str | None, now: float) -> str:
    """A failing or degraded pair in words: what broke, where, since when, evidence."""
    j, t, r = row.journey, row.target, row.last_failure
    lines = [
        f'<h3><a href="{esc(journey_url(row))}">{esc(j.name)}</a> on {esc(t.name)} '
        f"{badge(row.state)}</h3>"
    ]
    facts = [f"<dt>Severity</dt><dd>{esc(j.severity.value)}</dd>"]
    if row.since is not None:
        facts.append(f"<dt>Since</dt><dd>{stamp(row.since)} ({ago(row.since, now)})</dd>")
    if row.fired_at is not None:
        facts.append(f"<dt>Alert fired</dt><dd>{stamp(row.fired_at)}</dd>")
    if row.silenced_by:
        facts.append(f"<dt>Silenced</dt><dd>{esc(row.silenced_by)}</dd>")
    thumb = ""
    if r is not None and not public:
        if r.failed_step:
            facts.append(f'<dt>Failed step</dt><dd class="step">{esc(r.failed_step)}</dd>')
        if r.error_message:
            facts.append(f'<dt>Error</dt><dd class="error">{esc(first_line(r.error_message))}</dd>')
        evidence = " · ".join(
            x for x in (artifact_links(r.artifacts), trace_link(trace_ui, r.trace_id)) if x
        )
        if evidence:
            facts.append(f"<dt>Evidence</dt><dd>{evidence}</dd>")
        thumb = screenshot(r.artifacts, f"screenshot of {j.name} when step {r.failed_step} failed")
    elif row.health == "degraded" and row.last is not None and j.degraded_after:
        facts.append(
            f"<dt>Latency</dt><dd>last run took {duration(row.last.duration)}, "
            f"budget {duration(j.degraded_after)}</dd>"
        )
    return (
        f'<article class="problem p-{esc(row.health)}">{thumb}{"".join(lines)}'
        f"<dl>{''.join(facts)}</dl></article>"
    )


def _row(
    row: Row, location: str | None, now: float, certs: bool, memo: Memo, cells: Memo
) -> tuple[str, str, str]:
    """One table row. Everything but the last run's age is kept in `memo` while the
    pair's inputs are the same objects: at 500 rows, rebuilding them all on every
    request (or refresh tick) would take most of the page's 100 ms."""
    points = row.points
    token = (
        row.journey,
        row.target,
        row.silenced_by,
        row.state,
        row.health,
        row.last,
        row.stats,
        row.days,
        row.certs,
        certs,
        int(now // 86400),  # the certificate cell counts days left
        (len(points), points[0], points[-1]) if points else (),
        location,
    )
    key = ("row", row.journey.name, row.target.name)
    head, tail = memo.get(key, token, lambda: _row_parts(row, location, cells, now, certs)).split(
        "\0", 1
    )
    last_at = row.last.started_at + row.last.duration if row.last is not None else None
    return head, f'<td data-label="Last run">{ago(last_at, now)}</td>', tail


def _row_parts(row: Row, location: str | None, cells: Memo, now: float, certs: bool) -> str:
    """The row before and after its age cell, joined by a NUL."""
    j, t = row.journey, row.target
    seven = row.stats.get("7d")
    state_note = f"(underneath: {WORDS[row.health]})" if row.state != row.health else ""
    return (
        f'<tr class="r-{esc(row.state)}" data-pair="{esc(j.name)}@{esc(t.name)}">'
        f'<td data-label="State">{badge(row.state, state_note)}</td>'
        f'<th scope="row" data-label="Journey"><a href="{esc(journey_url(row))}">'
        f"{esc(j.name)}</a></th>"
        f'<td data-label="Target">{esc(t.name)}</td>'
        f'<td data-label="Severity">{esc(j.severity.value)}</td>'
        f'<td data-label="Kind">{esc(j.kind.value)}</td>'
        f'<td data-label="Location">{esc(location or "—")}</td>\0'
        f'<td data-label="Latency">{sparkline(row.points)}</td>'
        f'<td data-label="Availability 7 d">{percent(seven.availability if seven else None)}</td>'
        f'<td data-label="MTTR 7 d">{duration(seven.mttr_seconds if seven else None)}</td>'
        f'<td data-label="90 days" class="bar">{uptime_bar(row.days, cells)}</td>'
        f"{extras.pair_cells(row, now) if certs else ''}</tr>"
    )


def _filters(sel: Selection) -> str:
    fields = []
    for name in ("tag", "target", "severity", "state"):
        current = sel.filters.get(name, "")
        opts = [f'<option value=""{" selected" if not current else ""}>any</option>']
        for v in sel.options[name]:
            label = WORDS.get(v, v) if name == "state" else v
            selected = " selected" if v == current else ""
            opts.append(f'<option value="{esc(v)}"{selected}>{esc(label)}</option>')
        fields.append(f'<label>{name} <select name="{name}">{"".join(opts)}</select></label>')
    clear = '<a href="/">clear filters</a>' if sel.filters else ""
    return (
        '<form class="filters" method="get" action="/" aria-label="Filters">'
        f'{"".join(fields)}<button type="submit">Apply</button> {clear}</form>'
    )


def render(
    d: DaemonState, sel: Selection, memo: tuple[Memo, Memo], now: float | None = None
) -> str:
    """The page; `memo`: (rows, uptime cells), kept between requests by the caller."""
    now = time.time() if now is None else now
    cfg = d.settings.status_page
    counts: dict[str, int] = {}
    for row in sel.rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    summary = ", ".join(f"{counts[s]} {WORDS[s]}" for s in WORDS if s in counts)
    shown = f"{len(sel.rows)} of {sel.total} journey/target pairs"
    problems = [r for r in sel.rows if r.health in ("failing", "degraded")]
    tail = ": " + esc(summary) if summary else ""
    parts = [f'<h1>Status</h1><p class="summary">{esc(shown)}{tail}</p>']
    if problems:
        parts.append(
            '<section class="problems" aria-labelledby="problems-h"><h2 id="problems-h">'
            "What is broken</h2>"
            + "".join(_problem(r, cfg.public, d.settings.tracing.ui_url, now) for r in problems)
            + "</section>"
        )
    if sel.rows:
        certs = extras.shows_certificates(sel.rows)
        parts.append(
            '<table class="pairs"><caption>Every journey on every target, failing first'
            "</caption><thead><tr>"
            '<th scope="col">State</th><th scope="col">Journey</th><th scope="col">Target</th>'
            '<th scope="col">Severity</th><th scope="col">Kind</th>'
            '<th scope="col">Location</th><th scope="col">Last run</th>'
            '<th scope="col">Latency (6 h)</th><th scope="col">Availability 7 d</th>'
            '<th scope="col">MTTR 7 d</th><th scope="col">90 days (UTC)</th>'
            f"{extras.pair_headers() if certs else ''}</tr></thead><tbody>"
        )
        # Appended piece by piece and joined once with the frame: `/` at 500 pairs is
        # megabytes, and every intermediate join copies all of it.
        for r in sel.rows:
            parts.extend(_row(r, d.settings.location, now, certs, *memo))
        parts.append("</tbody></table>")
    else:
        parts.append(
            f'<p class="empty">No journey matches these filters. <a href="/{query({})}">'
            "Show all</a></p>"
            if sel.filters
            else '<p class="empty">No journeys loaded.</p>'
        )
    status_line = f"updated {stamp(now)}"
    return frame(
        "Status",
        parts,
        site=cfg.title,
        refresh=cfg.refresh,
        header=_filters(sel),
        status_line=status_line,
    )
