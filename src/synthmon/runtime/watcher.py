"""Watches the journeys folder and the config file; says which of them changed.

Journey authors add a file to `journeys/` and nothing else (docs/journeys.md): a
batch of changes in the folder calls `on_journeys`, a change of the config file calls
`on_config`. What changed is worked out by the callbacks (the loader compares file
contents), so a spurious wake-up costs a directory listing, nothing more.

The config file's *folder* is watched, not the file: editors and Kubernetes replace a
file rather than write into it, and a ConfigMap update is an atomic swap of the
`..data` symlink in the mounted folder (the file itself is a symlink that never
changes). The folder is watched without recursion, so a `data_dir` below it does not
wake the daemon on every database write.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import structlog
from watchfiles import Change, DefaultFilter, awatch

log = structlog.get_logger("synthmon.runtime.watcher")

# Changes arriving within this window form one batch (an editor's save, a git pull).
DEBOUNCE_MS = 400
STEP_MS = 50


class ChangeWatcher:
    def __init__(
        self,
        *,
        journeys_dir: Path,
        config_file: Path | None,
        on_journeys: Callable[[], object],
        on_config: Callable[[], object],
        force_polling: bool | None = None,
    ) -> None:
        self._journeys_dir = journeys_dir
        self._config_file = config_file
        self._on_journeys = on_journeys
        self._on_config = on_config
        self._force_polling = force_polling
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Watch from now on: returns once the watches are set up, so a change made
        right after (or during the first load) is not missed."""
        self._stop.clear()
        if self._journeys_dir.is_dir():
            self._tasks.append(
                asyncio.create_task(
                    self._watch(self._journeys_dir, True, lambda _: True, self._on_journeys),
                    name="watch-journeys",
                )
            )
        else:
            log.warning("watch_unavailable", path=str(self._journeys_dir), reason="not a folder")
        if self._config_file is not None:
            folder, name = self._config_file.parent, self._config_file.name

            def is_config(path: Path) -> bool:
                # `..data`, `..2026_11_29_...`: a Kubernetes ConfigMap's atomic swap.
                return path.name == name or path.name.startswith("..")

            self._tasks.append(
                asyncio.create_task(
                    self._watch(folder, False, is_config, self._on_config), name="watch-config"
                )
            )

        # Each task sets up its watch before its first await.
        await asyncio.sleep(0)

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _watch(
        self,
        folder: Path,
        recursive: bool,
        relevant: Callable[[Path], bool],
        callback: Callable[[], object],
    ) -> None:
        try:
            async for changes in awatch(
                folder,
                watch_filter=DefaultFilter(),
                recursive=recursive,
                debounce=DEBOUNCE_MS,
                step=STEP_MS,
                stop_event=self._stop,
                force_polling=self._force_polling,
                yield_on_timeout=False,
            ):
                if not any(relevant(Path(p)) for _, p in changes):
                    continue
                log.debug("files_changed", changes=sorted(_describe(changes)))
                try:
                    callback()
                except Exception:  # a reload bug must not stop watching
                    log.exception("reload_failed", folder=str(folder))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the daemon runs on; SIGHUP still reloads
            log.error(
                "watch_failed",
                folder=str(folder),
                error=f"{type(exc).__name__}: {exc}",
                hint="changes are picked up on SIGHUP only (kill -HUP <pid>)",
            )


def _describe(changes: set[tuple[Change, str]]) -> set[str]:
    return {f"{change.name} {path}" for change, path in changes}
