"""Deterministic phases and the slot ledger that turns holes into missed slots."""

from __future__ import annotations

from synthmon.scheduling.slots import Grid, SlotLedger, cron_fire_after, phase


class TestPhase:
    def test_same_name_same_phase(self) -> None:
        """A pair's phase depends only on its name and interval: restarts keep it."""
        assert phase("checkout@prod", 60) == phase("checkout@prod", 60)
        assert 0 <= phase("checkout@prod", 60) < 60

    def test_pairs_spread_over_the_interval(self) -> None:
        """500 pairs land on many different offsets, each on the 100 ms grid."""
        offsets = [phase(f"j{i}@t", 10) for i in range(500)]
        assert len({int(o) for o in offsets}) == 10
        assert all(abs(o * 10 - round(o * 10)) < 1e-6 for o in offsets)


class TestLedger:
    def _ledger(self) -> SlotLedger:
        ledger = SlotLedger(cron_fire_after)
        ledger.track("a@t", interval=10, cron=None)
        return ledger

    def test_consecutive_slots_leave_no_gap(self) -> None:
        """Slot after slot: nothing missed."""
        ledger = self._ledger()
        grid = Grid(10, phase("a@t", 10))
        assert ledger.claim("a@t", grid.at(100)) is None
        assert ledger.claim("a@t", grid.at(101) + 0.004) is None  # float noise of due times

    def test_a_gap_is_counted_exactly(self) -> None:
        """Slots between the last served one and this one come back as one gap."""
        ledger = self._ledger()
        grid = Grid(10, phase("a@t", 10))
        ledger.resume("a@t", grid.at(100))  # the last one recorded before a restart
        gap = ledger.claim("a@t", grid.at(107))
        assert gap is not None
        assert (gap.count, gap.first, gap.last, gap.span) == (6, grid.at(101), grid.at(106), 60)

    def test_an_overlap_claimed_first_is_not_missed(self) -> None:
        """A slot skipped as overlap is served; its run finishing later adds nothing."""
        ledger = self._ledger()
        grid = Grid(10, phase("a@t", 10))
        ledger.claim("a@t", grid.at(1))
        assert ledger.claim("a@t", grid.at(2)) is None
        assert ledger.claim("a@t", grid.at(2)) is None

    def test_cron_gaps_are_the_fires_in_between(self) -> None:
        """A cron pair's missed slots are its fire times between two served slots."""
        ledger = SlotLedger(cron_fire_after)
        ledger.track("c@t", interval=None, cron="*/5 * * * *")
        base = 1_800_000_000.0 - (1_800_000_000 % 300)
        ledger.claim("c@t", base)
        gap = ledger.claim("c@t", base + 4 * 300)
        assert gap is not None and (gap.count, gap.first, gap.last) == (3, base + 300, base + 900)
