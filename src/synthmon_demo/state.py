"""Everything the demo shop remembers, on one ``ShopState`` object per app.

No module-level mutable state: tests build a fresh ``ShopState`` (optionally with a
fake clock) and pass it to ``create_app``/``serve``, then read it back directly.
"""

from __future__ import annotations

import random
import secrets
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import pyotp

ChaosMode = Literal["ok", "error", "slow", "hang", "down", "flaky"]
CHAOS_MODES: Final[tuple[ChaosMode, ...]] = ("ok", "error", "slow", "hang", "down", "flaky")
DEFAULT_SLOW_DELAY: Final = 3.0
DEMO_TOTP_SECRET: Final = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"  # noqa: S105 (a public demo secret)


@dataclass(frozen=True, slots=True)
class ChaosSettings:
    """The fault switch: which failure to simulate, and for which path prefixes."""

    mode: ChaosMode = "ok"
    delay: float = DEFAULT_SLOW_DELAY
    paths: tuple[str, ...] | None = None  # None: every path
    # "flaky": the share of requests (0..1) answered like "error", at random.
    rate: float = 0.0

    def affects(self, path: str) -> bool:
        # The control and observation endpoints (/_chaos, /_seen, ...) must keep working
        # during an outage, or a test could never switch the outage off again.
        if self.mode == "ok" or path.startswith("/_"):
            return False
        return self.paths is None or path.startswith(self.paths)

    def as_json(self) -> dict[str, object]:
        paths = list(self.paths) if self.paths is not None else None
        out: dict[str, object] = {"mode": self.mode, "delay": self.delay, "paths": paths}
        if self.mode == "flaky":
            out["rate"] = self.rate
        return out


@dataclass(frozen=True, slots=True)
class SeenRequest:
    """One request as the shop received it (header names lower-cased)."""

    time: float
    method: str
    path: str
    query: str
    host: str
    headers: Mapping[str, str]

    def as_json(self) -> dict[str, object]:
        return {
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "host": self.host,
            "headers": dict(self.headers),
        }


@dataclass(frozen=True, slots=True)
class TrafficStats:
    """Request counts over the retained records, bucketed by whole wall-clock second."""

    total: int
    max_per_second: int
    per_second: Mapping[int, int]

    def as_json(self) -> dict[str, object]:
        return {
            "total": self.total,
            "max_per_second": self.max_per_second,
            "per_second": {str(second): n for second, n in self.per_second.items()},
        }


@dataclass(frozen=True, slots=True)
class Product:
    id: int
    name: str
    price_cents: int

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "price_cents": self.price_cents}


DEFAULT_PRODUCTS: Final[tuple[Product, ...]] = (
    Product(1, "Coffee mug", 1200),
    Product(2, "Travel mug", 2400),
    Product(3, "Espresso beans 1kg", 2950),
    Product(4, "Pour-over kettle", 5900),
    Product(5, "Hand grinder", 7400),
    Product(6, "Paper filters (100)", 650),
    Product(7, "Milk frother", 3300),
    Product(8, "Tea sampler", 1850),
)


@dataclass(frozen=True, slots=True)
class DemoUser:
    """A shop account. With ``totp_secret`` set, sign-in also needs a TOTP code."""

    password: str
    totp_secret: str | None = None

    def __post_init__(self) -> None:
        # Fail when the account is defined, not with a 500 at the first sign-in.
        if self.totp_secret is not None:
            try:
                pyotp.TOTP(self.totp_secret)
            except ValueError as exc:
                raise ValueError(
                    f"totp_secret must be base32 for at least 112 bits (24+ characters): {exc}"
                ) from exc


def default_users() -> dict[str, DemoUser]:
    """The synthetic accounts the example journeys sign in with (fake, public secrets)."""
    # Fake on purpose: pyotp's well-known example secret, doubled, because recent pyotp (2.12)
    # refuses secrets under 112 bits, and the 16-character original has only 80.
    mfa = DemoUser("mfa-pass", totp_secret=DEMO_TOTP_SECRET)
    return {
        "synthetic+shopper1@shop.example": DemoUser("shopper1-pass"),
        "synthetic+shopper2@shop.example": DemoUser("shopper2-pass"),
        "synthetic+mfa@shop.example": mfa,
    }


@dataclass(frozen=True, slots=True)
class Line:
    """One row of a cart or an order."""

    product_id: int
    name: str
    quantity: int
    price_cents: int

    @property
    def subtotal_cents(self) -> int:
        return self.price_cents * self.quantity

    def as_json(self) -> dict[str, object]:
        return {
            "product_id": self.product_id,
            "name": self.name,
            "quantity": self.quantity,
            "price_cents": self.price_cents,
            "subtotal_cents": self.subtotal_cents,
        }


OrderStatus = Literal["confirmed", "cancelled"]


@dataclass(frozen=True, slots=True)
class Order:
    id: int
    email: str
    lines: tuple[Line, ...]
    status: OrderStatus = "confirmed"

    @property
    def total_cents(self) -> int:
        return sum(line.subtotal_cents for line in self.lines)

    def as_json(self) -> dict[str, object]:
        return {
            "order_id": self.id,
            "status": self.status,
            "items": [line.as_json() for line in self.lines],
            "total_cents": self.total_cents,
        }


class LoginFailedError(Exception):
    """Sign-in refused; ``reason`` tells a bad password from a bad one-time code."""

    def __init__(self, reason: Literal["credentials", "otp"]) -> None:
        super().__init__(f"login failed: {reason}")
        self.reason = reason


class UnknownProductError(LookupError):
    pass


class EmptyCartError(Exception):
    pass


