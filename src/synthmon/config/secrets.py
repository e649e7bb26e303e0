"""Secrets in the config: `SecretRef` fields load from the environment or a file,
never from the TOML text itself, and become `SecretStr` everywhere.

    password = { env = "SHOPPER1_PASSWORD" }
    password = { file = "/run/secrets/shopper1" }    # Docker / Kubernetes secrets

Every `SecretStr` reachable from the loaded `Settings` is a secret to scrub from
output: `secret_values(settings)` collects them all by type, so a new config section
(an alert receiver's routing key, say) only has to declare its field as `SecretRef`
to be scrubbed too. Collecting by walking the settings keeps this module free of a
process-global registry (STYLE.md #4).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, SecretStr

INLINE_HELP = (
    "secrets may not be written inline in the config file; pass the value through an "
    'environment variable as { env = "NAME" } or a file as { file = "/run/secrets/name" } '
    '(in a SYNTHMON_* environment override, as JSON: \'{"env": "NAME"}\'; see docs/safety.md)'
)


class UnresolvedSecret(SecretStr):
    """Stands in for a secret whose variable/file is missing while the config is only
    being checked (`synthmon check` in CI has no production secrets)."""

    def __init__(self, problem: str) -> None:
        super().__init__("")
        self.problem = problem


_lenient: ContextVar[bool] = ContextVar("synthmon_unresolved_secrets_allowed", default=False)


@contextmanager
def unresolved_secrets_allowed() -> Iterator[None]:
    """Within the block, a secret whose environment variable or file is missing loads
    as an `UnresolvedSecret` (find them with `unresolved_secrets`) instead of failing
    validation. Inline secrets and malformed references still fail."""
    token = _lenient.set(True)
    try:
        yield
    finally:
        _lenient.reset(token)


def _missing(problem: str) -> SecretStr:
    if not _lenient.get():
        raise ValueError(problem)
    return UnresolvedSecret(problem)


def unresolved_secrets(node: Any, path: str = "") -> list[tuple[str, str]]:
    """(dotted field, problem) of every `UnresolvedSecret` reachable from `node`."""
    if isinstance(node, UnresolvedSecret):
        return [(path, node.problem)]
    if isinstance(node, BaseModel):
        items: Iterable[tuple[object, Any]] = (
            (name, getattr(node, name)) for name in type(node).model_fields
        )
    elif isinstance(node, Mapping):
        items = node.items()
    elif isinstance(node, list | tuple):
        items = enumerate(node)
    else:
        return []
    found = []
    for key, child in items:
        found += unresolved_secrets(child, f"{path}.{key}" if path else str(key))
    return found


def load_secret(value: Any) -> SecretStr:
    """Resolve a `{env = ...}` / `{file = ...}` reference to a `SecretStr`.

    Raises ValueError (reported by the config loader with the file and field) for an
    inline string, an unset variable or an unreadable file. The message never
    contains the secret.
    """
    if isinstance(value, SecretStr):
        return value
    if isinstance(value, str) and value.lstrip().startswith("{"):
        # A SYNTHMON_* environment override carries the reference as JSON:
        # SYNTHMON_SERVER__API_TOKEN='{"file": "/run/secrets/token"}'.
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"not a valid JSON secret reference; {INLINE_HELP}") from None
    if isinstance(value, str):
        raise ValueError(INLINE_HELP)  # noqa: TRY004 - pydantic wants ValueError
    if not isinstance(value, Mapping) or len(value) != 1 or not ({"env", "file"} & set(value)):
        raise ValueError(f'expected {{ env = "NAME" }} or {{ file = "/path" }}; {INLINE_HELP}')
    if "env" in value:
        name = value["env"]
        if not isinstance(name, str) or not name:
            raise ValueError('env must name an environment variable, e.g. { env = "SHOP_TOKEN" }')
        secret = os.environ.get(name)
        if secret is None:
            return _missing(f"environment variable {name} is not set; export it before starting")
        if not secret:
            return _missing(f"environment variable {name} is empty")
        return SecretStr(secret)
    path = value["file"]
    if not isinstance(path, str) or not path:
        raise ValueError('file must be a path, e.g. { file = "/run/secrets/shop_token" }')
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        return _missing(f"cannot read secret file {path}: {exc.strerror or exc}")
    # Secret files written with `echo` end in a newline that is not part of the secret.
    text = text.rstrip("\r\n")
    if not text:
        return _missing(f"secret file {path} is empty")
    return SecretStr(text)


# A config field holding a secret: `password: SecretRef`.
SecretRef = Annotated[SecretStr, BeforeValidator(load_secret)]


def secret_values(node: Any) -> set[str]:
    """Every `SecretStr` value reachable from `node` (settings, models, dicts, lists)."""
    found: set[str] = set()
    _collect(node, found)
    return found


def _collect(node: Any, found: set[str]) -> None:
    if isinstance(node, SecretStr):
        value = node.get_secret_value()
        if value:
            found.add(value)
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            _collect(getattr(node, name), found)
    elif isinstance(node, Mapping):
        for item in node.values():
            _collect(item, found)
    elif isinstance(node, Iterable) and not isinstance(node, str | bytes):
        for item in node:
            _collect(item, found)
