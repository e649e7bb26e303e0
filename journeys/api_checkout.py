"""The money path over the JSON API: log in, fill a cart, check out, then cancel the
order so the synthetic account leaves nothing behind."""

from synthmon import Context, journey


@journey(
    severity="warning",
    interval="1m",
    timeout="15s",
    tags=["shop", "checkout"],
    runbook_url="https://runbooks.example/shop/checkout",
    account="shopper",
)
async def api_checkout(ctx: Context) -> None:
    """A synthetic shopper can log in, add to cart and place an order."""
    async with ctx.step("login"):
        r = await ctx.http.post(
            "/api/login",
            json={
                # A synthetic account leased from the "shopper" pool for this run only.
                "username": ctx.account.username,
                "password": ctx.account.password.get_secret_value(),
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
