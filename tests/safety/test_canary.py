"""A canary secret, sent every way a journey author plausibly sends it, never leaves
the daemon: not in a byte it writes (data_dir, artifacts with traces unzipped, its
log output) nor in a byte it serves (/api, /artifacts, /metrics, pages)."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest

from synthmon.safety.scrub import base64_cores
from synthmon_demo import DemoUser, RunningShop, serve
from tests.browser.conftest import NO_SANDBOX
from tests.harness import write_config, write_journeys
from tests.loopback import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

USER = "synthetic+canary@shop.example"
USER2 = "synthetic+canary2@shop.example"  # the HTTP journey's own pool, same password
# '+', '/', '!' and '~' make the URL-, form- and base64 spellings differ from the raw one.
CANARY = "Cn4ry+7/zQ~x9!kW"

JOURNEYS = {
    "canary.py": """
    from urllib.parse import quote

    from synthmon import Context, journey


    @journey(kind="browser", interval="15s", timeout="15s", account="canary")
    async def canary_browser(ctx: Context) -> None:
        page = ctx.page
        secret = ctx.account.password.get_secret_value()
        async with ctx.step("basic auth"):
            r = await page.goto("/private")
            assert r is not None and r.status == 200, f"/private answered {r and r.status}"
        async with ctx.step("fill"):
            await page.goto("/login")
            await page.fill("input[name=email]", ctx.account.username)
            await page.fill("input[name=password]", secret)
            await page.click("button[type=submit]")
            await page.wait_for_url("**/account")
        async with ctx.step("cookie"):
            await page.context.add_cookies([{"name": "canary", "value": secret, "url": page.url}])
            await page.evaluate("s => { document.cookie = 'js_canary=' + s }", secret)
            await page.goto("/products")
        async with ctx.step("query string"):
            await page.goto("/products?token=" + quote(secret, safe=""))
        async with ctx.step("header"):
            await page.set_extra_http_headers(
                {"Authorization": "Bearer " + secret, "X-Api-Key": secret}
            )
            await page.goto("/products")
        async with ctx.step("ctx.http"):
            r = await ctx.http.get("/private")
            r.raise_for_status()
            await ctx.http.get(
                "/api/products",
                params={"token": secret},
                headers={"X-Api-Key": secret},
                cookies={"canary": secret},
            )
        async with ctx.step("fails with the secret in its message"):
            assert False, f"the journey author put {secret} into a message"


    @journey(interval="15s", timeout="15s", account="canary_http")
    async def canary_http(ctx: Context) -> None:
        async with ctx.step("basic auth"):
            r = await ctx.http.get("/private")
            r.raise_for_status()
            assert r.text == "hello " + ctx.account.username
""",
}


def encodings(secret: str, user: str) -> dict[str, bytes]:
    """Every spelling of `secret` the daemon could write: raw, URL/form-encoded,
    JSON-escaped, and base64 (alone, as a basic-auth pair, and the fragment any
    base64 text containing it has)."""
    pair = f"{user}:{secret}".encode()
    found = {
        "raw": secret,
        "url": quote(secret, safe=""),
        "url-path": quote(secret),
        "form": quote_plus(secret),
        "json": json.dumps(secret)[1:-1],
        "base64": base64.b64encode(secret.encode()).decode(),
        "basic": base64.b64encode(pair).decode(),
        "basic-urlsafe": base64.urlsafe_b64encode(pair).decode(),
    }
    for i, core in enumerate(sorted(base64_cores(secret))):
        found[f"base64-core-{i}"] = core
    return {name: value.encode() for name, value in found.items()}


def leaks(label: str, data: bytes, needles: dict[str, bytes]) -> Iterator[str]:
    """Where `data` (and any zip inside it, unpacked) holds one of `needles`."""
    for name, needle in needles.items():
        if needle in data:
            yield f"{label}: {name}"
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for member in z.namelist():
                yield from leaks(f"{label}!{member}", z.read(member), needles)


def credential_header_values(trace_zip: bytes) -> dict[str, set[str]]:
    """{header name: values} of the credential headers in a trace's network log."""
    out: dict[str, set[str]] = {}
    with zipfile.ZipFile(io.BytesIO(trace_zip)) as z:
        text = z.read("trace.network").decode()
    for line in filter(None, text.splitlines()):
        snapshot = json.loads(line).get("snapshot", {})
        for part in ("request", "response"):
            for header in snapshot.get(part, {}).get("headers", []):
                name = header["name"].lower()
                if name in ("authorization", "proxy-authorization", "cookie", "set-cookie"):
                    out.setdefault(name, set()).add(header["value"])
    return out


