"""The demo shop's aiohttp application and the ``serve`` harness.

Routes:

    /                 home              /api/products[?q=]       catalogue search
    /login            sign-in form      /api/products/{id}       one product
    /logout  (POST)   sign out          /api/login      (POST)   -> {"token"}
    /account          needs a session   /api/cart       GET/POST the session's cart
    /products         catalogue         /api/checkout   (POST)   -> {"order_id", ...}
    /cart, /cart/add  the cart          /api/orders/{id} GET/DELETE (DELETE cancels)
    /checkout         place an order    /healthz                 "ok"
    /orders/{id}      confirmation      /static/pixel.gif, /static/app.js
    /private          HTTP basic auth with a shop account (no TOTP) -> 200 "hello <email>"
    /vitals/...       pages with known Web Vitals (slow LCP, layout shift): vitals.py

    /_chaos  GET/POST the fault switch  /_seen  requests received  (never recorded,
    /_stats  requests per second        /_reset (POST) forget all   never faulted)

The ``/_`` routes and the middlewares that record requests and apply the chaos mode
live in ``control.py``.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from synthmon_demo import control, pages, vitals
from synthmon_demo.control import STATE_KEY
from synthmon_demo.state import (
    DemoUser,
    EmptyCartError,
    LoginFailedError,
    Order,
    ShopState,
    UnknownProductError,
)

SESSION_COOKIE: Final = "session"


@dataclass(frozen=True, slots=True)
class _Config:
    third_party_origin: str | None


_CONFIG_KEY: Final = web.AppKey("synthmon_demo.config", _Config)
_MAX_QUANTITY: Final = 1000


# -- helpers --------------------------------------------------------------------------


def _state(request: web.Request) -> ShopState:
    return request.app[STATE_KEY]


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html")


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _page_error(cls: type[web.HTTPError], title: str, message: str) -> web.HTTPError:
    return cls(text=pages.error(title, message), content_type="text/html")


def _api_error(cls: type[web.HTTPError], message: str) -> web.HTTPError:
    return cls(text=json.dumps({"error": message}), content_type="application/json")


def _token(request: web.Request) -> str | None:
    """The session token from ``Authorization: Bearer`` or, failing that, the cookie."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.cookies.get(SESSION_COOKIE)


def _page_session(request: web.Request) -> tuple[str, str]:
    """(token, email) of a signed-in browser, or a redirect to the sign-in page."""
    token = _token(request)
    email = _state(request).session_email(token)
    if token is None or email is None:
        raise web.HTTPSeeOther("/login")
    return token, email


def _api_session(request: web.Request) -> tuple[str, str]:
    token = _token(request)
    email = _state(request).session_email(token)
    if token is None or email is None:
        raise _api_error(web.HTTPUnauthorized, "authentication required")
    return token, email


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise _api_error(web.HTTPBadRequest, "request body must be JSON") from None
    if not isinstance(body, dict):
        raise _api_error(web.HTTPBadRequest, "request body must be a JSON object")
    return body


async def _form_field(request: web.Request, name: str) -> str:
    value = (await request.post()).get(name, "")
    return value if isinstance(value, str) else ""


# -- pages ----------------------------------------------------------------------------


async def _home(request: web.Request) -> web.Response:
    return _html(pages.home(email=_state(request).session_email(_token(request))))


async def _login_form(request: web.Request) -> web.Response:
    return _html(pages.login())


async def _login(request: web.Request) -> web.Response:
    email = await _form_field(request, "email")
    password = await _form_field(request, "password")
    otp = await _form_field(request, "otp")
    try:
        token = _state(request).login(email, password, otp or None)
    except LoginFailedError as exc:
        message = "Invalid one-time code" if exc.reason == "otp" else "Invalid email or password"
        return _html(pages.login(error=message, email=email), status=401)
    response = _redirect("/account")
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Lax", path="/")
    return response


async def _logout(request: web.Request) -> web.Response:
    token = _token(request)
    if token is not None:
        _state(request).logout(token)
    response = _redirect("/")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def _account(request: web.Request) -> web.Response:
    _, email = _page_session(request)
    return _html(pages.account(email=email))


async def _products_page(request: web.Request) -> web.Response:
    state = _state(request)
    return _html(
        pages.products(
            state.search(),
            email=state.session_email(_token(request)),
            third_party_origin=request.app[_CONFIG_KEY].third_party_origin,
        )
    )


