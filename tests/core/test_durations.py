"""Duration strings as Prometheus spells them."""

from __future__ import annotations

import pytest

from synthmon.config.durations import format_duration, parse_duration


class TestDurations:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [("500ms", 0.5), ("30s", 30), ("2m", 120), ("1h30m", 5400), ("1d", 86400), (15, 15)],
    )
    def test_parse(self, text: str | int, seconds: float) -> None:
        """Units ms, s, m, h, d combine; bare numbers are seconds."""
        assert parse_duration(text) == seconds

    @pytest.mark.parametrize("text", ["", "10", "5 minutes", "1m-2s", "0s", "-1", True])
    def test_rejects(self, text: object) -> None:
        """Anything else is refused with a message showing valid spellings."""
        with pytest.raises(ValueError, match="duration"):
            parse_duration(text)  # type: ignore[arg-type]

    def test_format_round_trips(self) -> None:
        """Formatting picks the shortest spelling."""
        assert [format_duration(s) for s in (0.25, 30, 90, 3600, 5400.5)] == [
            "250ms",
            "30s",
            "1m30s",
            "1h",
            "1h30m0.5s",
        ]