def served(base: str) -> dict[str, bytes]:
    """Every response the status server gives about the runs, artifacts included."""
    out: dict[str, bytes] = {}
    with httpx.Client(base_url=base, timeout=10) as client:
        for path in ("/", "/metrics", "/healthz", "/readyz", "/api/journeys", "/api/pauses"):
            out[path] = client.get(path).content
        for name in ("canary_browser", "canary_http"):
            for path in (f"/api/journeys/{name}", f"/journeys/{name}"):
                out[path] = client.get(path).content
        journeys = client.get("/api/journeys").json()
        paths = {
            p
            for item in journeys["journeys"]
            for p in (item.get("last_result") or {}).get("artifacts", [])
        }
        for path in sorted(paths):
            run_dir = Path(path).parent
            url = f"/artifacts/{run_dir.parent.name}/{run_dir.name}/"
            out[url] = client.get(url).content
            out[url + Path(path).name] = client.get(url + Path(path).name).content
    return out


class TestCanary:
    async def test_canary_secret_never_written_or_served(self, tmp_path: Path) -> None:
        """A password sent by fill, header, basic auth, query string and cookie, in real
        Chromium and through ctx.http, appears in no spelling in anything `synthmon
        run` writes or serves."""
        needles = {**encodings(CANARY, USER2), **encodings(CANARY, USER)}
        needles["basic-2"] = base64.b64encode(f"{USER2}:{CANARY}".encode())
        port = free_port()
        jdir = write_journeys(tmp_path / "journeys", JOURNEYS)
        data = tmp_path / "data"
        async with serve(users={USER: DemoUser(CANARY), USER2: DemoUser(CANARY)}) as shop:
            cfg = self._config(tmp_path, jdir, data, port, shop)
            log = tmp_path / "daemon.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once
                    [sys.executable, "-m", "synthmon", "run", "--config", str(cfg)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "T_CANARY": CANARY},
                )
                try:
                    api = await self._wait_for_runs(port, proc)
                    responses = served(f"http://127.0.0.1:{port}")
                finally:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=30)
            seen = shop.state.seen("/private")
        by_name = {j["journey"]: j["last_result"] for j in api["journeys"]}
        # The journeys really sent it: basic auth passed in both kinds, and the browser
        # run went through every step to the deliberate failure.
        assert by_name["canary_http"]["status"] == "success", by_name["canary_http"]
        browser = by_name["canary_browser"]
        assert browser["failed_step"] == "fails with the secret in its message", browser
        assert len(seen) >= 3
        assert any(p.endswith("trace.zip") for p in browser["artifacts"])

        # By construction: every credential header in the served trace is masked,
        # including the shop's own session cookie, which no config knows.
        trace_url = next(u for u in responses if u.endswith("trace.zip"))
        values = credential_header_values(responses[trace_url])
        assert {"authorization", "cookie", "set-cookie"} <= values.keys(), values
        assert {v for vs in values.values() for v in vs} == {"***"}, values

        found: list[str] = []
        for path in sorted(p for p in data.rglob("*") if p.is_file()):
            found += leaks(str(path.relative_to(tmp_path)), path.read_bytes(), needles)
        found += leaks("daemon output", log.read_bytes(), needles)
        for url, body in responses.items():
            found += leaks(f"GET {url}", body, needles)
        assert found == [], found

    @staticmethod
    def _config(tmp_path: Path, jdir: Path, data: Path, port: int, shop: RunningShop) -> Path:
        return write_config(
            tmp_path / "synthmon.toml",
            f"""
            journeys_dir = "{jdir}"
            data_dir = "{data}"
            [server]
            listen = "127.0.0.1:{port}"
            [logging]
            format = "json"
            [targets.demo]
            base_url = "{shop.url}"
            [browser]
            no_sandbox = {str(NO_SANDBOX).lower()}
            [artifacts]
            on = "always"
            [[accounts]]
            pool = "canary"
            username = "{USER}"
            password = {{ env = "T_CANARY" }}
            basic_auth = true
            [[accounts]]
            pool = "canary_http"
            username = "{USER2}"
            password = {{ env = "T_CANARY" }}
            basic_auth = true
            """,
        )

    @staticmethod
    async def _wait_for_runs(port: int, proc: subprocess.Popen[bytes]) -> dict[str, object]:
        """/api/journeys once both journeys have finished a run (first runs are spread
        over the first 15 s interval)."""
        import asyncio

        deadline = time.monotonic() + 90
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            while time.monotonic() < deadline:
                assert proc.poll() is None, "synthmon run exited"
                try:
                    api = (await client.get("/api/journeys")).json()
                except httpx.TransportError:
                    api = {"journeys": []}
                runs = [j.get("last_result") for j in api["journeys"]]
                if len(runs) == 2 and all(runs):
                    return dict(api)
                await asyncio.sleep(0.5)
        raise AssertionError("the canary journeys did not run within 90 s")