async def _cart_add(request: web.Request) -> web.Response:
    token, _ = _page_session(request)
    product_id = _int_or_none(await _form_field(request, "product_id"))
    try:
        _state(request).add_to_cart(token, product_id if product_id is not None else -1)
    except UnknownProductError:
        raise _page_error(web.HTTPNotFound, "Not found", "No such product") from None
    return _redirect("/cart")


async def _cart_page(request: web.Request) -> web.Response:
    token, email = _page_session(request)
    return _html(pages.cart(_state(request).cart(token), email=email))


async def _checkout_page(request: web.Request) -> web.Response:
    token, email = _page_session(request)
    return _html(pages.checkout(_state(request).cart(token), email=email))


async def _place_order(request: web.Request) -> web.Response:
    token, _ = _page_session(request)
    try:
        order = _state(request).checkout(token)
    except EmptyCartError:
        raise _page_error(web.HTTPBadRequest, "Checkout", "Your cart is empty") from None
    return _redirect(f"/orders/{order.id}")


async def _order_page(request: web.Request) -> web.Response:
    _, email = _page_session(request)
    order_id = _int_or_none(request.match_info["order_id"])
    order = _state(request).order(order_id, email) if order_id is not None else None
    if order is None:
        raise _page_error(web.HTTPNotFound, "Not found", "No such order")
    return _html(pages.order(order, email=email))


async def _private(request: web.Request) -> web.Response:
    """A page behind HTTP basic auth, as many internal tools and staging sites are."""
    challenge = {"WWW-Authenticate": 'Basic realm="demo shop", charset="UTF-8"'}
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    try:
        email, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        email = password = ""
    user = _state(request).users.get(email.strip().lower())
    if (
        scheme.lower() != "basic"
        or user is None
        or user.totp_secret is not None
        or not secrets.compare_digest(user.password.encode(), password.encode())
    ):
        return web.Response(status=401, text="basic auth required", headers=challenge)
    return web.Response(text=f"hello {email}")


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _pixel(request: web.Request) -> web.Response:
    # no-store: every page view should reach the third-party origin, as real beacons do.
    return web.Response(
        body=pages.PIXEL_GIF, content_type="image/gif", headers={"Cache-Control": "no-store"}
    )


async def _app_js(request: web.Request) -> web.Response:
    return web.Response(text=pages.APP_JS, content_type="application/javascript")


# -- JSON API -------------------------------------------------------------------------


async def _api_products(request: web.Request) -> web.Response:
    items = _state(request).search(request.query.get("q"))
    return web.json_response({"items": [p.as_json() for p in items]})


async def _api_product(request: web.Request) -> web.Response:
    product_id = _int_or_none(request.match_info["product_id"])
    product = _state(request).products.get(product_id) if product_id is not None else None
    if product is None:
        raise _api_error(web.HTTPNotFound, "no such product")
    return web.json_response(product.as_json())


async def _api_login(request: web.Request) -> web.Response:
    body = await _json_object(request)
    username, password, otp = body.get("username"), body.get("password"), body.get("otp")
    if not isinstance(username, str) or not isinstance(password, str):
        raise _api_error(web.HTTPBadRequest, "username and password must be strings")
    try:
        token = _state(request).login(username, password, str(otp) if otp else None)
    except LoginFailedError as exc:
        message = "invalid one-time code" if exc.reason == "otp" else "invalid credentials"
        raise _api_error(web.HTTPUnauthorized, message) from None
    response = web.json_response({"token": token})
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Lax", path="/")
    return response


def _cart_json(state: ShopState, token: str) -> dict[str, object]:
    lines = state.cart(token)
    return {
        "items": [line.as_json() for line in lines],
        "total_cents": sum(line.subtotal_cents for line in lines),
    }


async def _api_cart(request: web.Request) -> web.Response:
    token, _ = _api_session(request)
    return web.json_response(_cart_json(_state(request), token))


async def _api_cart_add(request: web.Request) -> web.Response:
    token, _ = _api_session(request)
    body = await _json_object(request)
    product_id = _int_or_none(body.get("product_id"))
    quantity = _int_or_none(body.get("quantity", 1))
    if product_id is None:
        raise _api_error(web.HTTPBadRequest, "product_id must be an integer")
    if quantity is None or not 1 <= quantity <= _MAX_QUANTITY:
        raise _api_error(web.HTTPBadRequest, f"quantity must be 1..{_MAX_QUANTITY}")
    state = _state(request)
    try:
        state.add_to_cart(token, product_id, quantity)
    except UnknownProductError:
        raise _api_error(web.HTTPNotFound, "no such product") from None
    return web.json_response(_cart_json(state, token))


