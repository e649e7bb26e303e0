"""The demo shop, exercised over real HTTP: a server from ``serve()`` and httpx."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pyotp
import pytest

import synthmon
from synthmon_demo import (
    CHAOS_MODES,
    DEMO_TOTP_SECRET,
    DemoUser,
    RunningShop,
    ShopState,
    create_app,
    serve,
)
from tests.loopback import free_port

SHOPPER = "synthetic+shopper1@shop.example"
SHOPPER_PASSWORD = "shopper1-pass"
MFA_USER = "synthetic+mfa@shop.example"
MFA_PASSWORD = "mfa-pass"
MFA_SECRET = DEMO_TOTP_SECRET
# Where `synthmon` is imported from, so the subprocess finds it installed or not.
SRC = Path(synthmon.__file__).resolve().parents[1]


class FakeClock:
    """A settable stand-in for ``time.time``."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def shop() -> AsyncIterator[RunningShop]:
    async with serve() as running:
        yield running


@pytest.fixture
async def client(shop: RunningShop) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=shop.url, follow_redirects=True, timeout=5) as c:
        yield c


async def api_login(
    client: httpx.AsyncClient, username: str = SHOPPER, password: str = SHOPPER_PASSWORD
) -> str:
    response = await client.post("/api/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    assert isinstance(token, str)
    return token


async def html_login(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post("/login", data={"email": SHOPPER, "password": SHOPPER_PASSWORD})


async def set_chaos(client: httpx.AsyncClient, **settings: object) -> None:
    response = await client.post("/_chaos", json=settings)
    assert response.status_code == 200, response.text


def other_tasks() -> set[asyncio.Task[object]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


class TestCatalogue:
    async def test_search_for_mug_returns_both_mugs(self, client: httpx.AsyncClient) -> None:
        """A case-insensitive search for "MUG" finds the coffee mug and the travel mug."""
        response = await client.get("/api/products", params={"q": "MUG"})
        names = sorted(item["name"] for item in response.json()["items"])
        assert names == ["Coffee mug", "Travel mug"]

    async def test_no_query_lists_every_product(self, client: httpx.AsyncClient) -> None:
        """Without q the API lists the whole catalogue with id, name and price."""
        items = (await client.get("/api/products")).json()["items"]
        assert len(items) == 8
        assert set(items[0]) == {"id", "name", "price_cents"}

    async def test_unknown_product_is_a_json_404(self, client: httpx.AsyncClient) -> None:
        """An unknown product id answers 404 with an error object."""
        response = await client.get("/api/products/999")
        assert response.status_code == 404
        assert "error" in response.json()

    async def test_products_page_has_add_to_cart_forms(self, client: httpx.AsyncClient) -> None:
        """Each product has a test id and a form posting its id to /cart/add."""
        page = (await client.get("/products")).text
        assert 'data-testid="product-1"' in page
        assert page.count('action="/cart/add"') == 8
        assert '<input type="hidden" name="product_id" value="1">' in page
        assert "<title>" in page
        assert "pixel.gif" not in page

    async def test_third_party_origin_adds_a_pixel(self) -> None:
        """With third_party_origin set, /products embeds that origin's pixel."""
        async with (
            serve() as cdn,
            serve(third_party_origin=cdn.url + "/") as shop,
            httpx.AsyncClient(base_url=shop.url) as client,
        ):
            page = (await client.get("/products")).text
            assert f'<img src="{cdn.url}/static/pixel.gif" alt="">' in page
            pixel = await client.get(f"{cdn.url}/static/pixel.gif")
        assert pixel.headers["content-type"] == "image/gif"
        assert pixel.content.startswith(b"GIF89a")


class TestHtmlShopping:
    async def test_login_to_order_confirmation(self, client: httpx.AsyncClient) -> None:
        """Sign in, add a product, check out: the order page confirms with the order id."""
        account = await html_login(client)
        assert account.url.path == "/account"
        assert f"<h1>Welcome, {SHOPPER}</h1>" in account.text

        cart = await client.post("/cart/add", data={"product_id": "1"})
        assert cart.url.path == "/cart"
        assert cart.text.count('data-testid="cart-item"') == 1
        assert 'href="/checkout"' in cart.text

        checkout = await client.get("/checkout")
        assert 'id="place-order"' in checkout.text

        order = await client.post("/checkout")
        match = re.fullmatch(r"/orders/(\d+)", order.url.path)
        assert match is not None
        assert '<h1 id="confirmation">Order confirmed</h1>' in order.text
        assert f'data-testid="order-id">{match.group(1)}<' in order.text
        assert "Your cart is empty" in (await client.get("/cart")).text

    async def test_pages_needing_a_session_redirect_to_login(
        self, client: httpx.AsyncClient
    ) -> None:
        """Without a session, /account, /cart and /checkout send the browser to /login."""
        for path in ("/account", "/cart", "/checkout"):
            response = await client.get(path, follow_redirects=False)
            assert response.status_code == 303
            assert response.headers["location"] == "/login"

    async def test_sign_out_ends_the_session(self, client: httpx.AsyncClient) -> None:
        """POST /logout forgets the session: /account then redirects to /login."""
        await html_login(client)
        await client.post("/logout")
        response = await client.get("/account", follow_redirects=False)
        assert response.headers["location"] == "/login"

    async def test_checkout_of_an_empty_cart_is_refused(self, client: httpx.AsyncClient) -> None:
        """Placing an order with an empty cart answers 400 "Your cart is empty"."""
        await html_login(client)
        response = await client.post("/checkout")
        assert response.status_code == 400
        assert "Your cart is empty" in response.text

    async def test_home_and_static_assets(self, client: httpx.AsyncClient) -> None:
        """Home links to the shop's pages; /static/app.js and /healthz are served."""
        home = (await client.get("/")).text
        assert "Demo Shop" in home
        for link in ('href="/products"', 'href="/login"', 'href="/cart"'):
            assert link in home
        assert (await client.get("/static/app.js")).status_code == 200
        assert (await client.get("/healthz")).text == "ok"


class TestLogin:
    async def test_login_form_fields(self, client: httpx.AsyncClient) -> None:
        """The sign-in form has email, password and optional one-time-code inputs."""
        page = (await client.get("/login")).text
        for element in ('id="email"', 'id="password"', 'id="otp"', 'type="submit"'):
            assert element in page

    async def test_bad_password_is_401_with_message(self, client: httpx.AsyncClient) -> None:
        """A wrong password re-renders the form with status 401 and an error paragraph."""
        response = await client.post("/login", data={"email": SHOPPER, "password": "nope"})
        assert response.status_code == 401
        assert '<p class="error">Invalid email or password</p>' in response.text
        assert "session" not in response.cookies

    async def test_mfa_user_without_code_is_refused(self, client: httpx.AsyncClient) -> None:
        """An MFA account with the right password but no code gets "Invalid one-time code"."""
        response = await client.post("/login", data={"email": MFA_USER, "password": MFA_PASSWORD})
        assert response.status_code == 401
        assert "Invalid one-time code" in response.text

    async def test_mfa_user_with_wrong_code_is_refused(self, client: httpx.AsyncClient) -> None:
        """A wrong TOTP code is refused like a missing one."""
        code = f"{(int(pyotp.TOTP(MFA_SECRET).now()) + 500_000) % 1_000_000:06d}"
        response = await client.post(
            "/login", data={"email": MFA_USER, "password": MFA_PASSWORD, "otp": code}
        )
        assert response.status_code == 401
        assert "Invalid one-time code" in response.text

    async def test_mfa_user_with_valid_code_signs_in(self, client: httpx.AsyncClient) -> None:
        """A current TOTP code completes an MFA sign-in."""
        code = pyotp.TOTP(MFA_SECRET).now()
        response = await client.post(
            "/login", data={"email": MFA_USER, "password": MFA_PASSWORD, "otp": code}
        )
        assert response.status_code == 200
        assert f"Welcome, {MFA_USER}" in response.text

    async def test_api_login_with_bad_password_is_401(self, client: httpx.AsyncClient) -> None:
        """/api/login answers 401 {"error": "invalid credentials"} for a wrong password."""
        response = await client.post("/api/login", json={"username": SHOPPER, "password": "x"})
        assert response.status_code == 401
        assert response.json() == {"error": "invalid credentials"}

    async def test_custom_users_replace_the_defaults(self) -> None:
        """create_app/serve(users=...) signs in only the given accounts."""
        users = {"a@example.test": DemoUser("secret-a")}
        async with serve(users=users) as shop, httpx.AsyncClient(base_url=shop.url) as client:
            assert (await api_login(client, "a@example.test", "secret-a")) != ""
            denied = await client.post(
                "/api/login", json={"username": SHOPPER, "password": SHOPPER_PASSWORD}
            )
        assert denied.status_code == 401

    def test_too_short_totp_secret_is_rejected_early(self) -> None:
        """A TOTP secret pyotp would refuse fails when the user is defined, not at login."""
        with pytest.raises(ValueError, match="112 bits"):
            DemoUser("pw", totp_secret="JBSWY3DPEHPK3PXP")

    def test_state_and_users_together_are_rejected(self) -> None:
        """Passing both state and users is ambiguous and raises ValueError."""
        with pytest.raises(ValueError, match="users"):
            create_app(state=ShopState(), users={})


class TestApi:
    async def test_login_cart_checkout_cancel(self, shop: RunningShop) -> None:
        """A bearer token drives cart → checkout → order → cancel without any cookie."""
        async with httpx.AsyncClient(base_url=shop.url) as anonymous:
            token = await api_login(anonymous)
        auth = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=shop.url, headers=auth) as client:
            cart = await client.post("/api/cart", json={"product_id": 2, "quantity": 3})
            assert cart.status_code == 200
            assert cart.json()["total_cents"] == 3 * 2400
            assert (await client.get("/api/cart")).json()["items"][0]["quantity"] == 3

            placed = (await client.post("/api/checkout")).json()
            assert placed["total_cents"] == 7200
            order_url = f"/api/orders/{placed['order_id']}"
            assert (await client.get(order_url)).json()["status"] == "confirmed"
            assert (await client.get("/api/cart")).json()["items"] == []

            cancelled = await client.delete(order_url)
            assert cancelled.json()["status"] == "cancelled"
            assert (await client.get(order_url)).json()["status"] == "cancelled"

    async def test_cart_needs_authentication(self, client: httpx.AsyncClient) -> None:
        """The cart API answers 401 without a session or token."""
        response = await client.post("/api/cart", json={"product_id": 1, "quantity": 1})
        assert response.status_code == 401
        assert (await client.get("/api/cart")).status_code == 401

    async def test_unknown_product_in_cart_is_404(self, client: httpx.AsyncClient) -> None:
        """Adding an unknown product answers 404 (the login cookie authenticates)."""
        await api_login(client)
        response = await client.post("/api/cart", json={"product_id": 999, "quantity": 1})
        assert response.status_code == 404

    async def test_empty_checkout_is_400(self, client: httpx.AsyncClient) -> None:
        """Checking out an empty cart answers 400."""
        await api_login(client)
        assert (await client.post("/api/checkout")).status_code == 400

    async def test_orders_are_private(self, shop: RunningShop) -> None:
        """Another user's order is a 404, for reading and for cancelling."""
        async with (
            httpx.AsyncClient(base_url=shop.url) as first,
            httpx.AsyncClient(base_url=shop.url) as second,
        ):
            await api_login(first)
            await api_login(second, "synthetic+shopper2@shop.example", "shopper2-pass")
            await first.post("/api/cart", json={"product_id": 1, "quantity": 1})
            order_id = (await first.post("/api/checkout")).json()["order_id"]
            assert (await second.get(f"/api/orders/{order_id}")).status_code == 404
            assert (await second.delete(f"/api/orders/{order_id}")).status_code == 404


class TestChaos:
    async def test_error_mode_answers_500(self, client: httpx.AsyncClient) -> None:
        """In error mode pages and the API answer 500; the API with a JSON error."""
        await set_chaos(client, mode="error")
        assert (await client.get("/")).status_code == 500
        response = await client.get("/api/products")
        assert response.status_code == 500
        assert response.json() == {"error": "internal error (chaos)"}

    async def test_slow_mode_delays_then_serves(self, client: httpx.AsyncClient) -> None:
        """In slow mode a request takes at least the delay and then succeeds."""
        await set_chaos(client, mode="slow", delay=0.3)
        started = time.monotonic()
        response = await client.get("/healthz")
        assert time.monotonic() - started >= 0.3
        assert response.text == "ok"

    async def test_hang_mode_times_the_client_out(self, shop: RunningShop) -> None:
        """In hang mode the client times out, and the server leaves no task behind."""
        async with httpx.AsyncClient(base_url=shop.url) as control:
            await set_chaos(control, mode="hang")
        async with httpx.AsyncClient(base_url=shop.url, timeout=0.5) as client:
            with pytest.raises(httpx.TimeoutException):
                await client.get("/healthz")
        for _ in range(40):  # the handler notices the disconnect within a poll interval
            if not other_tasks():
                break
            await asyncio.sleep(0.05)
        assert other_tasks() == set()

    async def test_hang_does_not_block_shutdown(self) -> None:
        """Leaving serve() with a hanging request in flight is immediate; the client is cut off."""
        async with httpx.AsyncClient(timeout=10) as client:
            async with serve() as shop:
                chaos = {"mode": "hang", "paths": ["/healthz"]}
                assert (await client.post(f"{shop.url}/_chaos", json=chaos)).status_code == 200
                pending = asyncio.create_task(client.get(f"{shop.url}/healthz"))
                await asyncio.sleep(0.1)
                started = time.monotonic()
            assert time.monotonic() - started < 0.3
            with pytest.raises(httpx.TransportError):
                await pending

    async def test_switching_to_ok_releases_held_requests(self, shop: RunningShop) -> None:
        """A request held by hang mode is served normally once the switch goes back to ok."""
        async with httpx.AsyncClient(base_url=shop.url, timeout=5) as client:
            await set_chaos(client, mode="hang")
            held = asyncio.create_task(client.get("/healthz"))
            await asyncio.sleep(0.1)
            assert not held.done()
            shop.state.set_chaos("ok")
            assert (await asyncio.wait_for(held, timeout=1)).text == "ok"

    async def test_down_mode_drops_the_connection(self, client: httpx.AsyncClient) -> None:
        """In down mode the client gets a transport error, not an HTTP response."""
        await set_chaos(client, mode="down")
        with pytest.raises(httpx.TransportError):
            await client.get("/healthz")

    async def test_paths_limit_the_outage(self, client: httpx.AsyncClient) -> None:
        """With paths, only requests under those prefixes are affected."""
        await set_chaos(client, mode="error", paths=["/api"])
        assert (await client.get("/api/products")).status_code == 500
        assert (await client.get("/products")).status_code == 200
        assert (await client.get("/healthz")).status_code == 200

    async def test_control_endpoints_are_never_affected(self, client: httpx.AsyncClient) -> None:
        """While down, /_chaos, /_seen and /_stats still answer."""
        await set_chaos(client, mode="down")
        current = await client.get("/_chaos")
        assert current.json() == {"mode": "down", "delay": 3.0, "paths": None}
        assert (await client.get("/_seen")).status_code == 200
        assert (await client.get("/_stats")).status_code == 200

    async def test_back_to_ok_restores_service(self, client: httpx.AsyncClient) -> None:
        """Switching to ok after an outage serves normally again."""
        await set_chaos(client, mode="error")
        assert (await client.get("/healthz")).status_code == 500
        await set_chaos(client, mode="ok")
        assert (await client.get("/healthz")).status_code == 200

    async def test_invalid_mode_is_400_listing_modes(self, client: httpx.AsyncClient) -> None:
        """An unknown mode answers 400 naming every valid mode, and changes nothing."""
        response = await client.post("/_chaos", json={"mode": "explode"})
        assert response.status_code == 400
        for mode in CHAOS_MODES:
            assert mode in response.json()["error"]
        assert (await client.get("/_chaos")).json()["mode"] == "ok"

    async def test_invalid_json_is_400(self, client: httpx.AsyncClient) -> None:
        """A body that is not JSON answers 400."""
        response = await client.post("/_chaos", content=b"mode=error")
        assert response.status_code == 400
        assert "valid modes" in response.json()["error"]

    async def test_reset_switches_chaos_off(self, client: httpx.AsyncClient) -> None:
        """POST /_reset puts the switch back to ok."""
        await set_chaos(client, mode="error")
        assert (await client.post("/_reset")).status_code == 200
        assert (await client.get("/healthz")).status_code == 200


class TestObservation:
    async def test_seen_records_headers(self, shop: RunningShop, client: httpx.AsyncClient) -> None:
        """/_seen lists each request with its method, path, host and lower-cased headers."""
        await client.get("/products?x=1", headers={"X-Synthetic-Monitor": "journey=checkout"})
        seen = (await client.get("/_seen", params={"path": "/products"})).json()
        assert len(seen) == 1
        assert seen[0]["method"] == "GET"
        assert seen[0]["path"] == "/products"
        assert seen[0]["host"] == f"127.0.0.1:{shop.port}"
        assert seen[0]["headers"]["x-synthetic-monitor"] == "journey=checkout"
        assert shop.state.seen("/products")[0].headers["x-synthetic-monitor"] == "journey=checkout"

    async def test_control_requests_are_not_recorded(self, client: httpx.AsyncClient) -> None:
        """Requests to /_ endpoints never show up in /_seen."""
        await client.get("/_chaos")
        await client.get("/healthz")
        paths = [record["path"] for record in (await client.get("/_seen")).json()]
        assert paths == ["/healthz"]

    async def test_stats_count_the_busiest_second(self) -> None:
        """/_stats reports the total and the most requests within one wall-clock second."""
        clock = FakeClock(1000.2)
        async with (
            serve(state=ShopState(clock=clock)) as shop,
            httpx.AsyncClient(base_url=shop.url) as client,
        ):
            for _ in range(3):
                await client.get("/healthz")
            clock.now = 1001.9
            for _ in range(5):
                await client.get("/healthz")
            stats = (await client.get("/_stats")).json()
        assert stats == {"total": 8, "max_per_second": 5, "per_second": {"1000": 3, "1001": 5}}
        assert shop.state.stats().max_per_second == 5

    async def test_reset_clears_everything(
        self, shop: RunningShop, client: httpx.AsyncClient
    ) -> None:
        """POST /_reset forgets requests, sessions and carts."""
        await api_login(client)
        await client.post("/api/cart", json={"product_id": 1, "quantity": 1})
        await client.post("/_reset")
        assert (await client.get("/api/cart")).status_code == 401
        assert [r.path for r in shop.state.seen()] == ["/api/cart"]


class TestServe:
    async def test_port_zero_reports_the_real_port(self) -> None:
        """serve() on port 0 yields the port it really listens on, and its URL."""
        async with serve() as shop:
            assert shop.port > 0
            assert shop.url == f"http://127.0.0.1:{shop.port}"
            with socket.create_connection(("127.0.0.1", shop.port), timeout=1):
                pass

    async def test_stops_listening_on_exit(self) -> None:
        """Leaving serve() closes the listening socket."""
        async with serve() as shop:
            port = shop.port
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(("127.0.0.1", port), timeout=1),
        ):
            pass


class TestMain:
    @pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
    async def test_serves_until_signal_then_exits_0(self, signum: signal.Signals) -> None:
        """`python -m synthmon_demo --port N` prints its URL, serves, and exits 0 on a signal."""
        port = free_port()
        pythonpath = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "synthmon_demo",
            "--port",
            str(port),
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": pythonpath},
        )
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=10)
            assert f"http://127.0.0.1:{port}" in line.decode()
            async with httpx.AsyncClient() as client:
                assert (await client.get(f"http://127.0.0.1:{port}/healthz")).text == "ok"
            proc.send_signal(signum)
            assert await asyncio.wait_for(proc.wait(), timeout=5) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