class ShopState:
    """Sessions, carts, orders, the chaos switch and the record of requests seen.

    Sessions and orders are capped (oldest dropped first) so a demo shop probed every
    few seconds for weeks keeps a flat memory footprint.
    """

    def __init__(
        self,
        *,
        users: Mapping[str, DemoUser] | None = None,
        products: Sequence[Product] = DEFAULT_PRODUCTS,
        clock: Callable[[], float] = time.time,
        max_seen: int = 5000,
        max_sessions: int = 10_000,
        max_orders: int = 10_000,
        rng: random.Random | None = None,
    ) -> None:
        source = default_users() if users is None else users
        self.users: Mapping[str, DemoUser] = {e.lower(): u for e, u in source.items()}
        self.products: Mapping[int, Product] = {p.id: p for p in products}
        self._clock = clock
        self._max_sessions = max_sessions
        self._max_orders = max_orders
        self._seen: deque[SeenRequest] = deque(maxlen=max_seen)
        self._sessions: OrderedDict[str, str] = OrderedDict()  # token -> email
        self._carts: dict[str, dict[int, int]] = {}  # token -> product id -> quantity
        self._orders: OrderedDict[int, Order] = OrderedDict()
        self._last_order_id = 0
        self.chaos = ChaosSettings()
        self._rng = rng or random.Random()  # noqa: S311 - simulated faults, not crypto

    # -- fault switch and observation -------------------------------------------------

    def set_chaos(
        self,
        mode: ChaosMode,
        *,
        delay: float = DEFAULT_SLOW_DELAY,
        paths: Sequence[str] | None = None,
        rate: float = 0.0,
    ) -> ChaosSettings:
        self.chaos = ChaosSettings(
            mode, delay, tuple(paths) if paths is not None else None, rate=rate
        )
        return self.chaos

    def flaky_hit(self) -> bool:
        """In "flaky" mode: should this request fail? (True for `rate` of them.)"""
        return self._rng.random() < self.chaos.rate

    def record(
        self, method: str, path: str, query: str, host: str, headers: Mapping[str, str]
    ) -> None:
        self._seen.append(SeenRequest(self._clock(), method, path, query, host, headers))

    def seen(self, path_prefix: str | None = None) -> list[SeenRequest]:
        """Recorded requests, oldest first, optionally only those under ``path_prefix``."""
        return [r for r in self._seen if path_prefix is None or r.path.startswith(path_prefix)]

    def stats(self, path_prefix: str | None = None) -> TrafficStats:
        per_second = Counter(int(r.time) for r in self.seen(path_prefix))
        return TrafficStats(
            total=sum(per_second.values()),
            max_per_second=max(per_second.values(), default=0),
            per_second=dict(sorted(per_second.items())),
        )

    def reset(self) -> None:
        """Forget requests, sessions, carts and orders; switch chaos off.

        Order ids keep counting up, so an id seen before a reset never names a new order.
        """
        self._seen.clear()
        self._sessions.clear()
        self._carts.clear()
        self._orders.clear()
        self.chaos = ChaosSettings()

    # -- accounts and sessions --------------------------------------------------------

    def login(self, email: str, password: str, otp: str | None = None) -> str:
        """Check credentials and open a session; returns its token."""
        email = email.strip().lower()
        user = self.users.get(email)
        if user is None or not secrets.compare_digest(user.password.encode(), password.encode()):
            raise LoginFailedError("credentials")
        if user.totp_secret is not None and not (
            otp and pyotp.TOTP(user.totp_secret).verify(otp.strip(), valid_window=1)
        ):
            raise LoginFailedError("otp")
        token = secrets.token_urlsafe(24)
        self._sessions[token] = email
        while len(self._sessions) > self._max_sessions:
            old, _ = self._sessions.popitem(last=False)
            self._carts.pop(old, None)
        return token

    def logout(self, token: str) -> None:
        self._sessions.pop(token, None)
        self._carts.pop(token, None)

    def session_email(self, token: str | None) -> str | None:
        return self._sessions.get(token) if token else None

    # -- catalogue, carts, orders -----------------------------------------------------

    def search(self, query: str | None = None) -> list[Product]:
        needle = (query or "").casefold()
        return [p for p in self.products.values() if needle in p.name.casefold()]

    def add_to_cart(self, token: str, product_id: int, quantity: int = 1) -> list[Line]:
        if product_id not in self.products:
            raise UnknownProductError(product_id)
        cart = self._carts.setdefault(token, {})
        cart[product_id] = cart.get(product_id, 0) + quantity
        return self.cart(token)

    def cart(self, token: str) -> list[Line]:
        lines = []
        for product_id, quantity in self._carts.get(token, {}).items():
            product = self.products[product_id]
            lines.append(Line(product.id, product.name, quantity, product.price_cents))
        return lines

    def checkout(self, token: str) -> Order:
        """Turn the session's cart into a confirmed order and empty the cart."""
        email = self.session_email(token)
        lines = self.cart(token)
        if email is None or not lines:
            raise EmptyCartError
        self._last_order_id += 1
        order = Order(self._last_order_id, email, tuple(lines))
        self._orders[order.id] = order
        self._carts.pop(token, None)
        while len(self._orders) > self._max_orders:
            self._orders.popitem(last=False)
        return order

    def order(self, order_id: int, email: str) -> Order | None:
        """The order, if it exists and belongs to ``email``."""
        order = self._orders.get(order_id)
        return order if order is not None and order.email == email else None

    def cancel_order(self, order_id: int, email: str) -> Order | None:
        order = self.order(order_id, email)
        if order is None:
            return None
        cancelled = Order(order.id, order.email, order.lines, "cancelled")
        self._orders[order_id] = cancelled
        return cancelled
