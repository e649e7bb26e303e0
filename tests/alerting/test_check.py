"""`synthmon check` reports bad alert policies before the daemon ever runs."""

from __future__ import annotations

import io
from pathlib import Path

from synthmon.cli.check import check
from tests.harness import make_settings

BAD = """
from synthmon import Context, journey

@journey(severity="critical", alert={"consecutve": 3})
async def typo(ctx: Context) -> None:
    pass
"""
GOOD = """
from synthmon import Context, journey

@journey(severity="warning", alert={"failures": 2, "window": 4})
async def fine(ctx: Context) -> None:
    pass
"""


class TestCheckAlertPolicies:
    def test_typo_in_alert_is_a_problem_naming_file_and_journey(self, tmp_path: Path) -> None:
        """A misspelt alert= key fails `synthmon check` with file:line, journey and key."""
        settings = make_settings(
            tmp_path, targets={"demo": "http://127.0.0.1:1"}, journeys={"a.py": BAD, "b.py": GOOD}
        )
        out, err = io.StringIO(), io.StringIO()
        assert check(settings, None, out=out, err=err) == 1
        [line] = err.getvalue().splitlines()
        assert "a.py:3: journey 'typo': alert=" in line
        assert "consecutve: unknown key" in line
        assert "1 problems" in out.getvalue()

    def test_valid_alert_overrides_pass(self, tmp_path: Path) -> None:
        """Valid overrides raise no problem."""
        settings = make_settings(
            tmp_path, targets={"demo": "http://127.0.0.1:1"}, journeys={"b.py": GOOD}
        )
        assert check(settings, None, out=io.StringIO(), err=io.StringIO()) == 0
