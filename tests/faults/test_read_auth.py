"""Item 10 of the fault suite: beyond loopback, what synthetic accounts saw (/api,
status pages, /artifacts) needs credentials; /healthz and /readyz stay open."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults._common import HEALTHY
from tests.faults._netns import SERVER_ADDR, Namespace, network_namespace
from tests.harness import write_config, write_journeys

SHOP_PORT = 8080
TOKEN = "read-token-for-tests-0123456789"
READ_PATHS = [
    "/",
    "/api/journeys",
    "/api/journeys/healthy",
    "/api/pauses",
    "/journeys/healthy",
    "/artifacts/healthy/run1/",
    "/artifacts/healthy/run1/page.html",
]
OPEN_PATHS = ["/healthz", "/readyz", "/metrics"]


def _daemon(ns: Namespace, root: Path, port: int, server_toml: str) -> subprocess.Popen[bytes]:
    """`synthmon run` inside `ns`, listening on 0.0.0.0:`port` (the container's
    default), with a healthy journey against the shop and one stored artifact."""
    root.mkdir(parents=True)
    jdir = write_journeys(root / "journeys", {"healthy.py": HEALTHY})
    run = root / "data" / "artifacts" / "healthy" / "run1"
    run.mkdir(parents=True)
    (run / "page.html").write_text("<p>what the synthetic account saw</p>")
    cfg = write_config(
        root / "synthmon.toml",
        f"""
        journeys_dir = "{jdir}"
        data_dir = "{root / "data"}"

        [server]
        listen = "0.0.0.0:{port}"
        """
        + textwrap.dedent(server_toml)
        + f"""
        [targets.demo]
        base_url = "http://127.0.0.1:{SHOP_PORT}"
        """,
    )
    synthmon = str(Path(sys.executable).with_name("synthmon"))
    return ns.popen(
        [synthmon, "run", "--config", str(cfg)],
        stdout=(root / "out.log").open("wb"),
        stderr=subprocess.STDOUT,
        env={"PATH": "/usr/bin:/bin", "READ_TOKEN": TOKEN, "HOME": str(root)},
    )


@pytest.fixture
def ns() -> Iterator[Namespace]:
    with network_namespace() as namespace:
        shop = namespace.popen(
            [sys.executable, "-m", "synthmon_demo", "--port", str(SHOP_PORT)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield namespace
        finally:
            shop.terminate()
            shop.wait(10)


class TestReadAccessBeyondLoopback:
    def test_reads_need_credentials_and_probes_stay_open(
        self, tmp_path: Path, ns: Namespace
    ) -> None:
        """From a non-loopback address, on a 0.0.0.0 listener: with read_auth, /api,
        the pages and /artifacts answer 401 without the token and 200 with it; without
        read_auth they are refused (403) unless public_read opens them; /healthz,
        /readyz and /metrics answer either way; the healthy journey kept running and
        nothing alerted."""
        daemons = {
            9321: _daemon(
                ns, tmp_path / "token", 9321, 'read_auth = { token = { env = "READ_TOKEN" } }\n'
            ),
            9322: _daemon(ns, tmp_path / "none", 9322, ""),
            9323: _daemon(ns, tmp_path / "public", 9323, "public_read = true\n"),
        }
        try:
            bases = {p: f"http://{SERVER_ADDR}:{p}" for p in daemons}
            bearer = {"Authorization": f"Bearer {TOKEN}"}
            wrong = {"Authorization": "Bearer nope"}
            basic = {"Authorization": "Basic " + base64.b64encode(b"x:" + TOKEN.encode()).decode()}
            requests: list[tuple[str, dict[str, str]]] = []
            for port in daemons:
                for path in READ_PATHS + OPEN_PATHS:
                    requests.append((bases[port] + path, {}))
            for path in READ_PATHS:
                requests += [
                    (bases[9321] + path, bearer),
                    (bases[9321] + path, wrong),
                    (bases[9321] + path, basic),
                ]
            answers = iter(ns.get(requests, wait=list(bases.values())))
            started = time.monotonic()
            got = {(url, json.dumps(h)): next(answers) for url, h in requests}

            def status(port: int, path: str, headers: dict[str, str] | None = None) -> int:
                return got[(bases[port] + path, json.dumps(headers or {}))][0]

            for path in READ_PATHS:
                assert status(9321, path) == 401, path
                assert status(9321, path, wrong) == 401, path
                assert status(9321, path, basic) == 401, path
                assert status(9321, path, bearer) == 200, path
                assert status(9322, path) == 403, path
                assert "server.read_auth" in got[(bases[9322] + path, "{}")][1]
                assert status(9323, path) == 200, path
            for port in daemons:
                for path in OPEN_PATHS:
                    assert status(port, path) == 200, (port, path)
            artifact = got[(bases[9321] + "/artifacts/healthy/run1/page.html", json.dumps(bearer))]
            assert "what the synthetic account saw" in artifact[1]
            time.sleep(max(0.0, 3.5 - (time.monotonic() - started)))
            (_, body), (_, metrics) = ns.get(
                [(bases[9321] + "/api/journeys/healthy", bearer), (bases[9321] + "/metrics", {})]
            )
            entry = json.loads(body)["journeys"][0]
            assert entry["runs"] >= 3, entry
            assert entry["consecutive_failures"] == 0, entry
            assert entry["last_result"]["status"] == "success", entry
            assert 'synthmon_alert_state{alertname="SyntheticJourneyFailed"' not in metrics or (
                'journey="healthy",target="demo"} 0.0' in metrics
            )
            log = (tmp_path / "token" / "out.log").read_text()
            assert '"remote": "10.199.0.2"' in log, "requests must come from a non-loopback address"
        finally:
            for proc in daemons.values():
                proc.terminate()
            for proc in daemons.values():
                proc.wait(15)
