"""HTML for the demo shop: plain server-rendered pages, no external resources.

Every function returns a complete document. Values that come from requests or from
state are escaped here, so the handlers in ``shop.py`` never build markup themselves.
Element ids and ``data-testid`` attributes are part of the shop's contract with the
example journeys and the test suite: change them only together with those.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from synthmon_demo.state import Line, Order, Product

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 48rem; margin: 2rem auto; padding: 0 1rem; }
nav a { margin-right: 1rem; }
.error { color: #b00020; font-weight: bold; }
.product, .cart-item { border-bottom: 1px solid #ddd; padding: .5rem 0; }
label { display: block; margin-top: .5rem; }
"""

# Shipped at /static/app.js. Marking the document lets a browser journey assert that
# first-party scripts load and run (a common way for real shops to break).
APP_JS = 'document.documentElement.dataset.js = "ready";\n'

# A transparent 1x1 GIF89a, served at /static/pixel.gif.
PIXEL_GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)


def money(cents: int) -> str:
    """Format cents as dollars without going through floats."""
    return f"${cents // 100}.{cents % 100:02d}"


def _layout(title: str, body: str, *, email: str | None = None) -> str:
    # No buttons up here: a journey's `button[type=submit]` must find the page's own form.
    who = (
        f'<a href="/account" data-testid="signed-in-as">{escape(email)}</a>'
        if email
        else '<a href="/login">Sign in</a>'
    )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)} - Demo Shop</title>"
        f"<style>{_CSS}</style>"
        '<script src="/static/app.js" defer></script>'
        "</head><body>"
        '<nav><a href="/">Home</a><a href="/products">Products</a>'
        f'<a href="/cart">Cart</a>{who}</nav>'
        f"<main>{body}</main></body></html>\n"
    )


def home(*, email: str | None) -> str:
    body = (
        "<h1>Demo Shop</h1>"
        "<p>A small shop for synthetic monitoring journeys.</p>"
        '<ul><li><a href="/products">Browse products</a></li>'
        '<li><a href="/login">Sign in</a></li>'
        '<li><a href="/cart">Your cart</a></li></ul>'
    )
    return _layout("Home", body, email=email)


def login(*, error: str | None = None, email: str = "") -> str:
    error_html = f'<p class="error">{escape(error)}</p>' if error else ""
    body = (
        "<h1>Sign in</h1>"
        f"{error_html}"
        '<form method="post" action="/login">'
        '<label for="email">Email</label>'
        f'<input id="email" name="email" type="email" value="{escape(email)}" '
        'autocomplete="username" required>'
        '<label for="password">Password</label>'
        '<input id="password" name="password" type="password" '
        'autocomplete="current-password" required>'
        '<label for="otp">One-time code (if enabled)</label>'
        '<input id="otp" name="otp" type="text" inputmode="numeric" '
        'autocomplete="one-time-code">'
        '<p><button type="submit">Sign in</button></p>'
        "</form>"
    )
    return _layout("Sign in", body)


def account(*, email: str) -> str:
    body = (
        f"<h1>Welcome, {escape(email)}</h1>"
        '<p><a href="/products">Continue shopping</a> or <a href="/cart">view your cart</a>.</p>'
        '<form method="post" action="/logout"><button type="submit" id="logout">Sign out</button>'
        "</form>"
    )
    return _layout("Your account", body, email=email)


def products(items: Sequence[Product], *, email: str | None, third_party_origin: str | None) -> str:
    rows = "".join(
        f'<div class="product" data-testid="product-{p.id}">'
        f'<span class="name">{escape(p.name)}</span> '
        f'<span class="price">{money(p.price_cents)}</span>'
        '<form method="post" action="/cart/add" style="display:inline">'
        f'<input type="hidden" name="product_id" value="{p.id}">'
        '<button type="submit">Add to cart</button></form></div>'
        for p in items
    )
    # The pixel stands in for the analytics/CDN resources real shops load from other
    # origins, so journeys can observe (or fail on) a third-party dependency.
    pixel = (
        f'<img src="{escape(third_party_origin)}/static/pixel.gif" alt="">'
        if third_party_origin
        else ""
    )
    body = f'<h1>Products</h1><div id="products">{rows}</div>{pixel}'
    return _layout("Products", body, email=email)


def _lines_html(lines: Sequence[Line], testid: str) -> str:
    return "".join(
        f'<div class="cart-item" data-testid="{testid}" data-product-id="{line.product_id}">'
        f'<span class="name">{escape(line.name)}</span> '
        f'&times; <span class="quantity">{line.quantity}</span> '
        f'<span class="subtotal">{money(line.subtotal_cents)}</span></div>'
        for line in lines
    )


def cart(lines: Sequence[Line], *, email: str) -> str:
    if not lines:
        body = '<h1>Your cart</h1><p id="empty-cart">Your cart is empty</p>'
        return _layout("Cart", body, email=email)
    total = sum(line.subtotal_cents for line in lines)
    body = (
        "<h1>Your cart</h1>"
        f"{_lines_html(lines, 'cart-item')}"
        f'<p>Total: <span data-testid="cart-total">{money(total)}</span></p>'
        '<p><a id="checkout" href="/checkout">Proceed to checkout</a></p>'
    )
    return _layout("Cart", body, email=email)


def checkout(lines: Sequence[Line], *, email: str) -> str:
    total = sum(line.subtotal_cents for line in lines)
    summary = (
        f"{_lines_html(lines, 'checkout-item')}"
        f'<p>Total: <span data-testid="checkout-total">{money(total)}</span></p>'
        if lines
        else '<p id="empty-cart">Your cart is empty</p>'
    )
    body = (
        "<h1>Checkout</h1>"
        f"{summary}"
        '<form method="post" action="/checkout">'
        '<button type="submit" id="place-order">Place order</button></form>'
    )
    return _layout("Checkout", body, email=email)


def order(placed: Order, *, email: str) -> str:
    heading = (
        '<h1 id="cancelled">Order cancelled</h1>'
        if placed.status == "cancelled"
        else '<h1 id="confirmation">Order confirmed</h1>'
    )
    body = (
        f"{heading}"
        f'<p>Order number <span data-testid="order-id">{placed.id}</span></p>'
        f"{_lines_html(placed.lines, 'order-item')}"
        f'<p>Total: <span data-testid="order-total">{money(placed.total_cents)}</span></p>'
    )
    return _layout(f"Order {placed.id}", body, email=email)


def error(title: str, message: str) -> str:
    body = f'<h1>{escape(title)}</h1><p class="error">{escape(message)}</p>'
    return _layout(title, body)
