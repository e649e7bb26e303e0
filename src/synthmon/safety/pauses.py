"""The kill switch: pause rules persisted in `<data_dir>/pauses.json`.

A rule selects pairs by journey name, tag and/or target (all given fields must
match; `{}` matches everything, written `synthmon pause --all`). A (journey, target)
pair is paused while any rule matches it. Paused pairs are not run, show as paused
in /api and in `synthmon_journey_paused`, and do not alert.

`resume` with the same selector removes that rule; `resume --all` removes every
rule. A resume that leaves the pair paused by another rule says which.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from synthmon.errors import ConfigError
from synthmon.model import Selector
from synthmon.runtime.files import atomic_write

SELECTOR_KEYS = ("journey", "tag", "target")


Name = Annotated[str, Field(min_length=1)]


class PauseRule(BaseModel):
    model_config = ConfigDict(frozen=True)

    journey: Name | None = None
    tag: Name | None = None
    target: Name | None = None
    # Who/why/when, for the operator who finds it later; not part of the selector.
    reason: str = ""
    since: float = 0.0

    @property
    def selector(self) -> tuple[str | None, str | None, str | None]:
        return (self.journey, self.tag, self.target)

    def matches(self, journey: str, tags: Iterable[str], target: str) -> bool:
        return Selector.of(journey=self.journey, tag=self.tag, target=self.target).matches(
            journey, target, tags
        )

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in zip(SELECTOR_KEYS, self.selector, strict=True) if v]
        return " ".join(parts) or "all"

    def as_json(self) -> dict[str, Any]:
        return self.model_dump()


class PauseFile(BaseModel):
    """`pauses.json` as written: `{"rules": [...]}`."""

    rules: list[PauseRule]


_FILE = TypeAdapter(PauseFile)


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
            self.rules = list(_FILE.validate_json(raw).rules)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(
                f"{self.path}: corrupt pause state ({problems}); fix it, or delete it to "
                "resume every journey"
            ) from None

    def _save(self) -> None:
        body = _FILE.dump_json(PauseFile(rules=self.rules), indent=2) + b"\n"
        atomic_write(self.path, lambda f: f.write(body), durable=True)

    def pause(
        self,
        *,
        journey: str | None = None,
        tag: str | None = None,
        target: str | None = None,
        reason: str = "",
    ) -> PauseRule:
        """Add a rule (or refresh the reason of an identical one) and save it."""
        rule = PauseRule(
            journey=journey, tag=tag, target=target, reason=reason, since=self._clock()
        )
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
