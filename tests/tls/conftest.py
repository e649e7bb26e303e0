"""Certificate chains made per test (tests/tls/pki.py) shared by the TLS tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tls.pki import Pki


@pytest.fixture
def short_lived(tmp_path: Path) -> Pki:
    """A leaf that expires in 3 days; its intermediate lives 400 days."""
    return Pki.make(tmp_path / "short", leaf_days=3)


@pytest.fixture
def early_intermediate(tmp_path: Path) -> Pki:
    """A 90-day leaf whose intermediate expires first, in 10 days."""
    return Pki.make(tmp_path / "inter", leaf_days=90, intermediate_days=10)
