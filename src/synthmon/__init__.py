"""synthmon: synthetic monitoring with user journeys as code.

This module is the journey author's API (pinned by tests/core/test_exported_members.py);
everything else may change between releases.
"""

from synthmon._version import __version__
from synthmon.errors import StepFailedError, SynthmonError
from synthmon.journeys.context import Context
from synthmon.journeys.dsl import Journey, journey
from synthmon.model import Account, Kind, RunResult, RunSource, Severity, Status, StepResult, Target

__all__ = [
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
