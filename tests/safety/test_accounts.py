from __future__ import annotations

import asyncio
import random
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from synthmon.errors import NoAccountError
from synthmon.model import Status
from synthmon.safety.accounts import Account, AccountPools
from synthmon_demo import RunningShop
from tests.harness import make_settings, run_daemon, sample, scrape

from .conftest import ACCOUNTS_TOML


def _pool(n: int, pool: str = "p") -> AccountPools:
    return AccountPools(Account(pool, f"user{i}", SecretStr(f"pw{i}")) for i in range(n))


class TestAccountPools:
    async def test_never_two_holders_and_always_returned(self) -> None:
        """Many concurrent runs on a small pool never share an account, including runs
        that time out waiting or are cancelled while holding one; all leases come back."""
        pools = _pool(3)
        holders: dict[str, int] = {}
        overlaps: list[str] = []
        outcomes = {"ran": 0, "no_account": 0, "cancelled": 0}
        rng = random.Random(5)

        async def run(i: int) -> None:
            try:
                async with pools.lease("p", "t", wait=rng.choice([0.0, 0.02, 1.0])) as acc:
                    holders[acc.username] = holders.get(acc.username, 0) + 1
                    if holders[acc.username] > 1:
                        overlaps.append(acc.username)
                    try:
                        await asyncio.sleep(rng.uniform(0, 0.01))
                        if i % 7 == 0:
                            raise RuntimeError("journey crashed")
                    finally:
                        holders[acc.username] -= 1
                outcomes["ran"] += 1
            except NoAccountError:
                outcomes["no_account"] += 1
            except RuntimeError:
                outcomes["ran"] += 1

        tasks = [asyncio.create_task(run(i)) for i in range(200)]
        await asyncio.sleep(0.005)
        for t in tasks[::11]:
            t.cancel()
        for t in tasks:
            try:
                await t
            except asyncio.CancelledError:
                outcomes["cancelled"] += 1
        assert overlaps == []
        assert pools.in_use("p") == 0
        assert outcomes["ran"] > 3
        assert outcomes["no_account"] > 0
        assert outcomes["cancelled"] > 0
        async with pools.lease("p", "t", wait=0) as acc:  # a returned account is usable
            assert acc.username.startswith("user")

    async def test_busy_pool_raises_no_account_after_wait(self) -> None:
        """With every account held, a lease gives up after its wait with no_account."""
        pools = _pool(1)
        async with pools.lease("p", "t", wait=0):
            with pytest.raises(NoAccountError, match="stayed in use") as err:
                async with pools.lease("p", "t", wait=0.05):
                    pass
        assert err.value.reason == "no_account"

    async def test_waiter_gets_returned_account(self) -> None:
        """A run waiting for an account gets it as soon as another run returns it."""
        pools = _pool(1)
        got = asyncio.Event()

        async def second() -> None:
            async with pools.lease("p", "t", wait=5):
                got.set()

        async with pools.lease("p", "t", wait=0):
            task = asyncio.create_task(second())
            await asyncio.sleep(0.01)
            assert not got.is_set()
        await asyncio.wait_for(task, 5)
        assert got.is_set()

    async def test_unknown_pool_and_target_say_what_to_configure(self) -> None:
        """Asking for a pool that has no accounts (on this target) names the fix."""
        pools = AccountPools([Account("p", "a", SecretStr("x"), targets=frozenset({"prod"}))])
        with pytest.raises(NoAccountError, match=r"no synthetic account in pool 'nope'"):
            async with pools.lease("nope", "prod", wait=0):
                pass
        with pytest.raises(NoAccountError, match=r"on target 'staging'"):
            async with pools.lease("p", "staging", wait=0):
                pass


class TestTotp:
    # RFC 6238 appendix B, SHA-1 rows. The RFC prints 8-digit codes; a 6-digit code is
    # the same number mod 10**6, i.e. its last six digits.
    RFC_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # base32("12345678901234567890")
    VECTORS = (
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    )

    @pytest.mark.parametrize(("at", "code8"), VECTORS)
    def test_rfc6238_sha1_vectors(self, at: int, code8: str) -> None:
        """ctx.account.totp() gives the RFC 6238 code for the test vectors."""
        acc = Account("mfa", "u", SecretStr("x"), totp_secret=SecretStr(self.RFC_SECRET))
        assert acc.totp(at) == code8[-6:]

    def test_account_without_totp_secret_explains(self) -> None:
        """totp() on an account without a secret says which config entry to fix."""
        with pytest.raises(NoAccountError, match="has no totp_secret"):
            Account("p", "u", SecretStr("x")).totp()


JOURNEYS = {
    "shop.py": """
        import asyncio
        from synthmon import Context, journey

        HELD = set()

        @journey(interval="1h", timeout="5s", account="shopper")
        async def shopper_login(ctx: Context) -> None:
            name = ctx.account.username
            assert name not in HELD, f"{name} held twice"
            HELD.add(name)
            try:
                r = await ctx.http.post("/api/login", json={
                    "username": name,
                    "password": ctx.account.password.get_secret_value(),
                })
                assert r.status_code == 200, r.text
                assert ctx.account.attributes["customer_id"].startswith("synthetic-")
                await asyncio.sleep(0.6)  # holds the account while the others ask
            finally:
                HELD.discard(name)

        @journey(interval="1h", timeout="1s", account="shopper")
        async def shopper_hang(ctx: Context) -> None:
            await asyncio.sleep(5)

        @journey(interval="1h", timeout="5s", account="mfa")
        async def mfa_login(ctx: Context) -> None:
            r = await ctx.http.post("/api/login", json={
                "username": ctx.account.username,
                "password": ctx.account.password.get_secret_value(),
                "otp": ctx.account.totp(),
            })
            assert r.status_code == 200, r.text
    """
}


