"""The journey-author API is `synthmon.__all__`, and nothing slips in or out unnoticed
(like httpx's tests/test_exported_members.py)."""

from __future__ import annotations

import asyncio
import inspect

import synthmon
from synthmon import Account, Context, Status, Target
from synthmon.journeys.context import RunRecord

JOURNEY_AUTHOR_API = [
    "Account",
    "Context",
    "Journey",
    "Kind",
    "RunResult",
    "RunSource",
    "Severity",
    "Status",
    "StepFailedError",
    "StepResult",
    "SynthmonError",
    "Target",
    "__version__",
    "journey",
]


class TestExportedMembers:
    def test_all_is_the_journey_author_api(self) -> None:
        """`synthmon.__all__` lists exactly the journey-author API, each importable."""
        assert synthmon.__all__ == JOURNEY_AUTHOR_API
        for name in synthmon.__all__:
            assert hasattr(synthmon, name), name

    def test_exported_classes_live_in_synthmon(self) -> None:
        """Every exported name comes from synthmon's own modules (no library leaks)."""
        for name in synthmon.__all__:
            member = getattr(synthmon, name)
            module = getattr(member, "__module__", "synthmon")
            assert module.startswith("synthmon"), (name, module)


class TestContextSurface:
    def test_context_shows_only_what_journeys_use(self) -> None:
        """Runner bookkeeping (classify/describe, steps, deferred, failed_step, ...) is
        not part of the public Context."""
        public = {n for n, _ in inspect.getmembers(Context) if not n.startswith("_")}
        assert public == {
            "account",
            "aclose",
            "base_url",
            "current_step",
            "defer",
            "fail",
            "http",
            "log",
            "page",
            "shadow",
            "step",
        }

    def test_run_bookkeeping_lives_in_the_runners_record(self) -> None:
        """A Context instance carries no steps, cleanups or failure bookkeeping."""
        record = RunRecord(classify=lambda e: (Status.ERROR, None), describe=lambda e: ("", ""))
        ctx = Context(
            journey="j",
            target=Target(name="t", base_url="http://127.0.0.1:9", allowed_hosts=frozenset()),
            run_id="r",
            trace_id="r",
            run=record,
        )
        for name in ("steps", "deferred", "failed_step", "cancelled_in", "soft_failures"):
            assert not hasattr(ctx, name), name
        ctx.defer(lambda: asyncio.sleep(0))
        assert len(record.deferred) == 1

    def test_account_is_typed(self) -> None:
        """`ctx.account` is annotated as the exported `Account`."""
        hints = inspect.get_annotations(Context.account.fget, eval_str=True)  # type: ignore[union-attr]
        assert hints["return"] is Account