async def _api_checkout(request: web.Request) -> web.Response:
    token, _ = _api_session(request)
    try:
        order = _state(request).checkout(token)
    except EmptyCartError:
        raise _api_error(web.HTTPBadRequest, "cart is empty") from None
    return web.json_response({"order_id": order.id, "total_cents": order.total_cents})


def _api_order_or_404(request: web.Request, email: str) -> Order:
    order_id = _int_or_none(request.match_info["order_id"])
    order = _state(request).order(order_id, email) if order_id is not None else None
    if order is None:
        raise _api_error(web.HTTPNotFound, "no such order")
    return order


async def _api_order(request: web.Request) -> web.Response:
    _, email = _api_session(request)
    return web.json_response(_api_order_or_404(request, email).as_json())


async def _api_cancel_order(request: web.Request) -> web.Response:
    _, email = _api_session(request)
    order = _api_order_or_404(request, email)
    cancelled = _state(request).cancel_order(order.id, email)
    assert cancelled is not None  # the order exists and is email's: checked just above
    return web.json_response({"order_id": cancelled.id, "status": cancelled.status})


# -- assembly -------------------------------------------------------------------------


def create_app(
    *,
    state: ShopState | None = None,
    users: dict[str, DemoUser] | None = None,
    third_party_origin: str | None = None,
) -> web.Application:
    """Build the shop. ``users`` replaces the default accounts (only without ``state``:
    a given ``state`` already carries its users); ``third_party_origin`` (for instance
    ``http://127.0.0.1:40124``) adds a cross-origin pixel to /products."""
    if state is not None and users is not None:
        raise ValueError("pass users either to ShopState(users=...) or to create_app, not both")
    app = web.Application(middlewares=control.MIDDLEWARES)
    app[STATE_KEY] = state if state is not None else ShopState(users=users)
    origin = third_party_origin.rstrip("/") if third_party_origin else None
    app[_CONFIG_KEY] = _Config(third_party_origin=origin)
    control.install(app)
    add = app.router
    add.add_get("/", _home)
    add.add_get("/login", _login_form)
    add.add_post("/login", _login)
    add.add_post("/logout", _logout)
    add.add_get("/account", _account)
    add.add_get("/products", _products_page)
    add.add_post("/cart/add", _cart_add)
    add.add_get("/cart", _cart_page)
    add.add_get("/checkout", _checkout_page)
    add.add_post("/checkout", _place_order)
    add.add_get("/orders/{order_id}", _order_page)
    add.add_get("/healthz", _healthz)
    add.add_get("/private", _private)
    add.add_get("/static/pixel.gif", _pixel)
    add.add_get("/static/app.js", _app_js)
    add.add_get("/api/products", _api_products)
    add.add_get("/api/products/{product_id}", _api_product)
    add.add_post("/api/login", _api_login)
    add.add_get("/api/cart", _api_cart)
    add.add_post("/api/cart", _api_cart_add)
    add.add_post("/api/checkout", _api_checkout)
    add.add_get("/api/orders/{order_id}", _api_order)
    add.add_delete("/api/orders/{order_id}", _api_cancel_order)
    vitals.install(app)
    return app


@dataclass(frozen=True, slots=True)
class RunningShop:
    """A shop served by ``serve``: where to reach it and its live state."""

    url: str
    host: str
    port: int
    state: ShopState


@asynccontextmanager
async def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    state: ShopState | None = None,
    users: dict[str, DemoUser] | None = None,
    third_party_origin: str | None = None,
    shutdown_timeout: float = 0.5,
) -> AsyncIterator[RunningShop]:
    """Serve the shop on ``host:port`` (0: a free port) for the ``async with`` body.

    Installs no signal handlers. Requests held by chaos ("hang", "slow") are dropped
    as soon as shutdown starts; other requests in flight get ``shutdown_timeout``.
    """
    app = create_app(state=state, users=users, third_party_origin=third_party_origin)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        real_port = int(runner.addresses[0][1])
        netloc = f"[{host}]" if ":" in host else host
        yield RunningShop(f"http://{netloc}:{real_port}", host, real_port, app[STATE_KEY])
    finally:
        await runner.cleanup()
