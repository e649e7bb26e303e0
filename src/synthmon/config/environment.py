"""`SYNTHMON_*` variables checked like the file's keys: a variable that sets nothing is
a typo (an error naming the closest valid name), and the environment may override a
target's settings but never create a target the file does not declare."""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

ENV_PREFIX = "SYNTHMON_"


def environment_problems(
    settings: type[BaseModel], data: Mapping[str, Any], where: str
) -> list[str]:
    """`SYNTHMON_*` variables that set nothing (a typo is an error, like an unknown key
    in the file), and targets that only the environment would create."""
    referenced = _secret_env_names(data)  # api_token = { env = "SYNTHMON_API_TOKEN" }
    declared = {str(name).lower() for name in data.get("targets") or {}}
    problems = []
    for name in sorted(os.environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or name in referenced:
            continue
        parts = upper[len(ENV_PREFIX) :].lower().split("__")
        problem = _unknown_path(settings, parts)
        if problem is not None:
            problems.append(f"environment {name}: {problem}")
            continue
        if parts[0] != "targets":
            continue
        # SYNTHMON_TARGETS__PROD__BASE_URL, or SYNTHMON_TARGETS='{"prod": {...}}'
        names = [parts[1]] if len(parts) > 1 else _json_keys(os.environ[name])
        problems.extend(
            f"environment {name}: target {target!r} is not declared in {where}; "
            f"declared targets: {sorted(declared)}. The environment may override "
            f"a target's settings, not add one: add [targets.{target}] to the file"
            for target in names
            if target.lower() not in declared
        )
    return problems


def _json_keys(value: str) -> list[str]:
    try:
        data = json.loads(value)
    except ValueError:
        return []  # pydantic reports the malformed value against the variable
    return [str(k) for k in data] if isinstance(data, dict) else []


def _unknown_path(model: type[BaseModel], parts: list[str]) -> str | None:
    """Why `parts` (SYNTHMON_A__B__C as ["a", "b", "c"]) names no setting, or None."""
    node: Any = model
    for i, part in enumerate(parts):
        while True:  # unwrap Optional[...] / Annotated[...]
            args = [a for a in get_args(node) if a is not type(None)]
            if get_origin(node) in (Union, UnionType, Annotated) and args:
                node = args[0]
            else:
                break
        if isinstance(node, type) and issubclass(node, BaseModel):
            fields = type.__getattribute__(node, "model_fields")
            if part not in fields:
                close = difflib.get_close_matches(part, [*fields], n=1, cutoff=0.6)
                fixed = [*parts[:i], close[0], *parts[i + 1 :]] if close else []
                hint = f"; did you mean {_env_name(fixed)}?" if close else ""
                where = ".".join(parts[:i]) or "the top level"
                return f"no setting {part!r} in {where}{hint} (see docs/config.md)"
            node = fields[part].annotation
        elif get_origin(node) in (dict, Mapping):
            node = get_args(node)[1]  # any key (a target's name, a header)
        else:
            return f"{'.'.join(parts[:i])} is a single value and has no {part!r}"
    return None


def _env_name(parts: list[str]) -> str:
    return ENV_PREFIX + "__".join(p.upper() for p in parts)


def _secret_env_names(node: Any) -> set[str]:
    if isinstance(node, Mapping):
        if set(node) == {"env"} and isinstance(node["env"], str):
            return {node["env"]}
        return set().union(*(_secret_env_names(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_secret_env_names(v) for v in node))
    return set()
