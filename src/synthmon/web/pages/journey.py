"""`GET /journeys/{name}?target=`: the page the alert links to (docs/status-page.md).

The pair's row comes from memory (`rows.build_row`); the runs, the current incident's
attempts and the incidents of 30 days are read from the history in a thread
(`load`), as are the failed run's console and network logs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthmon.alerting.policy import Policy
from synthmon.sinks.history.records import IncidentRecord
from synthmon.sinks.history.store import HistoryStore, RunQuery
from synthmon.web.pages import extras
from synthmon.web.pages.html import (
    ago,
    badge,
    duration,
    esc,
    first_line,
    frame,
    percent,
    stamp,
    uptime_bar,
)
from synthmon.web.pages.overview import artifact_links, screenshot, trace_link
from synthmon.web.pages.rows import Row
from synthmon.web.pages.waterfall import result_badge, runs_table, waterfall
from synthmon.web.status import DaemonState

RECENT = 20
MONTH = 30 * 86400.0
LOG_LINES = 40  # of console.txt / network.txt shown inline


@dataclass(slots=True)
class History:
    """What the journey page reads from the history database."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    incidents: list[IncidentRecord] = field(default_factory=list)
    logs: dict[str, list[str]] = field(default_factory=dict)
    problem: str | None = None


def load(
    store: HistoryStore,
    journey: str,
    target: str,
    since: float | None,
    now: float,
    *,
    logs: bool,
    timeout: float = 0.0,
) -> History:
    """Runs in a thread: the reads of one journey page (all on indexes)."""
    out = History()
    out.runs = store.runs(RunQuery(journey=journey, target=target, limit=RECENT))
    failed = last_failed(out.runs)
    if logs and failed is not None:
        out.logs = read_logs(failed["artifacts"])
    if since is not None:
        # Every attempt of the current incident, retries included (oldest first).
        # `since` is when the first failed attempt *ended*; it started up to a timeout
        # (plus cleanup) before.
        attempts = store.runs(
            RunQuery(journey=journey, target=target, since=since - timeout - 30, limit=200)
        )
        out.attempts = [
            r for r in reversed(attempts) if r["started_at"] + r["duration_seconds"] >= since - 0.01
        ]
    out.incidents = [
        i
        for i in store.incidents(None, now - MONTH, journey=journey, limit=500)
        if i.target == target
    ]
    return out


