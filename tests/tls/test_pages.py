"""The status pages show what the TLS runs saw (issue 15: "shown on the status page"):
a Certificate column on `/` in the bands of the ready rule, a table per host on the
journey page, nothing of it on a public page; through a daemon built as `synthmon run`
builds it, against local HTTPS servers with certificates made in the test."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.harness import run_daemon
from tests.tls.pki import Pki, tls_server
from tests.tls.test_tls import INTERMEDIATE, runs_of, settings_for


def cell(page: str) -> str:
    """The text of the status table's Certificate cell (one row on these pages)."""
    m = re.search(r'<td data-label="Certificate">(.*?)</td>', page)
    assert m, page
    return re.sub(r"<[^>]+>", "", m.group(1))


class TestStatusPagesShowCertificates:
    async def test_status_page_bands_follow_the_rule(
        self, tmp_path: Path, short_lived: Pki, early_intermediate: Pki
    ) -> None:
        """A leaf 3 days from expiry reads "expires soon" (critical band); a chain whose
        intermediate expires in 10 days reads "expiring" (warning band), though its leaf
        has 90 days."""
        async with tls_server(short_lived) as short, tls_server(early_intermediate) as inter:
            settings = settings_for(tmp_path, {"short": short, "inter": inter}, verify=False)
            async with run_daemon(settings) as (daemon, results):
                await results.wait_for(
                    lambda rs: all(len(runs_of(results, t)) >= 1 for t in ("short", "inter"))
                )
                async with httpx.AsyncClient(base_url=daemon.server.url) as client:
                    short_page = (await client.get("/", params={"target": "short"})).text
                    inter_page = (await client.get("/", params={"target": "inter"})).text
        assert '<th scope="col">Certificate</th>' in short_page
        assert cell(short_page) == "expires soon: 2 d left"
        assert cell(inter_page) == "expiring: 9 d left"

    async def test_journey_page_lists_each_host(
        self, tmp_path: Path, early_intermediate: Pki
    ) -> None:
        """The journey page names the host, the leaf's issuer and names, and the chain
        certificate that expires first."""
        async with tls_server(early_intermediate) as server:
            settings = settings_for(tmp_path, {"shop": server}, verify=False)
            async with run_daemon(settings) as (daemon, results):
                await results.wait_for(lambda rs: len(rs) >= 1)
                async with httpx.AsyncClient(base_url=daemon.server.url) as client:
                    r = await client.get("/journeys/storefront", params={"target": "shop"})
        assert r.status_code == 200
        section = r.text[r.text.index('id="tls-h"') :]
        assert server.host in section
        assert "Test Intermediate" in section  # leaf's issuer and first to expire
        assert "localhost, 127.0.0.1" in section
        assert "expiring: 9 d left" in section
        assert "valid: 89 d left" in section  # the leaf itself
        assert INTERMEDIATE.split(",")[0] in section

    async def test_public_page_shows_no_certificate(self, tmp_path: Path, short_lived: Pki) -> None:
        """A public status page has no Certificate column: host names and issuers are
        the target's insides."""
        async with tls_server(short_lived) as server:
            settings = settings_for(tmp_path, {"shop": server}, verify=False)
            jfile = tmp_path / "journeys" / "storefront.py"
            jfile.write_text(
                jfile.read_text().replace(
                    'severity="warning"', 'severity="warning", tags=["public"]'
                )
            )
            page = settings.status_page.model_copy(update={"public": True})
            settings = settings.model_copy(update={"status_page": page})
            async with run_daemon(settings) as (daemon, results):
                await results.wait_for(lambda rs: len(rs) >= 1)
                async with httpx.AsyncClient(base_url=daemon.server.url) as client:
                    text = (await client.get("/")).text
        assert "storefront" in text  # the journey shows, its certificates do not
        assert "Certificate" not in text
        assert server.host not in text
