"""The @journey decorator: options, defaults and errors that name file and line."""

from __future__ import annotations

import dataclasses

import pytest

from synthmon import Context, Journey, Kind, Severity, journey
from synthmon.errors import JourneyDefinitionError


class TestJourneyDecorator:
    def test_defaults(self) -> None:
        """A bare @journey runs every minute with a 30 s timeout at warning severity."""

        @journey
        async def plain(ctx: Context) -> None:
            """Checks the thing.

            More detail."""

        assert isinstance(plain, Journey)
        assert (plain.name, plain.kind, plain.severity) == ("plain", Kind.HTTP, Severity.WARNING)
        assert (plain.interval, plain.timeout) == (60.0, 30.0)
        assert plain.targets is None
        assert plain.description == "Checks the thing."

    def test_all_options(self) -> None:
        """Every documented option is parsed and kept."""

        @journey(
            name="buy",
            kind="browser",
            severity="critical",
            interval="2m",
            timeout="45s",
            tags=["shop"],
            targets=["production"],
            description="d",
            runbook_url="https://rb",
            degraded_after="2s",
        )
        async def f(ctx: Context) -> None: ...

        assert (f.name, f.kind, f.severity, f.interval, f.timeout) == (
            "buy",
            Kind.BROWSER,
            Severity.CRITICAL,
            120.0,
            45.0,
        )
        assert (f.tags, f.targets, f.runbook_url, f.degraded_after) == (
            ("shop",),
            ("production",),
            "https://rb",
            2.0,
        )

    def test_timeout_defaults_to_interval_when_shorter(self) -> None:
        """A 10 s journey gets a 10 s timeout so runs cannot overlap."""

        @journey(interval="10s")
        async def f(ctx: Context) -> None: ...

        assert f.timeout == 10.0

    def test_cron(self) -> None:
        """cron= replaces the interval."""

        @journey(cron="*/5 * * * *")
        async def f(ctx: Context) -> None: ...

        assert (f.interval, f.cron, f.schedule) == (None, "*/5 * * * *", "cron */5 * * * *")

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"severity": "page"}, "severity='page'"),
            ({"kind": "grpc"}, "kind='grpc'"),
            ({"interval": "soon"}, "invalid duration 'soon'"),
            ({"interval": "10s", "timeout": "1m"}, "longer than interval"),
            ({"interval": "1m", "cron": "* * * * *"}, "either interval= or cron="),
            ({"cron": "61 * * * *"}, "cron='61 * * * *'"),
            ({"tags": "shop"}, "list of strings"),
            ({"name": "has space"}, "name may only use"),
        ],
    )
    def test_bad_options_name_journey_file_and_line(
        self, options: dict[str, str], message: str
    ) -> None:
        """A bad option raises an error naming the journey, the file and the line."""
        with pytest.raises(JourneyDefinitionError) as err:

            @journey(**options)  # type: ignore[arg-type]
            async def broken(ctx: Context) -> None: ...

        assert message in str(err.value)
        assert err.value.filename == __file__
        assert err.value.lineno and err.value.lineno > 0

    def test_sync_function_rejected(self) -> None:
        """Journeys must be async: a plain def is refused with a hint."""
        with pytest.raises(JourneyDefinitionError, match="async def"):

            @journey  # type: ignore[arg-type]
            def sync(ctx: Context) -> None: ...

    def test_definition_holds_no_run_state(self) -> None:
        """A Journey is frozen: runs cannot store results on it."""

        @journey
        async def f(ctx: Context) -> None: ...

        with pytest.raises(dataclasses.FrozenInstanceError):
            f.description = "last run failed"  # type: ignore[misc]
