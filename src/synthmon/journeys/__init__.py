"""The journey DSL (`journey`, `Context`) and the loader of the journeys folder."""

from synthmon.journeys.context import Context
from synthmon.journeys.dsl import Journey, journey
from synthmon.journeys.loader import LoadReport, load_journeys

__all__ = ["Context", "Journey", "LoadReport", "journey", "load_journeys"]
