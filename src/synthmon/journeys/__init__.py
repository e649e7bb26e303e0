"""The journey DSL (`journey`, `Context`) and the loader of the journeys folder."""

from synthmon.journeys.context import Context
from synthmon.journeys.dsl import Journey, journey
from synthmon.journeys.loader import LoadReport, Problem, load_journeys

__all__ = ["Context", "Journey", "LoadReport", "Problem", "journey", "load_journeys"]
