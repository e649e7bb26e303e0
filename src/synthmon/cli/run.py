"""`synthmon run`: the monitoring daemon in the foreground until SIGTERM/SIGINT.
Changes to the journeys folder and the config file apply live (also on SIGHUP)."""

from __future__ import annotations

import asyncio
import sys

from synthmon.config.settings import Settings
from synthmon.errors import ConfigError

EXIT_OK, EXIT_CONFIG = 0, 2


def run(settings: Settings, config_path: str | None = None) -> int:
    from synthmon.daemon import Daemon
    from synthmon.runtime.interpreter import tune_for_daemon
    from synthmon.runtime.logs import configure_logging
    from synthmon.safety.facade import scrubber_for

    configure_logging(
        level=settings.logging.level,
        fmt=settings.logging.format,
        extra_processors=[scrubber_for(settings).processor],
        static={"location": settings.location} if settings.location else None,
    )
    # After the imports above, before the journeys load: runtime/interpreter.py says why.
    tune_for_daemon()
    try:
        asyncio.run(Daemon(settings, config_path=config_path).run_forever())
    except ConfigError as exc:
        # Found only when starting (an unwritable data_dir, say): same as bad config.
        print(f"synthmon: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK
