"""The kill switch: pause rules persisted in `<data_dir>/pauses.json`.

A rule selects pairs by journey name, tag and/or target (all given fields must
match; `{}` matches everything, written `synthmon pause --all`). A (journey, target)
pair is paused while any rule matches it. Paused pairs are not run, show as paused
in /api and in `synthmon_journey_paused`, and do not alert.

`resume` with the same selector removes that rule; `resume --all` removes every
rule. A resume that leaves the pair paused by another rule says which.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthmon.errors import ConfigError

SELECTOR_KEYS = ("journey", "tag", "target")


@dataclass(frozen=True, slots=True)
class PauseRule:
    journey: str | None = None
    tag: str | None = None
    target: str | None = None
    # Who/why/when, for the operator who finds it later; not part of the selector.
    reason: str = ""
    since: float = 0.0

    @property
    def selector(self) -> tuple[str | None, str | None, str | None]:
        return (self.journey, self.tag, self.target)

    def matches(self, journey: str, tags: Iterable[str], target: str) -> bool:
        return (
            (self.journey is None or self.journey == journey)
            and (self.tag is None or self.tag in tags)
            and (self.target is None or self.target == target)
        )

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in zip(SELECTOR_KEYS, self.selector, strict=True) if v]
        return " ".join(parts) or "all"

    def as_json(self) -> dict[str, Any]:
        return {
            "journey": self.journey,
            "tag": self.tag,
            "target": self.target,
            "reason": self.reason,
            "since": self.since,
        }

    @classmethod
    def from_json(cls, data: Any) -> PauseRule:
        if not isinstance(data, dict):
            raise TypeError("each rule must be a JSON object")
        values = {k: data.get(k) for k in SELECTOR_KEYS}
        for k, v in values.items():
            if v is not None and not (isinstance(v, str) and v):
                raise TypeError(f"{k} must be a non-empty string")
        return cls(
            **values,
            reason=str(data.get("reason") or ""),
            since=float(data.get("since") or 0.0),
        )


class PauseControls:
    """Pause rules, saved atomically on every change so they survive restarts."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self.rules: list[PauseRule] = []

    def load(self) -> None:
        """Read the saved rules. An unreadable file stops startup with a ConfigError
        naming it: silently forgetting a pause could let traffic hit a target an
        operator stopped on purpose."""
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.rules = []
            return
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read pause state: {exc.strerror}") from None
        try:
            data = json.loads(raw)
            self.rules = [PauseRule.from_json(r) for r in data["rules"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{self.path}: corrupt pause state ({exc}); fix it, or delete it to resume "
                "every journey"
            ) from None

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"rules": [r.as_json() for r in self.rules]}, indent=2)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".pauses-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(body + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def pause(
        self,
        *,
        journey: str | None = None,
        tag: str | None = None,
        target: str | None = None,
        reason: str = "",
    ) -> PauseRule:
        """Add a rule (or refresh the reason of an identical one) and save it."""
        rule = PauseRule(journey, tag, target, reason=reason, since=self._clock())
        old = self.rules
        self.rules = [r for r in old if r.selector != rule.selector] + [rule]
        try:
            self._save()
        except OSError:
            self.rules = old
            raise
        return rule

    def resume(
        self,
        *,
        journey: str | None = None,
        tag: str | None = None,
        target: str | None = None,
        everything: bool = False,
    ) -> list[PauseRule]:
        """Remove the rule with exactly this selector (every rule with `everything`).
        Returns the removed rules."""
        selector = (journey, tag, target)
        old = self.rules
        removed = list(old) if everything else [r for r in old if r.selector == selector]
        self.rules = [r for r in old if r not in removed]
        try:
            self._save()
        except OSError:
            self.rules = old
            raise
        return removed

    def paused_by(self, journey: str, tags: Iterable[str], target: str) -> PauseRule | None:
        tags = tuple(tags)
        return next((r for r in self.rules if r.matches(journey, tags, target)), None)

    def is_paused(self, journey: str, tags: Iterable[str], target: str) -> bool:
        return self.paused_by(journey, tags, target) is not None