ORIGIN_ONLY = """
from urllib.parse import urlsplit

from synthmon import Context, journey


def other_origin(ctx: Context) -> str:
    return f"http://localhost:{urlsplit(ctx.target.base_url).port}/private"


@journey(interval="1h", timeout="10s", account="staff")
async def http_basic(ctx: Context) -> None:
    assert (await ctx.http.get("/private")).status_code == 200
    assert (await ctx.http.get(other_origin(ctx))).status_code == 401


@journey(kind="browser", interval="1h", timeout="15s", account="staff")
async def browser_basic(ctx: Context) -> None:
    r = await ctx.page.goto("/private")
    assert r is not None and r.status == 200
    try:
        await ctx.page.goto(other_origin(ctx))
    except Exception as exc:
        # Playwright answers another origin's challenge with no credentials at all.
        assert "ERR_INVALID_AUTH_CREDENTIALS" in str(exc), exc
"""


class TestBasicAuth:
    async def test_account_basic_auth_goes_to_the_target_origin_only(
        self, tmp_path: Path, shop: RunningShop, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With basic_auth = true, both journey kinds pass the shop's basic-auth page
        without building a header, and another allowed host (same server, other
        origin) gets no credentials."""
        from tests.harness import make_settings, run_daemon

        monkeypatch.setenv("T_STAFF", "shopper1-pass")  # the demo shop's shopper1
        settings = make_settings(
            tmp_path,
            targets={},
            journeys={"basic.py": ORIGIN_ONLY},
            extra_toml=f"""
            [targets.demo]
            base_url = "{shop.url}"
            allowed_hosts = ["127.0.0.1", "localhost"]
            [browser]
            no_sandbox = {str(NO_SANDBOX).lower()}
            [[accounts]]
            pool = "staff"
            username = "synthetic+shopper1@shop.example"
            password = {{ env = "T_STAFF" }}
            basic_auth = true
            """,
        )
        async with run_daemon(settings) as (daemon, _):
            http = await daemon.run_pair(*daemon.pairs["http_basic@demo"])
            browser = await daemon.run_pair(*daemon.pairs["browser_basic@demo"])
        assert http.status.value == "success", http.error_message
        assert browser.status.value == "success", browser.error_message
        # What the shop received: credentials to the target's origin (ctx.http sends
        # them at once, Chromium after the 401 challenge), none to the other origin.
        seen = shop.state.seen("/private")
        by_host = {
            origin: [r.headers.get("authorization") for r in seen if r.host.startswith(origin)]
            for origin in ("127.0.0.1", "localhost")
        }
        assert by_host["127.0.0.1"].count(None) <= 1, by_host  # the browser's challenge
        assert by_host["localhost"] and not any(by_host["localhost"]), by_host
