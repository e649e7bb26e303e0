"""The alert policy state machine, fed sequences of final run outcomes."""

from __future__ import annotations

import pytest

from synthmon.alerting.policy import (
    DEFAULTS,
    AlertState,
    Outcome,
    PairState,
    Policy,
    Transition,
    advance,
    apply_override,
    auto_retry_delay,
)
from synthmon.config.alerting import parse_override
from synthmon.model import Severity

F, P, S = Outcome.FAIL, Outcome.PASS, Outcome.SKIP


def feed(policy: Policy, outcomes: str) -> tuple[PairState, list[Transition | None]]:
    state = PairState()
    transitions = []
    for i, ch in enumerate(outcomes):
        state, tr = advance(state, {"F": F, "P": P, "S": S}[ch], float(i), policy)
        transitions.append(tr)
    return state, transitions


def fired(transitions: list[Transition | None]) -> int:
    return transitions.count(Transition.FIRING)


class TestCriticalDefaults:
    policy = DEFAULTS[Severity.CRITICAL]

    def test_one_failure_only_pends(self) -> None:
        """A single failed run of a critical journey pages nobody."""
        state, trs = feed(self.policy, "PF")
        assert state.state is AlertState.PENDING
        assert fired(trs) == 0

    def test_two_consecutive_failures_fire(self) -> None:
        """Two failed runs in a row fire the alert on the second."""
        state, trs = feed(self.policy, "PFF")
        assert trs == [None, None, Transition.FIRING]
        assert state.state is AlertState.FIRING
        assert state.first_failure_at == 1.0
        assert state.failed_runs == 2

    def test_failure_pass_failure_does_not_fire(self) -> None:
        """Alternating results never reach two consecutive failures."""
        _, trs = feed(self.policy, "FPFPFP")
        assert fired(trs) == 0

    def test_stays_firing_while_failing_and_fires_once(self) -> None:
        """An ongoing outage fires exactly once and keeps counting failed runs."""
        state, trs = feed(self.policy, "FFFFFFFF")
        assert fired(trs) == 1
        assert state.failed_runs == 8

    def test_resolves_after_two_passes(self) -> None:
        """A firing alert resolves only after two passes in a row."""
        state, trs = feed(self.policy, "FFPFPP")
        assert trs[-1] is Transition.RESOLVED
        assert trs.count(Transition.RESOLVED) == 1
        assert state.state is AlertState.OK
        assert state.last_success_at == 5.0

    def test_one_pass_does_not_resolve(self) -> None:
        """A single pass during an outage keeps the alert firing."""
        state, trs = feed(self.policy, "FFP")
        assert state.state is AlertState.FIRING
        assert Transition.RESOLVED not in trs

    def test_new_outage_is_a_new_incident(self) -> None:
        """A second outage after recovery fires again with a new incident number."""
        state, trs = feed(self.policy, "FFPPFF")
        assert fired(trs) == 2
        assert state.incident == 2

    def test_infrastructure_errors_are_skipped(self) -> None:
        """Skipped outcomes (infrastructure errors) neither count nor break a streak."""
        state, trs = feed(self.policy, "FSSF")
        assert trs[-1] is Transition.FIRING
        assert state.failed_runs == 2

    def test_retry_is_on(self) -> None:
        """Critical journeys retry a failed attempt once before counting it, and
        re-check a failed run once instead of waiting a whole interval; the delay is
        left to the interval (unset)."""
        assert (self.policy.retries, self.policy.retry_delay, self.policy.rechecks) == (1, None, 1)

    def test_auto_delay_scales_with_the_interval(self) -> None:
        """The default delay is a tenth of the interval, at most 5 s (5 s for cron)."""
        assert [auto_retry_delay(i) for i in (1, 10, 30, 60, 300, None)] == [
            0.1,
            1.0,
            3.0,
            5.0,
            5.0,
            5.0,
        ]


