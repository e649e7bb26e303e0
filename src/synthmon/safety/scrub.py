"""Secret scrubbing: every known secret value becomes `***` in anything synthmon writes.

`Scrubber` is a plain `str -> str` callable, so every output path can use it: the
structlog processor (`Scrubber.processor`), RunResults before they reach the sinks
(`Scrubber.result`), the status server's responses and the browser runner's
artifacts (HTML, console logs, and every text entry of a trace zip:
`runners.browser.artifacts.scrub_zip`).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from structlog.processors import format_exc_info
from structlog.typing import EventDict, WrappedLogger

from synthmon.model import RunResult, StepResult

MASK = "***"
# A base64 fragment shorter than this (6 bytes of the secret) would mask unrelated text.
MIN_BASE64_CORE = 8


def base64_cores(secret: str) -> set[str]:
    """The base64 text that every base64 encoding of any text containing `secret`
    contains, whatever comes before it (a `Basic` header's `user:secret`, a token
    wrapping it): one fragment per alignment of the secret within the 3-byte groups,
    in the standard and the URL-safe alphabet. At most two base64 characters on each
    side of a fragment stay, carrying a few bits of the secret's first and last bytes.
    """
    data = secret.encode()
    cores: set[str] = set()
    for skip in range(3):
        whole = (len(data) - skip) // 3 * 3
        if whole <= 0:
            continue
        core = base64.b64encode(data[skip : skip + whole]).decode()
        if len(core) >= MIN_BASE64_CORE:
            cores |= {core, core.replace("+", "-").replace("/", "_")}
    return cores


class Scrubber:
    """Replaces every known secret by `***`: as written, URL-encoded, JSON-escaped,
    and base64-encoded inside anything (`base64_cores`), plus the exact base64 of each
    `basic_auth` (username, password) pair.

    Longer secrets are replaced first, so a secret that contains another is masked
    whole. Without secrets it returns its input unchanged.
    """

    def __init__(
        self,
        secrets: Iterable[str] = (),
        *,
        basic_auth: Iterable[tuple[str, str]] = (),
        mask: str = MASK,
    ) -> None:
        variants: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            # A password also leaks URL-encoded (form bodies, query strings) and
            # JSON-escaped (API bodies, logged JSON).
            variants |= {secret, quote(secret, safe=""), quote_plus(secret)}
            variants.add(json.dumps(secret, ensure_ascii=False)[1:-1])
            variants.add(json.dumps(secret)[1:-1])
            # Basic auth headers, tokens and cookies carry secrets base64-encoded.
            variants |= base64_cores(secret)
        for username, password in basic_auth:
            if password:
                variants.add(base64.b64encode(f"{username}:{password}".encode()).decode())
        self.mask = mask
        ordered = sorted(variants, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(self.mask, text)

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
