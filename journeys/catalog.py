"""Browsing the shop: the cheapest signal that customers can see products at all."""

from synthmon import Context, journey


@journey(
    severity="critical",
    interval="30s",
    timeout="10s",
    tags=["shop", "smoke"],
    runbook_url="https://runbooks.example/shop/catalog",
)
async def browse_catalog(ctx: Context) -> None:
    """Home page loads and product search finds mugs."""
    async with ctx.step("home"):
        r = await ctx.http.get("/")
        assert r.status_code == 200, f"home page answered {r.status_code}"
    async with ctx.step("search"):
        r = await ctx.http.get("/api/products", params={"q": "mug"})
        r.raise_for_status()
        assert r.json()["items"], "search for 'mug' returned nothing"
    async with ctx.step("product page", soft=True):
        # Soft: a broken product page is worth recording, but searching still works.
        r = await ctx.http.get("/api/products/1")
        assert r.status_code == 200, f"product 1 answered {r.status_code}"
