"""The journey page's run table and step waterfall (runs as the history API gives them)."""

from __future__ import annotations

from typing import Any

from synthmon.web.pages.html import duration, esc, first_line, icon, stamp
from synthmon.web.pages.overview import trace_link

RESULT_WORDS = {"success": "passed", "failure": "failed", "timeout": "timed out", "error": "error"}
STEP_WORDS = {"success": "passed", "failure": "failed", "timeout": "timed out", "error": "error"}


def result_badge(status: str) -> str:
    state = "passing" if status == "success" else "failing"
    word = RESULT_WORDS.get(status, status)
    return (
        f'<span class="state s-{state}">{icon(state)}<span class="word">{esc(word)}</span></span>'
    )


def runs_table(runs: list[dict[str, Any]], public: bool, trace_ui: str | None) -> str:
    if not runs:
        return "<p>No runs recorded yet.</p>"
    rows = []
    for r in runs:
        cells = [
            f'<td data-label="Started">{stamp(r["started_at"])}</td>',
            f'<td data-label="Result">{result_badge(r["status"])}'
            f"{' (retried)' if r['retried'] else ''}</td>",
            f'<td data-label="Duration">{duration(r["duration_seconds"])}</td>',
        ]
        if not public:
            cells += [
                f'<td data-label="Failed step" class="step">{esc(r["failed_step"] or "")}</td>',
                f'<td data-label="Error" class="error">{esc(first_line(r["error"], 160))}</td>',
                f'<td data-label="Run"><a href="/api/runs/{esc(r["run_id"])}">details</a>'
                f"{' · ' + trace_link(trace_ui, r['trace_id']) if trace_ui else ''}</td>",
            ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    head = ["Started", "Result", "Duration"] + ([] if public else ["Failed step", "Error", "Run"])
    return (
        '<table class="runs"><caption>Last runs, newest first</caption><thead><tr>'
        + "".join(f'<th scope="col">{h}</th>' for h in head)
        + f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def waterfall(runs: list[dict[str, Any]]) -> str:
    """Per-step durations of each run on one time scale; the failed step is marked in
    words as well as colour."""
    with_steps = [r for r in runs if r["steps"]]
    if not with_steps:
        return ""
    scale = (
        max(
            max(r["duration_seconds"], sum(s["duration_seconds"] for s in r["steps"]))
            for r in with_steps
        )
        or 1.0
    )
    rows = []
    for r in with_steps:
        offset = 0.0
        segs = []
        for s in r["steps"]:
            d = s["duration_seconds"]
            ok = s["status"] == "success"
            word = STEP_WORDS.get(s["status"], s["status"])
            label = f"{s['name']}: {duration(d)}, {word}"
            mark = "" if ok else " — failed"
            segs.append(
                f'<span class="seg {"ok" if ok else "bad"}" '
                f'style="left:{offset / scale * 100:.2f}%;width:{max(d / scale * 100, 0.5):.2f}%" '
                f'title="{esc(label)}">'
                f"{esc(s['name'])}{mark}</span>"
            )
            offset += d
        spoken = "; ".join(
            f"{s['name']} {duration(s['duration_seconds'])} {STEP_WORDS.get(s['status'], '')}"
            for s in r["steps"]
        )
        rows.append(
            f'<tr><th scope="row">{stamp(r["started_at"])} {result_badge(r["status"])}</th>'
            f'<td><div class="wf" role="img" aria-label="{esc(spoken)}">'
            f"{''.join(segs)}</div></td></tr>"
        )
    return (
        f'<table class="waterfall"><caption>Step waterfall (scale: {duration(scale)})</caption>'
        '<thead><tr><th scope="col">Run</th><th scope="col">Steps</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
