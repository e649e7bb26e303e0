"""The local receiver of the alerting tests (it stands in for a webhook receiver)."""

from tests.alerting.conftest import receiver

__all__ = ["receiver"]
