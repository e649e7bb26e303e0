"""Which settings changed between two loads of the config file, and which of those a
running daemon applies live (docs/config.md#reload)."""

from __future__ import annotations

from pydantic import BaseModel

from synthmon.config.settings import Settings

# What a running daemon applies when its config file changes (docs/config.md#reload);
# every other change is named in a log event and waits for the next start.
LIVE_SETTINGS = frozenset({"targets", "logging.level"})


def changed_settings(old: Settings, new: Settings) -> list[str]:
    """Dotted names of the settings that differ: `server.listen`, `targets`, ..."""
    out: list[str] = []
    for name in type(old).model_fields:
        a, b = getattr(old, name), getattr(new, name)
        if a == b:
            continue
        if isinstance(a, BaseModel) and isinstance(b, BaseModel) and type(a) is type(b):
            out += [f"{name}.{f}" for f in type(a).model_fields if getattr(a, f) != getattr(b, f)]
        else:
            out.append(name)
    return out


def restart_fields(old: Settings, new: Settings) -> list[str]:
    """The changed settings a running daemon cannot apply."""
    return [f for f in changed_settings(old, new) if f not in LIVE_SETTINGS]
