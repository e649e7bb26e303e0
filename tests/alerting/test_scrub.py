"""Secrets never leave in an alert's error message."""

from __future__ import annotations

import pytest

from synthmon.alerting.scrub import scrub


class TestScrub:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("login failed password=hunter2 for x", "login failed password=*** for x"),
            ('{"token": "abc.def"}', '{"token": "***"}'),
            ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.x", "Authorization: ***"),
            ("GET https://bob:s3cret@shop.example/x", "GET https://***@shop.example/x"),
            ("api_key=XYZ&q=mug", "api_key=***&q=mug"),
        ],
    )
    def test_secret_values_are_masked(self, text: str, expected: str) -> None:
        """Values of secret-looking keys, bearer tokens and URL passwords become ***."""
        assert scrub(text) == expected

    def test_ordinary_errors_are_untouched(self) -> None:
        """An error without secrets reads exactly as the runner wrote it."""
        text = "assertion failed at f.py:7: home page answered 500"
        assert scrub(text) == text
