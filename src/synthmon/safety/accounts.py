"""Synthetic accounts: pools declared in `[[accounts]]`, leased exclusively per run.

A run of a journey with ``account="shopper"`` leases one free account of pool
"shopper" that exists on the run's target, holds it for the whole run (cleanup
included) and always gives it back, also when the run times out, crashes or is
cancelled. Two runs never hold the same account at the same time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import MappingProxyType

import pyotp
from pydantic import SecretStr

from synthmon.config.settings import AccountConfig, Settings
from synthmon.errors import NoAccountError
from synthmon.journeys.dsl import Journey
from synthmon.model import Problem


@dataclass(frozen=True, slots=True, eq=False)
class Account:
    """What a journey sees as ``ctx.account``. Secrets stay `SecretStr`: use
    ``ctx.account.password.get_secret_value()`` where the value must be sent."""

    pool: str
    username: str
    password: SecretStr
    attributes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    totp_secret: SecretStr | None = field(default=None, repr=False)
    targets: frozenset[str] | None = None
    # The runners send username/password as HTTP basic auth to the target's origin.
    basic_auth: bool = False

    def totp(self, at: float | None = None) -> str:
        """The current RFC 6238 code (30 s step, 6 digits, SHA-1), or the one valid
        at epoch second `at`."""
        if self.totp_secret is None:
            raise NoAccountError(
                f"account {self.username!r} of pool {self.pool!r} has no totp_secret; "
                "add totp_secret = { env = ... } to its [[accounts]] entry"
            )
        otp = pyotp.TOTP(self.totp_secret.get_secret_value())
        return otp.at(int(time.time() if at is None else at))

    def exists_on(self, target: str) -> bool:
        return self.targets is None or target in self.targets

    @classmethod
    def from_config(cls, cfg: AccountConfig) -> Account:
        return cls(
            pool=cfg.pool,
            username=cfg.username,
            password=cfg.password,
            attributes=MappingProxyType(dict(cfg.attributes)),
            totp_secret=cfg.totp_secret,
            targets=frozenset(cfg.targets) if cfg.targets is not None else None,
            basic_auth=cfg.basic_auth,
        )


class AccountPools:
    """Every configured account, and which are leased right now."""

    def __init__(self, accounts: Iterable[Account]) -> None:
        self._accounts = list(accounts)
        self._held: set[int] = set()  # ids of leased Account objects
        self._waiters: list[asyncio.Future[None]] = []

    @classmethod
    def from_config(cls, configs: Iterable[AccountConfig]) -> AccountPools:
        return cls(Account.from_config(c) for c in configs)

    def pools(self) -> set[str]:
        return {a.pool for a in self._accounts}

    def size(self, pool: str, target: str | None = None) -> int:
        return sum(
            1 for a in self._accounts if a.pool == pool and (target is None or a.exists_on(target))
        )

    def in_use(self, pool: str) -> int:
        return sum(1 for a in self._accounts if a.pool == pool and id(a) in self._held)

    def _free(self, pool: str, target: str) -> Account | None:
        for account in self._accounts:
            if account.pool == pool and account.exists_on(target) and id(account) not in self._held:
                return account
        return None

    @asynccontextmanager
    async def lease(self, pool: str, target: str, *, wait: float) -> AsyncIterator[Account]:
        """Hold one free account of `pool` on `target` for the `async with` body.

        Waits up to `wait` seconds for one to be returned; raises NoAccountError
        (status error, reason "no_account") when none is free, or none exists.
        """
        if self.size(pool, target) == 0:
            where = "" if self.size(pool) == 0 else f" on target {target!r}"
            raise NoAccountError(
                f"no synthetic account in pool {pool!r}{where}; add an [[accounts]] entry "
                f'with pool = "{pool}" (and targets including "{target}") to the config'
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while (account := self._free(pool, target)) is None:
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except TimeoutError:
                raise NoAccountError(
                    f"all {self.size(pool, target)} accounts of pool {pool!r} on target "
                    f"{target!r} stayed in use for {wait:g}s; add accounts to the pool or "
                    "run its journeys less often"
                ) from None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        # No await between taking the account and entering the try below, so a
        # cancellation can never strand a lease.
        self._held.add(id(account))
        try:
            yield account
        finally:
            self._held.discard(id(account))
            self._wake()

    def _wake(self) -> None:
        # Synchronous on purpose: a lease is returned even while its task is being
        # cancelled. Every waiter re-checks; the ones that find nothing wait again.
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


def pool_problems(journeys: Iterable[Journey], settings: Settings) -> list[Problem]:
    """Journeys asking for an account pool that has no account on one of their targets
    (every such run would end as error "no_account")."""
    pools = AccountPools.from_config(settings.accounts)
    return [
        Problem(
            j.filename,
            j.lineno,
            f"journey {j.name!r} asks for account pool {j.account!r} but no [[accounts]] "
            f'entry with pool = "{j.account}" exists on target {target!r}; add one '
            "(see docs/safety.md)",
        )
        for j in journeys
        if j.account is not None
        for target in (j.targets if j.targets is not None else tuple(settings.targets))
        if pools.size(j.account, target) == 0
    ]
