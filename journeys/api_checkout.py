"""The money path over the JSON API: log in, fill a cart, check out, then cancel the
order so the synthetic account leaves nothing behind."""

import os

from synthmon import Context, journey


@journey(
    severity="warning",
    interval="1m",
    timeout="15s",
    tags=["shop", "checkout"],
    runbook_url="https://runbooks.example/shop/checkout",
)
async def api_checkout(ctx: Context) -> None:
    """A synthetic shopper can log in, add to cart and place an order."""
    async with ctx.step("login"):
        r = await ctx.http.post(
            "/api/login",
            json={
                "username": "synthetic+shopper2@shop.example",
                # The demo shop's synthetic shopper; real deployments use account pools.
                "password": os.environ.get("DEMO_SHOPPER2_PASSWORD", "shopper2-pass"),
            },
        )
        assert r.status_code == 200, f"login answered {r.status_code}: {r.text[:200]}"
    async with ctx.step("add to cart"):
        r = await ctx.http.post("/api/cart", json={"product_id": 1, "quantity": 1})
        r.raise_for_status()
    async with ctx.step("checkout"):
        r = await ctx.http.post("/api/checkout")
        r.raise_for_status()
        order_id = r.json()["order_id"]

        async def cancel_order() -> None:
            (await ctx.http.delete(f"/api/orders/{order_id}")).raise_for_status()

        ctx.defer(cancel_order)
