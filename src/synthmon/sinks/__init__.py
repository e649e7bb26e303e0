"""Sinks consume RunResults: metrics, logs, the latest-result state behind /api.

A sink is anything with ``async emit(result)``. `Fanout` hands every result to
every sink, each behind its own queue, timeout and error guard, so a slow or
broken sink never stalls the scheduler or the other sinks.
"""

from synthmon.sinks.fanout import Fanout, Sink

__all__ = ["Fanout", "Sink"]
