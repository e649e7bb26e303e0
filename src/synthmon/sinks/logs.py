"""One structured log event per run."""

from __future__ import annotations

from typing import Any

import structlog

from synthmon.model import RunResult, Status


class LogSink:
    """Logs every run as event ``run_finished``: info when it passed, warning when the
    target failed, error when synthmon or the journey itself broke.

    Writing the line is synchronous whether or not it sits behind a queue, so the
    fan-out calls `record` inline: the queue hop cost more CPU than it protected."""

    def __init__(self, logger: Any = None) -> None:
        self._log = logger
        self._proxy = structlog.get_logger("synthmon.runs")
        self._config: tuple[Any, ...] = ()
        self._bound: Any = None

    def _logger(self) -> Any:
        """The run logger. structlog's lazy proxy assembles a new logger at every call
        (caching is off so `logging.level` can change live): ~5 µs per run line. It is
        assembled again only when the configuration changed (a level change,
        `capture_logs` in tests)."""
        if self._log is not None:
            return self._log
        c = structlog.get_config()
        config = (c["processors"], c["wrapper_class"], c["logger_factory"], c["context_class"])
        if len(config) != len(self._config) or any(
            a is not b for a, b in zip(config, self._config, strict=True)
        ):
            self._config, self._bound = config, self._proxy.bind()
        return self._bound

    async def emit(self, result: RunResult) -> None:
        self.record(result)

    def record(self, result: RunResult) -> None:
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
        log = self._logger()
        if result.status is Status.SUCCESS:
            log.info("run_finished", **fields)
        elif result.status.is_target_failure:
            log.warning("run_finished", **fields)
        else:
            log.error("run_finished", **fields)
