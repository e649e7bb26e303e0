"""TLS certificates of HTTP journeys (issue 15): read off the runs' own connections,
exported as synthmon_tls_cert_not_after_seconds / synthmon_tls_cert_info and shown by
/api/journeys, through a daemon built as `synthmon run` builds it, against local HTTPS
servers whose certificates are made in the test."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from synthmon.config.settings import Settings, load_settings
from synthmon.model import RunResult, Status, TlsChain
from synthmon.runners.http import default_transport
from synthmon.runners.tls import ChainCache, TlsCapture, host_label, parse_chain, presented_chain
from synthmon.sinks.tls_metrics import MAX_HOSTS_PER_PAIR, TlsMetrics
from tests.harness import Collector, run_daemon, sample, scrape, write_config, write_journeys
from tests.history.conftest import check
from tests.tls.pki import Pki, TlsServer, tls_server

# Two requests per run on one client: one keep-alive connection per run.
JOURNEY = """
    from synthmon import Context, journey

    @journey(severity="warning", interval="1s", timeout="1s")
    async def storefront(ctx: Context) -> None:
        async with ctx.step("home"):
            r = await ctx.http.get("/")
            assert r.status_code == 200
        async with ctx.step("again"):
            r = await ctx.http.get("/again")
            assert r.status_code == 200
