"""The money path as a customer clicks it: sign in, add a product, check out.

Plain Playwright (``ctx.page``), so steps recorded with ``playwright codegen`` can
be pasted in. Each run leases a synthetic account of the "shopper" pool.
"""

from typing import Any

from synthmon import Context, journey


def _answered(response: Any, what: str) -> None:
    status = response.status if response is not None else "nothing"
    assert response is not None, f"{what} answered nothing"
    assert response.ok, f"{what} answered {status}"


@journey(
    kind="browser",
    severity="critical",
    interval="2m",
    timeout="45s",
    account="shopper",
    tags=["shop", "checkout", "browser"],
    runbook_url="https://runbooks.example/shop/checkout",
    # Page experience: a page over these makes the run degraded (a warning), never
    # failed; the vitals not named keep web.dev's "good" limits (docs/journeys.md).
    web_vitals={"LCP": "3s", "CLS": 0.1},
)
async def browser_checkout(ctx: Context) -> None:
    """A customer can sign in, add a mug to the cart and place an order in a browser."""
    page = ctx.page
    assert ctx.account is not None
    email = ctx.account.username
    password = ctx.account.password.get_secret_value()
    async with ctx.step("login"):
        r = await page.goto("/login")  # relative to the target's base_url
        _answered(r, "sign-in page")
        await page.fill("#email", email)
        await page.fill("#password", password)
        async with page.expect_navigation() as nav:
            await page.click("button[type=submit]")
        r = await nav.value
        _answered(r, "signing in")
        assert page.url.endswith("/account"), f"still not signed in (at {page.url})"
    async with ctx.step("add to cart"):
        r = await page.goto("/products")
        _answered(r, "product list")
        async with page.expect_navigation() as nav:
            await page.get_by_test_id("product-1").get_by_role("button", name="Add to cart").click()
        r = await nav.value
        _answered(r, "adding to cart")
        assert await page.get_by_test_id("cart-item").count() >= 1, "cart is empty after adding"
    async with ctx.step("checkout"):
        async with page.expect_navigation() as nav:
            await page.click("#checkout")
        r = await nav.value
        _answered(r, "checkout page")
        async with page.expect_navigation() as nav:
            await page.click("button#place-order")
        r = await nav.value
        _answered(r, "placing the order")
        assert await page.locator("h1#confirmation").is_visible(), "no order confirmation"
        order_id = await page.get_by_test_id("order-id").inner_text()

        async def cancel_order() -> None:
            # ctx.http works in browser journeys too: leave no real order behind.
            login = await ctx.http.post(
                "/api/login", json={"username": email, "password": password}
            )
            login.raise_for_status()
            headers = {"Authorization": f"Bearer {login.json()['token']}"}
            (await ctx.http.delete(f"/api/orders/{order_id}", headers=headers)).raise_for_status()

        ctx.defer(cancel_order)
