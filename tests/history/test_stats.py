"""Availability, MTTR, MTTD, MTBF on hand-made histories with known answers."""

from __future__ import annotations

import pytest

from synthmon.sinks.history.records import IncidentRecord
from synthmon.sinks.history.stats import percentile, window_stats

NOW = 100_000.0
DAY = 86_400.0


def inc(start: float, detected: float, end: float | None, n: int = 1) -> IncidentRecord:
    return IncidentRecord("SyntheticJourneyFailed", "j", "t", n, "critical", start, detected, end)


# A straddles the 24 h window's start (13,600), D is still open.
A = inc(10_000, 10_030, 14_000, 1)
B = inc(20_000, 20_060, 20_600, 2)
C = inc(50_000, 50_020, 51_000, 3)
D = inc(99_000, 99_040, None, 4)


class TestWindowStats:
    def test_day_with_straddling_and_open_incidents(self) -> None:
        """24 h: the straddling incident counts whole for MTTR, only its overlap as
        downtime; the open one counts as an incident and downtime, not for MTTR."""
        s = window_stats(
            "24h",
            now=NOW,
            seconds=DAY,
            counted=100,
            passed=90,
            incidents=[D, B, A, C],
            first_slot_at=0.0,
            missed=[(30_000, 400)],
        )
        assert s.availability == pytest.approx(0.9)
        assert (s.incidents, s.open_incidents) == (4, 1)
        assert s.mttr_seconds == pytest.approx((4000 + 600 + 1000) / 3)
        assert s.mttd_seconds == pytest.approx((60 + 20 + 40) / 3)  # A was detected before
        assert s.mtbf_seconds == pytest.approx((6000 + 29_400 + 48_000) / 3)
        assert s.longest_incident_seconds == 4000
        assert (s.p50_incident_seconds, s.p95_incident_seconds) == (1000, 4000)
        assert s.time_observed_seconds == pytest.approx(DAY - 400)
        assert s.time_up_seconds == pytest.approx(DAY - 400 - (400 + 600 + 1000 + 1000))
        assert s.time_availability == pytest.approx(83_000 / 86_000)

    def test_week_observed_from_the_first_slot(self) -> None:
        """7 d reaching before the first slot: observed time starts at the first slot,
        and every incident (all detected inside) counts for MTTD."""
        s = window_stats(
            "7d",
            now=NOW,
            seconds=7 * DAY,
            counted=0,
            passed=0,
            incidents=[A, B, C, D],
            first_slot_at=5_000.0,
            missed=[(30_000, 400)],
        )
        assert s.availability is None  # no counted runs: unknown, not 0 or 1
        assert s.time_observed_seconds == pytest.approx(95_000 - 400)
        assert s.time_up_seconds == pytest.approx(95_000 - 400 - (4000 + 600 + 1000 + 1000))
        assert s.mttd_seconds == pytest.approx((30 + 60 + 20 + 40) / 4)
        assert s.mtbf_seconds == pytest.approx((6000 + 29_400 + 48_000) / 3)

    def test_only_an_open_incident(self) -> None:
        """One open incident: no repair time yet, no time between failures."""
        s = window_stats(
            "24h",
            now=NOW,
            seconds=DAY,
            counted=3,
            passed=1,
            incidents=[D],
            first_slot_at=NOW - 3_000,
        )
        assert (s.incidents, s.open_incidents) == (1, 1)
        assert s.mttr_seconds is None and s.mtbf_seconds is None
        assert s.longest_incident_seconds == 1000
        assert s.time_availability == pytest.approx(2000 / 3000)

    def test_incident_before_the_window_only_feeds_mtbf(self) -> None:
        """An incident that ended before the window is not in it, but the gap to the
        next one (which starts inside) is a time between failures."""
        s = window_stats(
            "24h",
            now=NOW,
            seconds=DAY,
            counted=10,
            passed=10,
            incidents=[inc(1_000, 1_010, 2_000), C],
            first_slot_at=0.0,
        )
        assert s.incidents == 1
        assert s.mtbf_seconds == pytest.approx(50_000 - 2_000)
        assert s.mttr_seconds == pytest.approx(1000)

    def test_no_history(self) -> None:
        """Nothing recorded: every figure is unknown (null), none is made up."""
        s = window_stats(
            "24h", now=NOW, seconds=DAY, counted=0, passed=0, incidents=[], first_slot_at=None
        )
        assert s.availability is None and s.time_availability is None
        assert s.incidents == 0 and s.mttr_seconds is None and s.longest_incident_seconds is None


class TestPercentile:
    def test_nearest_rank(self) -> None:
        """Percentiles are actual durations (nearest rank), not interpolations."""
        assert percentile([5, 1, 3, 2, 4], 50) == 3
        assert percentile([5, 1, 3, 2, 4], 95) == 5
        assert percentile([], 50) is None