class TestWarningDefaults:
    policy = DEFAULTS[Severity.WARNING]

    def test_three_consecutive_fire(self) -> None:
        """Three failed runs in a row fire a warning."""
        _, trs = feed(self.policy, "FFF")
        assert trs == [None, None, Transition.FIRING]

    def test_flapping_three_of_five_fires(self) -> None:
        """F S F S F flapping (3 of the last 5) fires though no 3 are consecutive."""
        _, trs = feed(self.policy, "FPFPF")
        assert trs[-1] is Transition.FIRING

    def test_two_of_five_does_not_fire(self) -> None:
        """Two failures within five runs stay pending."""
        state, trs = feed(self.policy, "FPPFP")
        assert fired(trs) == 0
        assert state.state is AlertState.PENDING

    def test_window_slides(self) -> None:
        """Failures that slid out of the window no longer count."""
        state, trs = feed(self.policy, "FPFPPPPF")
        assert fired(trs) == 0
        assert state.state is AlertState.PENDING

    def test_pending_clears_when_window_is_clean(self) -> None:
        """Five passes after a failure return the state to ok."""
        state, _ = feed(self.policy, "FPPPPP")
        assert state.state is AlertState.OK
        assert state.first_failure_at is None

    def test_no_retry(self) -> None:
        """Warning journeys do not retry by default."""
        assert self.policy.retries == 0


class TestInfo:
    def test_tracks_state_but_never_notifies(self) -> None:
        """Info journeys reach firing (for metrics) but their policy says no notification."""
        policy = DEFAULTS[Severity.INFO]
        state, _ = feed(policy, "FFFF")
        assert state.state is AlertState.FIRING
        assert policy.notify is False


class TestOverrides:
    def test_override_changes_only_given_keys(self) -> None:
        """An override of one key keeps the rest of the severity defaults."""
        policy = apply_override(
            DEFAULTS[Severity.CRITICAL], parse_override({"consecutive": 4}, "x")
        )
        assert policy.consecutive == 4
        assert policy.resolve_passes == 2
        assert policy.retries == 1

    def test_n_of_m_override(self) -> None:
        """failures/window add an N-of-M trigger to a critical journey."""
        policy = apply_override(
            DEFAULTS[Severity.CRITICAL], parse_override({"failures": 2, "window": 4}, "x")
        )
        _, trs = feed(policy, "FPPF")
        assert trs[-1] is Transition.FIRING

    def test_unknown_key_names_where(self) -> None:
        """A typo in alert= is reported with the journey's location and the valid keys."""
        with pytest.raises(ValueError, match=r"journeys/a\.py:3.*consecutve: unknown key.*"):
            parse_override({"consecutve": 3}, "journeys/a.py:3")

    def test_window_smaller_than_failures_is_refused(self) -> None:
        """failures=3 within window=2 could never be met and is refused."""
        with pytest.raises(ValueError, match="window"):
            parse_override({"failures": 3, "window": 2}, "x")

    def test_never_firing_policy_is_refused(self) -> None:
        """Disabling both triggers is an error rather than a silently dead alert."""
        with pytest.raises(ValueError, match="never fire"):
            apply_override(DEFAULTS[Severity.CRITICAL], parse_override({"consecutive": 0}, "x"))


class TestPersistence:
    def test_state_round_trips_through_json(self) -> None:
        """A persisted state reads back equal, so restarts continue the same incident."""
        state, _ = feed(DEFAULTS[Severity.WARNING], "FPFF")
        assert PairState.from_json(state.to_json()) == state


class TestRetryFitsInterval:
    def test_retry_dropped_when_its_delay_is_not_shorter_than_the_interval(self) -> None:
        """A retry_delay as long as the interval drops retries and re-checks (the next
        run confirms sooner); the default delay keeps them even at a 1 s interval."""
        from synthmon import journey
        from synthmon.alerting.policybook import PolicyBook
        from synthmon.config.alerting import AlertingConfig

        async def f(ctx: object) -> None: ...

        book = PolicyBook(AlertingConfig())
        fast = journey(name="fast", severity="critical", interval="1s")(f)  # type: ignore[arg-type]
        late = journey(  # type: ignore[arg-type]
            name="late", severity="critical", interval="10s", alert={"retry_delay": "10s"}
        )(f)
        assert (book.for_journey(fast).retries, book.for_journey(fast).rechecks) == (1, 1)
        assert book.for_journey(fast).retry_delay == 0.1
        assert (book.for_journey(late).retries, book.for_journey(late).rechecks) == (0, 0)
