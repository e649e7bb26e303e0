"""One structured log event per run."""

from __future__ import annotations

from typing import Any

import structlog

from synthmon.model import RunResult, Status


class LogSink:
    """Logs every run as event ``run_finished``: info when it passed, warning when the
    target failed, error when synthmon or the journey itself broke."""

    def __init__(self, logger: Any = None) -> None:
        self._log = logger or structlog.get_logger("synthmon.runs")

    async def emit(self, result: RunResult) -> None:
        fields: dict[str, Any] = {
            "journey": result.journey,
            "target": result.target,
            "run_id": result.run_id,
            "trace_id": result.trace_id,
            "result": result.status.value,
            "duration_ms": round(result.duration * 1000, 1),
            "attempt": result.attempt,
        }
        if result.location is not None:
            fields["location"] = result.location
        if result.status is not Status.SUCCESS:
            fields.update(
                failed_step=result.failed_step,
                error_type=result.error_type,
                error=result.error_message,
            )
            if result.reason:
                fields["reason"] = result.reason
        if result.artifacts:
            fields["artifacts"] = list(result.artifacts)
        if result.status is Status.SUCCESS:
            self._log.info("run_finished", **fields)
        elif result.status.is_target_failure:
            self._log.warning("run_finished", **fields)
        else:
            self._log.error("run_finished", **fields)
