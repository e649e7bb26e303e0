"""A target signed by a private CA (`[targets.X] ca_file`): ctx.http verifies against
that bundle instead of the public roots, through a daemon built as `synthmon run`
builds it; a bundle that cannot be loaded is refused at load time naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthmon.config.settings import load_settings
from synthmon.errors import ConfigError
from synthmon.model import Status
from tests.harness import run_daemon, write_config, write_journeys
from tests.tls.pki import Pki, tls_server
from tests.tls.test_tls import JOURNEY


def config(tmp_path: Path, url: str, extra: str = "") -> Path:
    jdir = write_journeys(tmp_path / "journeys", {"storefront.py": JOURNEY})
    body = (
        f'journeys_dir = "{jdir}"\ndata_dir = "{tmp_path / "data"}"\n'
        f'[server]\nlisten = "127.0.0.1:0"\n[targets.shop]\nbase_url = "{url}"\n{extra}'
    )
    return write_config(tmp_path / "synthmon.toml", body)


class TestPrivateCa:
    async def test_runs_verify_against_the_targets_ca_file(self, tmp_path: Path) -> None:
        """With `ca_file` (relative to the config file) the runs pass with verification
        on; the same target without it fails saying verification failed."""
        pki = Pki.make(tmp_path / "pki", leaf_days=30)
        async with tls_server(pki) as server:
            with_ca = load_settings(config(tmp_path, server.url, 'ca_file = "pki/ca.pem"\n'))
            async with run_daemon(with_ca) as (_, results):
                await results.wait_for(lambda rs: len(rs) >= 1)
            without = load_settings(config(tmp_path / "plain", server.url))
            async with run_daemon(without) as (_, plain):
                await plain.wait_for(lambda rs: len(rs) >= 1)
        assert results.results[0].status is Status.SUCCESS, results.results[0].error_message
        assert plain.results[0].status is not Status.SUCCESS
        assert "TLS certificate verification failed" in (plain.results[0].error_message or "")

    def test_unloadable_bundle_is_refused_naming_the_field(self, tmp_path: Path) -> None:
        """A ca_file that is missing or not PEM stops the config load with the target's
        field and what to give."""
        (tmp_path / "bad.pem").write_text("not a certificate\n")
        for name in ("missing.pem", "bad.pem"):
            path = config(tmp_path, "https://127.0.0.1:1", f'ca_file = "{name}"\n')
            with pytest.raises(ConfigError) as err:
                load_settings(path)
            assert "targets.shop.ca_file" in str(err.value), str(err.value)
            assert "cannot load the CA bundle" in str(err.value)
