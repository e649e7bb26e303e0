"""Validation errors of small option dicts (`@journey(alert=...)`, `compare=...`) as
one line naming each bad key, for file:line messages."""

from __future__ import annotations

from pydantic import ValidationError


def key_problems(exc: ValidationError, default: str) -> str:
    """`key: why; other: why` for every error; `default` names a whole-object error."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or default}: "
        + ("unknown key" if e["type"] == "extra_forbidden" else e["msg"])
        for e in exc.errors()
    )
