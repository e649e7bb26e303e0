"""Secret scrubbing: every known secret value becomes `***` in anything synthmon writes.

`Scrubber` is a plain `str -> str` callable, so every output path can use it: the
structlog processor (`Scrubber.processor`), RunResults before they reach the sinks
(`Scrubber.result`), the status server's responses and the browser runner's
artifacts (HTML, console logs, traces).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, quote_plus

from structlog.processors import format_exc_info
from structlog.typing import EventDict, WrappedLogger

from synthmon.model import RunResult, StepResult

MASK = "***"


class Scrubber:
    """Replaces every known secret (and its URL- and JSON-escaped spellings) by `***`.

    Longer secrets are replaced first, so a secret that contains another is masked
    whole. Without secrets it returns its input unchanged.
    """

    def __init__(self, secrets: Iterable[str] = (), *, mask: str = MASK) -> None:
        variants: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            # A password also leaks URL-encoded (form bodies, query strings) and
            # JSON-escaped (API bodies, logged JSON).
            variants |= {secret, quote(secret, safe=""), quote_plus(secret)}
            variants.add(json.dumps(secret, ensure_ascii=False)[1:-1])
            variants.add(json.dumps(secret)[1:-1])
        self.mask = mask
        self._count = len(variants)
        ordered = sorted(variants, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(self.mask, text)

    def scrub_bytes(self, data: bytes, encoding: str = "utf-8") -> bytes:
        """Scrub text held as bytes (artifacts); undecodable bytes pass unchanged."""
        if self._pattern is None:
            return data
        return self(data.decode(encoding, errors="surrogateescape")).encode(
            encoding, errors="surrogateescape"
        )

    def scrub_file(self, path: str | Path) -> bool:
        """Scrub an artifact in place: a zip (Playwright trace) member by member, any
        other file as text. Returns True if anything was replaced.

        For the browser runner: call it on every HTML snapshot, console log and trace
        zip before the artifact path goes into a RunResult. Playwright traces record
        what `page.fill` typed; with the value being a configured secret, this masks it.
        """
        path = Path(path)
        if self._pattern is None:
            return False
        if zipfile.is_zipfile(path):
            return self._scrub_zip(path)
        data = path.read_bytes()
        cleaned = self.scrub_bytes(data)
        if cleaned == data:
            return False
        _replace(path, lambda f: f.write(cleaned))
        return True

    def _scrub_zip(self, path: Path) -> bool:
        changed = False
        members: list[tuple[zipfile.ZipInfo, bytes]] = []
        with zipfile.ZipFile(path) as src:
            for info in src.infolist():
                data = src.read(info)
                cleaned = self.scrub_bytes(data)
                changed = changed or cleaned != data
                members.append((info, cleaned))
        if not changed:
            return False

        def write(f: IO[bytes]) -> None:
            with zipfile.ZipFile(f, "w") as dst:
                for info, data in members:
                    dst.writestr(info, data)

        _replace(path, write)
        return True

    def value(self, obj: Any) -> Any:
        """Scrub strings inside nested dicts, lists and tuples; other values as is."""
        if isinstance(obj, str):
            return self(obj)
        if isinstance(obj, dict):
            return {self.value(k): self.value(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return type(obj)(self.value(v) for v in obj)
        if isinstance(obj, BaseException):
            return self(str(obj))
        return obj

    def processor(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
        """structlog processor. Renders a pending exception first (its message and
        traceback may hold secrets), then scrubs every string of the event."""
        if self._pattern is None:
            return event_dict
        if event_dict.get("exc_info"):
            event_dict = format_exc_info(logger, name, event_dict)
        return {k: self.value(v) for k, v in event_dict.items()}

    def result(self, result: RunResult) -> RunResult:
        """`result` with secrets removed from its error messages and steps."""
        if self._pattern is None:
            return result
        steps = tuple(_scrub_step(self, s) for s in result.steps)
        return dataclasses.replace(
            result,
            error_message=_opt(self, result.error_message),
            failed_step=_opt(self, result.failed_step),
            steps=steps,
        )


def _opt(scrub: Scrubber, text: str | None) -> str | None:
    return scrub(text) if text is not None else None


def _scrub_step(scrub: Scrubber, step: StepResult) -> StepResult:
    if step.error_message is None:
        return step
    return dataclasses.replace(step, error_message=scrub(step.error_message))


def _replace(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write a new version of `path` next to it, then swap it in atomically."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".scrub")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
