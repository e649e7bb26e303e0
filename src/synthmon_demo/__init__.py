"""A small web shop to point synthetic journeys at, with a switch for simulated outages.

    async with serve() as shop:           # a real server on a free loopback port
        ...  # httpx / a browser against shop.url; shop.state to inspect or reset

``python -m synthmon_demo --port 8080`` runs it standalone. ``POST /_chaos`` with
``{"mode": "error" | "slow" | "hang" | "down" | "ok"}`` simulates an outage
(``{"mode": "flaky", "rate": 0.05}`` fails that share of requests at random); ``/_seen``
and ``/_stats`` show what the shop received (see ``shop.py`` for every route).
"""

from synthmon_demo.shop import RunningShop, create_app, serve
from synthmon_demo.state import CHAOS_MODES, DEMO_TOTP_SECRET, ChaosSettings, DemoUser, ShopState

__all__ = [
    "CHAOS_MODES",
    "DEMO_TOTP_SECRET",
    "ChaosSettings",
    "DemoUser",
    "RunningShop",
    "ShopState",
    "create_app",
    "serve",
]
