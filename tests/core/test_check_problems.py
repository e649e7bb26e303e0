"""`synthmon check` lists every problem of a journey file, each as file:line."""

from __future__ import annotations

from pathlib import Path

from tests.harness import synthmon_check

BROKEN = """
from synthmon import Context, journey


@journey(severity="loud", kind="robot", interval="10s", timeout="1m")
async def first(ctx: Context) -> None:
    pass


@journey(targets=["nowhere"])
async def fine_here(ctx: Context) -> None:
    pass


@journey(interval="every day")
async def second(ctx: Context) -> None:
    pass


@journey(cleanup=print)
def third(ctx: Context) -> None:
    pass
"""


class TestCheckListsEveryProblem:
    def test_every_bad_declaration_of_a_file_is_listed_with_file_and_line(
        self, tmp_path: Path
    ) -> None:
        """Four problems of one journey and two of two others in one file: all six are
        printed as file:line: message, and check exits 1."""
        jdir, out = synthmon_check(tmp_path, {"broken.py": BROKEN})
        assert out.returncode == 1, out
        where = str(jdir / "broken.py")
        lines = [line for line in out.stderr.splitlines() if line.startswith(where)]
        expected = [
            (4, "journey 'first': severity='loud'"),
            (4, "journey 'first': kind='robot'"),
            (4, "journey 'first': timeout (1m) is longer than interval (10s)"),
            (14, "journey 'second': interval='every day'"),
            (19, "journey 'third': must be declared with 'async def'"),
            (19, "journey 'third': cleanup= must be an 'async def' function"),
        ]
        for lineno, text in expected:
            assert any(line.startswith(f"{where}:{lineno}: {text}") for line in lines), (
                text,
                out.stderr,
            )
        assert len(lines) == len(expected), out.stderr
