from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from synthmon_demo import DEMO_TOTP_SECRET

# The demo shop's accounts (synthmon_demo.state.default_users), passed as env secrets.
SECRETS = {
    "T_SHOPPER1_PASSWORD": "shopper1-pass",
    "T_SHOPPER2_PASSWORD": "shopper2-pass",
    "T_MFA_PASSWORD": "mfa-pass",
    "T_MFA_TOTP": DEMO_TOTP_SECRET,
    "T_API_TOKEN": "tok-7f3a9c1e5b",
}

ACCOUNTS_TOML = """
[[accounts]]
pool = "shopper"
username = "synthetic+shopper1@shop.example"
password = { env = "T_SHOPPER1_PASSWORD" }
attributes = { customer_id = "synthetic-0001" }

[[accounts]]
pool = "shopper"
username = "synthetic+shopper2@shop.example"
password = { env = "T_SHOPPER2_PASSWORD" }
attributes = { customer_id = "synthetic-0002" }

[[accounts]]
pool = "mfa"
username = "synthetic+mfa@shop.example"
password = { env = "T_MFA_PASSWORD" }
totp_secret = { env = "T_MFA_TOTP" }
"""


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The test secrets, exported as environment variables."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return dict(SECRETS)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state; put it back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        structlog.reset_defaults()
        root.handlers[:] = handlers
        root.setLevel(level)
