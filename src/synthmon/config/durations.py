"""Duration strings as Prometheus writes them: "500ms", "30s", "2m", "1h30m", "1d"."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: str | float | int) -> float:
    """Return seconds. Numbers are taken as seconds; strings use Prometheus units.

    Raises ValueError with a message saying what is accepted.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '30s', got {value!r}")  # noqa: TRY004 - pydantic reports ValueError as a field error
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().replace(" ", "")
        pos, seconds = 0, 0.0
        for m in _PART.finditer(text):
            if m.start() != pos:
                break
            seconds += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if not text or pos != len(text):
            raise ValueError(
                f"invalid duration {value!r}: use a number of seconds or units "
                "ms, s, m, h, d, w (e.g. '500ms', '30s', '2m', '1h30m')"
            )
    if seconds <= 0:
        raise ValueError(f"duration {value!r} must be greater than zero")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest Prometheus-style spelling of `seconds` ("90s" -> "1m30s")."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    out, rest = [], seconds
    for unit in ("d", "h", "m"):
        n, rest = divmod(rest, _UNITS[unit])
        if n:
            out.append(f"{int(n)}{unit}")
    if rest or not out:
        out.append(f"{rest:g}s")
    return "".join(out)
