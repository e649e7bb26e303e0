"""The pieces behind the pages alone: the overview the history keeps, escaping."""

from __future__ import annotations

from pathlib import Path

from synthmon.model import RunResult, Status
from synthmon.sinks.history.overview import DAY, DAYS, Overview, day_cells
from synthmon.sinks.history.records import IncidentRecord
from synthmon.sinks.history.store import SqliteHistory
from synthmon.web.pages.html import badge, first_line, sparkline, uptime_bar

NOW = 100 * DAY + 43200.0  # noon UTC on day 100


def _run(i: int, at: float, ok: bool = True, retried: bool = False) -> RunResult:
    status = Status.SUCCESS if ok else Status.FAILURE
    return RunResult("j", "t", f"{i:032x}", f"{i:032x}", status, at, i / 4, retried=retried)


def _incident(start: float, end: float | None) -> IncidentRecord:
    return IncidentRecord("SyntheticJourneyFailed", "j", "t", 1, "critical", start, start, end)


class TestDayCells:
    def test_one_cell_per_utc_day_oldest_first_with_incident_time(self) -> None:
        """90 cells end today; a day's down time is its overlap with the incidents, an
        open incident lasting until now."""
        cells = day_cells(
            [(100, 10, 9), (99, 4, 4)],
            [_incident(99 * DAY + 86000.0, 100 * DAY + 600.0), _incident(NOW - 60, None)],
            now=NOW,
        )
        assert len(cells) == DAYS and cells[-1].day == 100 and cells[0].day == 100 - DAYS + 1
        yesterday, today = cells[-2], cells[-1]
        assert (yesterday.counted, yesterday.passed, yesterday.down_seconds) == (4, 4, 400.0)
        assert (today.counted, today.passed, today.incidents) == (10, 9, 2)
        assert today.down_seconds == 600.0 + 60.0
        assert cells[0].availability is None


class TestOverviewFromTheStore:
    def test_sparkline_seeded_from_the_database_then_follows_writes(self, tmp_path: Path) -> None:
        """The first refresh reads the pair's recent counted runs (retried attempts are
        left out); later writes are appended without another query."""
        store = SqliteHistory(tmp_path / "h.sqlite3")
        first = [_run(1, NOW - 300), _run(2, NOW - 200, retried=True), _run(3, NOW - 100, ok=False)]
        store.write(first, [], [])
        overview = Overview()
        overview.refresh(store, "j", "t", [], NOW)
        assert overview.recent_runs("j", "t", NOW - 3600) == [
            (NOW - 300, 0.25, True),
            (NOW - 100, 0.75, False),
        ]
        overview.observe([_run(4, NOW - 10)])
        assert len(overview.recent_runs("j", "t", NOW - 3600)) == 3
        assert overview.days("j", "t")[-1].counted == 2
        store.close()


class TestEscaping:
    def test_text_from_targets_and_journeys_is_escaped(self) -> None:
        """Errors, step names and states reach the page as text, never as markup."""
        assert "<script>" not in badge("<script>")
        evil = '<img src=x onerror="alert(1)">'
        assert first_line(evil + "\nmore") == evil  # escaping is the renderer's job
        from synthmon.web.pages.html import esc

        assert esc(evil) == "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"

    def test_sparkline_and_uptime_bar_describe_themselves_in_words(self) -> None:
        """Both carry a text summary (aria-label/title), not only shapes and colours."""
        spark = sparkline([(NOW - 60, 0.1, True), (NOW, 0.3, False)])
        assert "2 runs" in spark and "1 failed" in spark
        bar = uptime_bar(day_cells([(100, 10, 9)], [], now=NOW))
        assert "90.00 % of 10 runs passed" in bar and "no runs recorded" in bar
