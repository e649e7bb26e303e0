"""synthmon: synthetic monitoring with user journeys as code.

This module is the journey author's API; everything else may change between
releases.
"""

from synthmon._version import __version__
from synthmon.errors import StepFailedError, SynthmonError
from synthmon.journeys.context import Context
from synthmon.journeys.dsl import Journey, journey
from synthmon.model import Kind, RunResult, RunSource, Severity, Status, StepResult, Target

__all__ = [
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
