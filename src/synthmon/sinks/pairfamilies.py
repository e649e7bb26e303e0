"""The metric families a `PairStore` is exposed as, in exposition order: one table
that both renderers read, `PairCollector.collect()` (sinks/pairstate.py) and the text
writer of the status server (sinks/pairtext.py), so they cannot drift apart in names,
types or HELP text. docs/metrics.md says what each is for."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family the pair state is exposed as: its name, type and HELP."""

    name: str
    type: str  # gauge | counter | histogram
    help: str


PAIR_FAMILIES: tuple[Family, ...] = (
    Family("synthmon_journey_success", "gauge", "1 if the last run passed, else 0."),
    Family("synthmon_journey_duration_seconds", "histogram", "Duration of journey runs."),
    Family(
        "synthmon_journey_runs",
        "counter",
        "Journey runs by result (success|failure|timeout|error).",
    ),
    Family(
        "synthmon_journey_infrastructure_errors",
        "counter",
        "Runs that ended in error for a reason of synthmon's own (browser_crash, ...).",
    ),
    Family(
        "synthmon_journey_step_duration_seconds",
        "histogram",
        "Duration of journey steps ([metrics] step_histograms = true).",
    ),
    Family(
        "synthmon_journey_step_success",
        "gauge",
        "1 if the step passed in the last run that reached it.",
    ),
    Family(
        "synthmon_journey_last_run_timestamp_seconds",
        "gauge",
        "When the last run finished (epoch).",
    ),
    Family(
        "synthmon_journey_last_success_timestamp_seconds",
        "gauge",
        "When the last passing run finished (epoch).",
    ),
    Family(
        "synthmon_journey_consecutive_failures",
        "gauge",
        "Failed runs (failure/timeout/journey error) since the last pass.",
    ),
    Family(
        "synthmon_journey_retries",
        "counter",
        "Failed attempts that were retried before the run counted (retry-before-counting).",
    ),
    Family(
        "synthmon_journey_skipped_runs",
        "counter",
        "Scheduled runs that did not run, by reason (overlap|missed|coalesced|concurrency|paused).",
    ),
    Family(
        "synthmon_journey_paused",
        "gauge",
        "1 while the pair is paused by the kill switch (synthmon pause), else 0.",
    ),
    Family(
        "synthmon_journey_cleanup_failures",
        "counter",
        "Cleanups (ctx.defer / cleanup=) that raised or ran out of time.",
    ),
    Family(
        "synthmon_journey_left_behind",
        "counter",
        "Tasks a run spawned and never awaited, httpx clients it never closed: "
        "cancelled/closed by synthmon when the run ended (kind: task, http_client).",
    ),
    Family(
        "synthmon_alert_state",
        "gauge",
        "Alert state per journey and target: 0 ok, 1 pending, 2 firing.",
    ),
    Family(
        "synthmon_journey_degraded",
        "gauge",
        "1 if the last passing run took longer than the journey's degraded_after budget.",
    ),
    Family(
        "synthmon_browser_navigation_seconds",
        "histogram",
        "Navigation Timing of browser steps that loaded a page, seconds since the "
        "navigation started, by phase (ttfb|dom_content_loaded|load) "
        "([metrics] step_histograms = true).",
    ),
    Family(
        "synthmon_browser_web_vital",
        "gauge",
        "Web Vitals of the last page a browser step loaded: TTFB, FCP, LCP, INP in "
        "seconds, CLS a score, transfer_bytes, requests (docs/metrics.md).",
    ),
)
JOURNEY_FAMILIES: tuple[Family, ...] = (
    Family("synthmon_journey_info", "gauge", "Journey metadata, always 1: join on journey."),
    Family(
        "synthmon_journey_interval_seconds",
        "gauge",
        "How often the journey runs (0 for cron schedules): for staleness alerts.",
    ),
    Family("synthmon_journeys_loaded", "gauge", "Journeys loaded from the journeys folder."),
)