def last_failed(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest failed run with artifacts (else the newest failed run)."""
    failed = next((r for r in runs if r["status"] != "success" and r["artifacts"]), None)
    return failed or next((r for r in runs if r["status"] != "success"), None)


def read_logs(artifacts: list[str]) -> dict[str, list[str]]:
    """The first lines of the run's console and network logs (in a thread)."""
    logs: dict[str, list[str]] = {}
    for a in artifacts:
        name = a.rsplit("/", 1)[-1]
        if name in ("console.txt", "network.txt") and "://" not in a:
            try:
                with Path(a).open(encoding="utf-8", errors="replace") as f:
                    lines = [
                        line.rstrip("\n") for _, line in zip(range(LOG_LINES + 1), f, strict=False)
                    ]
            except OSError as exc:
                lines = [f"(cannot read {name}: {exc.strerror})"]
            logs[name.removesuffix(".txt")] = lines
    return logs


def policy_words(p: Policy) -> str:
    fires = ""
    if p.consecutive:
        fires = f"{p.consecutive} consecutive failed run{'s' if p.consecutive > 1 else ''}"
    if p.failures:
        window = f"{p.failures} failed of the last {p.window}"
        fires = f"{fires} or {window}" if fires else window
    extra = []
    if p.retries:
        extra.append(f"{p.retries} retr{'y' if p.retries == 1 else 'ies'} before a run counts")
    if p.rechecks:
        extra.append(f"{p.rechecks} re-check{'s' if p.rechecks > 1 else ''} after a failure")
    text = f"fires after {fires}; resolves after {p.resolve_passes} passes in a row"
    if extra:
        text += "; " + ", ".join(extra)
    if not p.notify:
        text += "; records only, notifies nobody"
    return text


def _facts(d: DaemonState, row: Row, public: bool) -> str:
    j, t = row.journey, row.target
    facts: list[tuple[str, str]] = []
    if j.description:
        facts.append(("Description", esc(j.description)))
    if j.runbook_url and not public:
        # Only web links become links (never javascript: or data: from a journey file).
        link = j.runbook_url.lower().startswith(("https://", "http://"))
        facts.append(
            (
                "Runbook",
                f'<a href="{esc(j.runbook_url)}" rel="noopener">{esc(j.runbook_url)}</a>'
                if link
                else esc(j.runbook_url),
            )
        )
    facts += [
        ("Severity", esc(j.severity.value)),
        ("Kind", esc(j.kind.value)),
        ("Schedule", f"{esc(j.schedule)}, timeout {duration(j.timeout)}"),
    ]
    if j.degraded_after:
        facts.append(("Latency budget", duration(j.degraded_after)))
    if not public:
        facts.append(("Alert policy", esc(policy_words(d.alerting.policy_for(j)))))
        facts.append(("Target", f"{esc(t.name)} · <code>{esc(t.base_url)}</code>"))
        facts.append(("File", f"<code>{esc(j.where)}</code>"))
    else:
        facts.append(("Target", esc(t.name)))
    if d.settings.location:
        facts.append(("Location", esc(d.settings.location)))
    if j.tags:
        facts.append(("Tags", esc(", ".join(j.tags))))
    next_run = d.scheduler.next_run(f"{j.name}@{t.name}")
    if next_run is not None and row.state != "paused":
        facts.append(("Next run", stamp(next_run)))
    if row.silenced_by:
        facts.append(("Silenced", esc(row.silenced_by)))
    return '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"


def _incident(row: Row, h: History, public: bool, now: float) -> str:
    """The current incident as a timeline: first failed attempt → alert → now."""
    if row.since is None:
        return ""
    events: list[tuple[float, str]] = [(row.since, "<strong>First failed attempt</strong>")]
    for r in h.attempts:
        at = r["started_at"] + r["duration_seconds"]
        retried = " (retried)" if r["retried"] else ""
        what = f"attempt {r['attempt']}{retried}: {result_badge(r['status'])}"
        if r["failed_step"] and not public:
            what += f' at step <span class="step">{esc(r["failed_step"])}</span>'
        if r["error"] and not public:
            what += f' — <span class="error">{esc(first_line(r["error"]))}</span>'
        events.append((at, what))
    if row.fired_at is not None:
        events.append((row.fired_at, "<strong>Alert fired</strong>"))
    events.sort(key=lambda e: e[0])
    events.append(
        (now, f"<strong>Now</strong>: {badge(row.state)} for {duration(now - row.since)}")
    )
    items = "".join(f"<li>{stamp(at)} {what}</li>" for at, what in events)
    return (
        '<section aria-labelledby="incident-h"><h2 id="incident-h">Current incident</h2>'
        f'<ol class="timeline">{items}</ol></section>'
    )


def _evidence(d: DaemonState, row: Row, h: History) -> str:
    """The newest failed run in full: screenshot, console and network errors, trace."""
    failed = last_failed(h.runs)
    if failed is None:
        return ""
    parts = [
        '<section aria-labelledby="evidence-h"><h2 id="evidence-h">Last failed run</h2>',
        f"<p>{stamp(failed['started_at'])} {result_badge(failed['status'])}",
    ]
    if failed["failed_step"]:
        parts.append(f' at step <span class="step">{esc(failed["failed_step"])}</span>')
    parts.append(
        f' · <a href="/api/runs/{esc(failed["run_id"])}">run {esc(failed["run_id"])}</a></p>'
    )
    if failed["error"]:
        parts.append(f'<pre class="error">{esc(failed["error"])}</pre>')
    links = " · ".join(
        x
        for x in (
            artifact_links(failed["artifacts"]),
            trace_link(d.settings.tracing.ui_url, failed["trace_id"]),
        )
        if x
    )
    if links:
        parts.append(f"<p>Artifacts: {links}</p>")
    parts.append(
        screenshot(
            failed["artifacts"], f"screenshot when step {failed['failed_step']} failed", "shot"
        )
    )
    for name, lines in h.logs.items():
        more = " (first lines)" if len(lines) > LOG_LINES else ""
        text = "\n".join(lines[:LOG_LINES]) or "(empty)"
        parts.append(
            f'<h3>{esc(name.capitalize())} errors{more}</h3><pre class="log">{esc(text)}</pre>'
        )
    if any(a.endswith("trace.zip") for a in failed["artifacts"]):
        parts.append(
            '<p class="hint">The Playwright trace replays the run step by step (DOM, network, '
            "console): download it, then run <code>npx playwright show-trace trace.zip</code> "
            "(or <code>playwright show-trace trace.zip</code> from the Python package). "
            "Passwords the journey typed are masked in it.</p>"
        )
    parts.append("</section>")
    return "".join(parts)


def _stats(row: Row) -> str:
    if not row.stats:
        return '<p class="muted">No statistics yet (history off, or the first refresh is due).</p>'
    body = "".join(
        f'<tr><th scope="row" data-label="Window">{esc(w)}</th>'
        f'<td data-label="Runs passed">{percent(s.availability)}</td>'
        f'<td data-label="Time up">{percent(s.time_availability)}</td>'
        f'<td data-label="Incidents">{s.incidents}</td>'
        f'<td data-label="MTTR">{duration(s.mttr_seconds)}</td>'
        f'<td data-label="MTBF">{duration(s.mtbf_seconds)}</td>'
        f'<td data-label="MTTD">{duration(s.mttd_seconds)}</td></tr>'
        for w, s in row.stats.items()
    )
    return (
        '<table class="stats"><caption>Reliability</caption><thead><tr><th scope="col">Window</th>'
        '<th scope="col">Runs passed</th><th scope="col">Time up</th>'
        '<th scope="col">Incidents</th><th scope="col">MTTR</th><th scope="col">MTBF</th>'
        f'<th scope="col">MTTD</th></tr></thead><tbody>{body}</tbody></table>'
    )


def _incidents(h: History, public: bool, now: float) -> str:
    if not h.incidents:
        return "<p>No incidents in the last 30 days.</p>"
    rows = []
    for i in h.incidents:
        end = i.ended_at
        cause = ""
        if not public:
            cause = (
                f'<td data-label="Step">{esc(i.failed_step or "—")}</td>'
                f'<td data-label="Error" class="error">{esc(first_line(i.first_error, 120))}</td>'
            )
        rows.append(
            f'<tr><td data-label="Alert">{esc(i.alertname)}</td>'
            f'<td data-label="Started">{stamp(i.started_at)}</td>'
            f'<td data-label="Ended">{stamp(end) if end else "ongoing"}</td>'
            f'<td data-label="Duration">{duration((end or now) - i.started_at)}</td>{cause}</tr>'
        )
    head = '<th scope="col">Step</th><th scope="col">Error</th>' if not public else ""
    return (
        '<table class="incidents"><caption>Incidents, last 30 days</caption><thead><tr>'
        '<th scope="col">Alert</th><th scope="col">Started</th><th scope="col">Ended</th>'
        f'<th scope="col">Duration</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _current(yes: bool) -> str:
    return ' aria-current="page"' if yes else ""


def render(
    d: DaemonState, row: Row, h: History, targets: list[str], now: float | None = None
) -> str:
    now = time.time() if now is None else now
    cfg = d.settings.status_page
    public = cfg.public
    j, t = row.journey, row.target
    switch = ""
    if len(targets) > 1:
        links = " · ".join(
            f'<a href="?target={esc(name)}"{_current(name == t.name)}>{esc(name)}</a>'
            for name in targets
        )
        switch = f'<nav class="targets" aria-label="Targets">Targets: {links}</nav>'
    last_at = row.last.started_at + row.last.duration if row.last else None
    parts = [
        f'<h1>{esc(j.name)} <span class="on">on {esc(t.name)}</span> {badge(row.state)}</h1>',
        switch,
        f'<p class="summary">Last run {ago(last_at, now)}.</p>',
        _facts(d, row, public),
    ]
    if h.problem:
        parts.append(f'<p class="warn">History unavailable: {esc(h.problem)}</p>')
    parts.append(_incident(row, h, public, now))
    if not public:
        parts.append(_evidence(d, row, h))
    parts.append(
        '<section aria-labelledby="rel-h"><h2 id="rel-h">Reliability</h2>'
        f"{_stats(row)}<h3>90 days (UTC)</h3>{uptime_bar(row.days)}</section>"
    )
    parts.append(extras.journey_sections(row, now))
    parts.append(
        '<section aria-labelledby="runs-h"><h2 id="runs-h">Last runs</h2>'
        f"{runs_table(h.runs, public, d.settings.tracing.ui_url)}"
        f"{'' if public else waterfall(h.runs[:10])}</section>"
    )
    parts.append(
        '<section aria-labelledby="inc-h"><h2 id="inc-h">Incidents</h2>'
        f"{_incidents(h, public, now)}</section>"
    )
    return frame(
        f"{j.name} on {t.name}",
        "".join(parts),
        site=cfg.title,
        refresh=cfg.refresh,
        status_line=f"updated {stamp(now)}",
    )