class TestAccountsInDaemon:
    async def test_concurrent_runs_lease_exclusively_and_tag_requests(
        self, tmp_path: Path, shop: RunningShop, secret_env: dict[str, str]
    ) -> None:
        """Six concurrent runs on a pool of two: logins succeed, no account is shared,
        the rest are error no_account, and every request carries the account tag."""
        settings = make_settings(
            tmp_path,
            targets={"demo": shop.url},
            journeys=JOURNEYS,
            extra_toml='[synthetic]\naccount_wait = "0.05s"\n' + ACCOUNTS_TOML,
        )
        async with run_daemon(settings) as (daemon, _):
            j, t = daemon.pairs["shopper_login@demo"]
            results = await asyncio.gather(*(daemon.run_pair(j, t) for _ in range(6)))
            statuses = sorted((r.status.value, r.reason) for r in results)
            assert statuses.count(("success", None)) >= 2, statuses
            assert all(s in (("success", None), ("error", "no_account")) for s in statuses)
            assert ("error", "no_account") in statuses
            assert daemon.safety.accounts.in_use("shopper") == 0
            await daemon.fanout.flush()
            text = await scrape(daemon)
            assert (
                sample(
                    text,
                    "synthmon_journey_infrastructure_errors_total",
                    journey="shopper_login",
                    reason="no_account",
                )
                or 0
            ) >= 1
        seen = [r for r in shop.state.seen() if r.path == "/api/login"]
        assert seen
        assert all(r.headers.get("x-synthetic-account") == "shopper" for r in seen)

    async def test_lease_returned_after_timeout(
        self, tmp_path: Path, shop: RunningShop, secret_env: dict[str, str]
    ) -> None:
        """A run that times out gives its account back: the next runs still get one."""
        settings = make_settings(
            tmp_path, targets={"demo": shop.url}, journeys=JOURNEYS, extra_toml=ACCOUNTS_TOML
        )
        async with run_daemon(settings) as (daemon, _):
            j, t = daemon.pairs["shopper_hang@demo"]
            timed_out = await asyncio.gather(daemon.run_pair(j, t), daemon.run_pair(j, t))
            assert [r.status for r in timed_out] == [Status.TIMEOUT, Status.TIMEOUT]
            assert daemon.safety.accounts.in_use("shopper") == 0
            j2, _ = daemon.pairs["shopper_login@demo"]
            ok = await asyncio.gather(daemon.run_pair(j2, t), daemon.run_pair(j2, t))
            assert [r.status for r in ok] == [Status.SUCCESS, Status.SUCCESS]

    async def test_mfa_login_with_totp(
        self, tmp_path: Path, shop: RunningShop, secret_env: dict[str, str]
    ) -> None:
        """A journey logs in to an MFA account with ctx.account.totp()."""
        settings = make_settings(
            tmp_path, targets={"demo": shop.url}, journeys=JOURNEYS, extra_toml=ACCOUNTS_TOML
        )
        async with run_daemon(settings) as (daemon, _):
            result = await daemon.run_pair(*daemon.pairs["mfa_login@demo"])
        assert result.status is Status.SUCCESS, result.error_message
        async with httpx.AsyncClient() as c:  # the shop really demands the code
            r = await c.post(
                f"{shop.url}/api/login",
                json={"username": "synthetic+mfa@shop.example", "password": "mfa-pass"},
            )
        assert r.status_code == 401


class TestCheckCommand:
    def test_check_reports_journey_without_pool(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`synthmon check` flags a journey whose account pool has no accounts, at its line."""
        from synthmon.cli import main

        make_settings(
            tmp_path,
            targets={"demo": "http://127.0.0.1:9"},
            journeys={
                "j.py": """
                    from synthmon import journey
                    @journey(account="ghosts")
                    async def haunted(ctx):
                        pass
                """
            },
        )
        assert main(["check", "-c", str(tmp_path / "synthmon.toml")]) == 1
        err = capsys.readouterr().err
        assert "j.py:2: journey 'haunted' asks for account pool 'ghosts'" in err

    def test_example_config_checks_clean_and_names_missing_secrets(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """config.example.toml + journeys/ pass `check` without the secrets (CI has none),
        with a warning naming each field and variable; `run` would refuse to start."""
        from synthmon.cli import main
        from synthmon.config.settings import load_settings
        from synthmon.errors import ConfigError

        root = Path(__file__).resolve().parents[2]
        example = root / "config.example.toml"
        for name in ("DEMO_SHOPPER1_PASSWORD", "DEMO_MFA_TOTP_SECRET"):
            monkeypatch.delenv(name, raising=False)
        assert main(["check", "-c", str(example), str(root / "journeys")]) == 0
        captured = capsys.readouterr()
        assert "0 problems" in captured.out
        assert (
            "warning: accounts.0.password: environment variable DEMO_SHOPPER1_PASSWORD is not set"
            in captured.err
        )
        assert "accounts.2.totp_secret" in captured.err
        with pytest.raises(ConfigError, match="DEMO_SHOPPER1_PASSWORD is not set"):
            load_settings(example)

    def test_check_still_rejects_inline_secret(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An inline secret fails `check` even though missing ones only warn."""
        from synthmon.cli import main

        cfg = tmp_path / "c.toml"
        cfg.write_text('[[accounts]]\npool = "p"\nusername = "u"\npassword = "inline-pw"\n')
        assert main(["check", "-c", str(cfg), str(tmp_path)]) == 2
        assert "accounts.0.password" in capsys.readouterr().err
