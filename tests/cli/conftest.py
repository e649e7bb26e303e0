"""Fixtures shared with the alerting tests: a local webhook receiver."""

from tests.alerting.conftest import receiver

__all__ = ["receiver"]