"""

LEAF = "CN=localhost,O=synthmon tests"
INTERMEDIATE = "CN=Test Intermediate,O=synthmon tests"


def settings_for(
    tmp_path: Path, servers: dict[str, TlsServer], *, verify: bool, workers: int = 0
) -> Settings:
    """A config file as a user writes it: one target per server."""
    jdir = write_journeys(tmp_path / "journeys", {"storefront.py": JOURNEY})
    lines = [
        f'journeys_dir = "{jdir}"',
        f'data_dir = "{tmp_path / "data"}"',
        "[server]",
        'listen = "127.0.0.1:0"',
        "[history]",
        'flush_interval = "100ms"',
        "[scheduler]",
        f"workers = {workers}",
    ]
    for name, server in servers.items():
        lines += [f"[targets.{name}]", f'base_url = "{server.url}"']
        lines += [] if verify else ["verify_tls = false"]
    return load_settings(write_config(tmp_path / "synthmon.toml", "\n".join(lines) + "\n"))


def runs_of(results: Collector, target: str) -> list[RunResult]:
    return [r for r in results.results if r.target == target]


class TestDaemonReportsCertificates:
    @pytest.mark.parametrize("workers", [0, 2], ids=["in_process", "workers"])
    async def test_metrics_show_the_leaf_and_the_earliest_expiry(
        self, tmp_path: Path, short_lived: Pki, early_intermediate: Pki, workers: int
    ) -> None:
        """Per target and host: the leaf's expiry, and the earliest of the presented chain
        (the intermediate when it expires before the leaf), with subject and issuer; the
        same when the runs happen in worker processes (docs/workers.md)."""
        async with (
            tls_server(short_lived) as short,
            tls_server(early_intermediate) as inter,
        ):
            settings = settings_for(
                tmp_path, {"short": short, "inter": inter}, verify=False, workers=workers
            )
            async with run_daemon(settings) as (daemon, results):
                await results.wait_for(
                    lambda rs: all(len(runs_of(results, t)) >= 2 for t in ("short", "inter"))
                )
                text = await scrape(daemon)
        name = "synthmon_tls_cert_not_after_seconds"
        s = {"target": "short", "host": short.host}
        assert sample(text, name, **s, position="leaf") == short_lived.leaf_not_after
        assert sample(text, name, **s, position="earliest") == short_lived.leaf_not_after
        i = {"target": "inter", "host": inter.host}
        assert sample(text, name, **i, position="leaf") == early_intermediate.leaf_not_after
        assert sample(text, name, **i, position="earliest") == (
            early_intermediate.intermediate_not_after
        )
        assert early_intermediate.intermediate_not_after < early_intermediate.leaf_not_after
        info = "synthmon_tls_cert_info"
        assert sample(text, info, **i, position="leaf", subject=LEAF, issuer=INTERMEDIATE) == 1
        assert sample(text, info, **i, position="earliest", subject=INTERMEDIATE) == 1

    async def test_api_shows_issuer_sans_and_expiry(
        self, tmp_path: Path, early_intermediate: Pki
    ) -> None:
        """/api/journeys and /api/journeys/{name} carry a `tls` entry per host with the
        leaf's issuer, SANs and expiry and the earliest certificate, valid against the
        OpenAPI description."""
        async with tls_server(early_intermediate) as server:
            settings = settings_for(tmp_path, {"shop": server}, verify=False)
            async with run_daemon(settings) as (daemon, results):
                await results.wait_for(lambda rs: len(rs) >= 1)
                async with httpx.AsyncClient(base_url=daemon.server.url) as client:
                    listing = check("/api/journeys", await client.get("/api/journeys"))
                    detail = check(
                        "/api/journeys/{name}", await client.get("/api/journeys/storefront")
                    )
        for body in (listing, detail):
            (tls,) = body["journeys"][0]["tls"]
            assert tls["host"] == server.host
            assert tls["leaf"]["issuer"] == INTERMEDIATE
            assert tls["leaf"]["subject"] == LEAF
            assert tls["leaf"]["sans"] == ["localhost", "127.0.0.1"]
            assert tls["leaf"]["not_after"] == early_intermediate.leaf_not_after
            assert tls["earliest"] == {
                "not_after": early_intermediate.intermediate_not_after,
                "subject": INTERMEDIATE,
                "issuer": "CN=Test Root,O=synthmon tests",
            }
            assert tls["chain_length"] == 2 and tls["chain_complete"] is True
            assert tls["leaf"]["serial"] == f"{early_intermediate.leaf.serial_number:X}".rjust(
                len(tls["leaf"]["serial"]), "0"
            )

    async def test_no_extra_connection_and_one_parse_per_certificate(
        self, tmp_path: Path, short_lived: Pki
    ) -> None:
        """The certificate comes from the run's own connection: the server accepts one
        TLS connection per run (two requests each) and nothing else, and the chain is
        parsed once however many runs saw it."""
        async with tls_server(short_lived) as server:
            settings = settings_for(tmp_path, {"shop": server}, verify=False)
            async with run_daemon(settings) as (daemon, results):
                await results.wait_for(lambda rs: len(rs) >= 3)
            runs = len(results.results)
            assert server.connections == runs
            assert server.requests == 2 * runs
            assert daemon.http_runner.tls_chains.parses == 1

    async def test_a_renewed_certificate_shows_at_the_next_run(
        self, tmp_path: Path, short_lived: Pki
    ) -> None:
        """After the server starts presenting a renewed certificate, the next run's
        connection moves the metric to the new expiry (parsed once more)."""
        renewed = short_lived.renew(tmp_path / "renewed", leaf_days=80)
        async with tls_server(short_lived) as server:
            settings = settings_for(tmp_path, {"shop": server}, verify=False)
            labels = {"target": "shop", "host": server.host, "position": "leaf"}
            async with run_daemon(settings) as (daemon, results):
                await results.wait_for(lambda rs: len(rs) >= 1)
                before = sample(
                    await scrape(daemon), "synthmon_tls_cert_not_after_seconds", **labels
                )
                server.present(renewed)
                seen = len(results.results)
                await results.wait_for(lambda rs: len(rs) >= seen + 2)
                after = sample(
                    await scrape(daemon), "synthmon_tls_cert_not_after_seconds", **labels
                )
                parses = daemon.http_runner.tls_chains.parses
        assert before == short_lived.leaf_not_after
        assert after == renewed.leaf_not_after
        assert parses == 2

    async def test_verified_connections_report_the_same(
        self, tmp_path: Path, early_intermediate: Pki
    ) -> None:
        """With certificate verification on (a context trusting the test root, given as
        the runner's transport) the same chain is reported: reading it does not depend
        on `verify_tls = false`."""
        trusting = early_intermediate.client_context()

        def transport(_: ssl.SSLContext) -> httpx.AsyncBaseTransport:
            return default_transport(trusting)

        async with tls_server(early_intermediate) as server:
            settings = settings_for(tmp_path, {"shop": server}, verify=True)
            async with run_daemon(settings, transport_factory=transport) as (daemon, results):
                await results.wait_for(lambda rs: len(rs) >= 1)
                text = await scrape(daemon)
        assert results.results[0].status is Status.SUCCESS
        labels = {"target": "shop", "host": server.host, "position": "earliest"}
        assert sample(text, "synthmon_tls_cert_not_after_seconds", **labels) == (
            early_intermediate.intermediate_not_after
        )

    async def test_an_expired_certificate_keeps_the_last_value_seen(
        self, tmp_path: Path, short_lived: Pki
    ) -> None:
        """When the server switches to an expired certificate, verification refuses it:
        the runs fail saying so, and the series keep the certificate last seen (the
        expiry alert keeps firing instead of resolving)."""
        expired = short_lived.renew(tmp_path / "expired", leaf_days=-1)
        trusting = short_lived.client_context()

        def transport(_: ssl.SSLContext) -> httpx.AsyncBaseTransport:
            return default_transport(trusting)

        async with tls_server(short_lived) as server:
            settings = settings_for(tmp_path, {"shop": server}, verify=True)
            async with run_daemon(settings, transport_factory=transport) as (daemon, results):
                await results.wait_for(lambda rs: len(rs) >= 1)
                server.present(expired)
                await results.wait_for(lambda rs: any(not r.ok for r in rs))
                text = await scrape(daemon)
        failed = next(r for r in results.results if not r.ok)
        assert "TLS certificate verification failed (certificate has expired)" in (
            failed.error_message or ""
        )
        labels = {"target": "shop", "host": server.host, "position": "leaf"}
        assert sample(text, "synthmon_tls_cert_not_after_seconds", **labels) == (
            short_lived.leaf_not_after
        )

    async def test_plain_http_targets_export_no_tls_series(self, tmp_path: Path) -> None:
        """A daemon whose journeys use http:// only exports the TLS families empty."""
        from synthmon_demo import serve

        async with serve() as shop:
            jdir = write_journeys(tmp_path / "journeys", {"storefront.py": JOURNEY})
            body = (
                f'journeys_dir = "{jdir}"\ndata_dir = "{tmp_path / "data"}"\n'
                f'[server]\nlisten = "127.0.0.1:0"\n[targets.demo]\nbase_url = "{shop.url}"\n'
            )
            settings = load_settings(write_config(tmp_path / "synthmon.toml", body))
            async with run_daemon(settings) as (daemon, results):
                await results.wait_for(lambda rs: len(rs) >= 1)
                text = await scrape(daemon)
        tls = [
            s
            for f in text_string_to_metric_families(text)
            if f.name.startswith("synthmon_tls_")
            for s in f.samples
        ]
        assert tls == []
        assert results.results[0].tls == ()


# -- the pieces -----------------------------------------------------------------------------


def chain(host: str = "shop.example", leaf: float = 1e9, earliest: float = 1e9) -> TlsChain:
    return TlsChain(
        host=host,
        leaf_not_after=leaf,
        subject="CN=shop.example",
        issuer="CN=CA",
        serial="01",
        sans=("shop.example",),
        earliest_not_after=earliest,
        earliest_subject="CN=CA",
        earliest_issuer="CN=Root",
        chain_length=2,
    )


def result(
    *tls: TlsChain, status: Status = Status.SUCCESS, journey: str = "j", at: float = 100.0
) -> RunResult:
    return RunResult(
        journey=journey,
        target="prod",
        run_id="r",
        trace_id="r",
        status=status,
        started_at=at,
        duration=1.0,
        tls=tls,
    )


def values(metrics: TlsMetrics) -> dict[tuple[str, ...], float]:
    return {
        (s.labels["target"], s.labels["host"], s.labels["position"]): s.value
        for family in metrics.collect()
        if family.name == "synthmon_tls_cert_not_after_seconds"
        for s in family.samples
    }


class TestTlsMetrics:
    def test_a_passing_run_drops_hosts_it_no_longer_reached(self) -> None:
        """A passing run that reached only host a drops host b; a failed run that
        reached nothing keeps what the pair knew."""
        m = TlsMetrics(CollectorRegistry())
        m.record(result(chain("a"), chain("b")))
        m.record(result(status=Status.FAILURE))
        assert {k[1] for k in values(m)} == {"a", "b"}
        m.record(result(chain("a")))
        assert {k[1] for k in values(m)} == {"a"}
        m.record(result())
        assert values(m) == {}

    def test_the_freshest_observation_of_a_host_wins(self) -> None:
        """Two journeys on one target and host: the series show what the latest run saw
        (a renewal shows as soon as any journey met it), one series per position."""
        m = TlsMetrics(CollectorRegistry())
        m.record(result(chain(leaf=2e9), journey="new", at=200.0))
        m.record(result(chain(leaf=1e9), journey="old", at=100.0))
        assert values(m) == {
            ("prod", "shop.example", "leaf"): 2e9,
            ("prod", "shop.example", "earliest"): 1e9,
        }

    def test_a_removed_pair_is_gone_and_cannot_come_back(self) -> None:
        """After the catalog drops a pair its hosts vanish, and a late result of it is
        ignored."""
        m = TlsMetrics(CollectorRegistry())
        m.set_catalog([("j", "prod")])
        m.record(result(chain()))
        m.set_catalog([])
        m.record(result(chain()))
        assert values(m) == {}
        assert m.pair_json("j", "prod") == []

    def test_hosts_per_pair_are_capped(self) -> None:
        """A journey reaching more hosts than MAX_HOSTS_PER_PAIR exports only the first
        ones (a wildcard in allowed_hosts must not explode the series count)."""
        m = TlsMetrics(CollectorRegistry())
        m.record(result(*(chain(f"h{i}.example") for i in range(MAX_HOSTS_PER_PAIR + 5))))
        assert len(values(m)) == 2 * MAX_HOSTS_PER_PAIR

    def test_location_label(self) -> None:
        """With `location` configured every TLS series carries it, like the others."""
        m = TlsMetrics(CollectorRegistry(), location="eu")
        m.record(result(chain()))
        labels = [s.labels for f in m.collect() for s in f.samples]
        assert labels and all(lab["location"] == "eu" for lab in labels)


class _LeafOnly:
    """An SSL object without any chain API (neither public nor `_sslobj`)."""

    def __init__(self, der: bytes) -> None:
        self._der = der

    def getpeercert(self, binary_form: bool = False) -> bytes:
        return self._der


class _Broken:
    """A network stream whose TLS layer raises when asked (a library bug, say)."""

    def get_extra_info(self, name: str) -> object:
        raise RuntimeError("boom")


class TestChainReading:
    def test_without_a_chain_api_the_leaf_alone_is_reported(self, short_lived: Pki) -> None:
        """On a TLS stack with no chain API the leaf is read and the chain is marked
        incomplete (earliest = the leaf)."""
        from cryptography.hazmat.primitives.serialization import Encoding

        der = short_lived.leaf.public_bytes(Encoding.DER)
        ders, complete = presented_chain(_LeafOnly(der))  # type: ignore[arg-type]
        assert ders == (der,) and complete is False
        parsed = parse_chain("h", ders, complete)
        assert parsed.earliest_not_after == parsed.leaf_not_after == short_lived.leaf_not_after
        assert parsed.chain_complete is False

    def test_an_unreadable_chain_is_skipped_and_parsed_once(self) -> None:
        """Garbage bytes give no chain (and no crash), and are not re-parsed per run."""
        cache = ChainCache()
        assert cache.summary("h", (b"not a certificate",), True) is None
        assert cache.summary("h", (b"not a certificate",), True) is None
        assert cache.parses == 1

    @pytest.mark.parametrize(
        ("url", "label"),
        [
            ("https://shop.example/x", "shop.example"),
            ("https://shop.example:443/x", "shop.example"),
            ("https://shop.example:8443/", "shop.example:8443"),
            ("https://[::1]:8443/", "[::1]:8443"),
        ],
    )
    def test_host_label(self, url: str, label: str) -> None:
        """The host label carries the port only when it is not 443."""
        assert host_label(httpx.URL(url)) == label

    def test_a_failure_to_read_never_reaches_the_journey(self) -> None:
        """Reading the certificate is a side job: an exception while reading is logged
        and swallowed, the host is skipped for the rest of the run."""
        capture = TlsCapture(ChainCache())
        request = httpx.Request("GET", "https://shop.example/")
        response = httpx.Response(200, request=request, extensions={"network_stream": _Broken()})
        capture(request, response)
        capture(request, response)
        assert capture.chains == ()

    async def test_responses_without_a_connection_are_ignored(self) -> None:
        """A transport that hands back no network stream (MockTransport) records nothing."""
        capture = TlsCapture(ChainCache())

        def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200)

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            response = await client.get("https://shop.example/")
        capture(response.request, response)
        assert capture.chains == ()
