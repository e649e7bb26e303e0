"""A journey's own `max_response_size` wins over its target's, through the daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthmon import journey
from synthmon.errors import JourneyDefinitionError
from synthmon.model import Status
from tests.faults.conftest import Faults
from tests.harness import make_settings, run_daemon

JOURNEYS = {
    "bodies.py": """
    from synthmon import journey

    @journey(interval="1m", timeout="5s", max_response_size="1MB")
    async def small_cap(ctx):
        async with ctx.step("download"):
            await ctx.http.get("/huge-chunked?mb=2")

    @journey(interval="1m", timeout="5s", max_response_size="5MB")
    async def large_cap(ctx):
        async with ctx.step("download"):
            r = await ctx.http.get("/huge-chunked?mb=2")
            assert len(r.content) == 2 * 1024 * 1024
    """
}


class TestJourneyBodyCap:
    async def test_journey_cap_overrides_the_targets_in_both_directions(
        self, tmp_path: Path, faults: Faults
    ) -> None:
        """Under a 3 MB target cap, a journey capped at 1 MB fails on a 2 MiB body
        naming its own cap, and one allowed 5 MB reads it whole."""
        settings = make_settings(
            tmp_path,
            targets={"faults": faults.url},
            journeys=JOURNEYS,
            # The harness writes [targets.faults] last: this key continues that table.
            extra_toml='max_response_size = "3MB"\n',
        )
        async with run_daemon(settings) as (daemon, _):
            small = await daemon.run_pair(*daemon.pairs["small_cap@faults"])
            large = await daemon.run_pair(*daemon.pairs["large_cap@faults"])
        assert small.status is Status.FAILURE
        assert "max_response_size of journey 'small_cap'" in (small.error_message or "")
        assert large.status is Status.SUCCESS, large.error_message

    def test_bad_size_is_a_definition_error_naming_the_option(self) -> None:
        """A size that is not one is refused at definition time, naming the option."""
        with pytest.raises(JourneyDefinitionError, match="max_response_size='lots'"):

            @journey(max_response_size="lots")
            async def greedy(ctx: object) -> None: ...
