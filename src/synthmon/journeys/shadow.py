"""`ctx.shadow`: send the same request to the run's target and to another one, and
compare the answers (branch by abstraction: the new implementation must answer as
the old one does).

    r = await ctx.shadow.get("/api/cart", compare_to="new-backend",
                             ignore=["$.generated_at", "$.items[*].etag"])

The run's own answer is returned, so the journey goes on as before. Differences in
status, in the headers named by `compare_headers` and in the JSON body (after
removing the `ignore` JSONPath expressions, parsed by jsonpath-ng) are a *soft* step
failure named ``shadow GET /api/cart vs new-backend`` whose message is a readable
diff (deepdiff), and are counted in
``synthmon_shadow_mismatches_total{journey,target,compare_to}``.

Only safe methods (GET, HEAD, OPTIONS) are shadowed: sending a POST twice would
create two orders. A journey that really wants it says so with ``unsafe=True``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from deepdiff import DeepDiff
from jsonpath_ng.exceptions import JSONPathError
from jsonpath_ng.ext.parser import parse as parse_jsonpath

from synthmon.errors import StepFailedError

if TYPE_CHECKING:
    import httpx

    from synthmon.journeys.context import Context

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Lines of diff in a step message: enough to see what changed, short enough for an alert.
MAX_DIFF_LINES = 12


class ShadowError(ValueError):
    """A shadow request the journey should not make (unsafe method, bad ignore path,
    unknown target): a bug in the journey, recorded as `error`."""


class Shadow:
    def __init__(self, ctx: Context, peer: Callable[[str], httpx.AsyncClient]) -> None:
        self._ctx = ctx
        self._peer = peer
        # compare_to -> requests whose answers differed, for the run's result.
        self.mismatches: dict[str, int] = {}

    async def get(self, url: str, *, compare_to: str, **kw: Any) -> httpx.Response:
        return await self.request("GET", url, compare_to=compare_to, **kw)

    async def head(self, url: str, *, compare_to: str, **kw: Any) -> httpx.Response:
        return await self.request("HEAD", url, compare_to=compare_to, **kw)

    async def request(
        self,
        method: str,
        url: str,
        *,
        compare_to: str,
        ignore: Sequence[str] = (),
        compare_headers: Iterable[str] = ("content-type",),
        unsafe: bool = False,
        **kw: Any,
    ) -> httpx.Response:
        """Send `method url` to the run's target and to `compare_to`; return the run's
        own response. A difference is a soft step failure with the diff."""
        method = method.upper()
        if method not in SAFE_METHODS and not unsafe:
            raise ShadowError(
                f"shadow {method} {url} refused: only {sorted(SAFE_METHODS)} are sent twice; "
                "pass unsafe=True if sending it to both targets is really harmless"
            )
        try:
            paths = [parse_jsonpath(p) for p in ignore]
        except JSONPathError as exc:
            raise ShadowError(f"shadow ignore={list(ignore)!r}: not JSONPath: {exc}") from None
        ours = await self._ctx.http.request(method, url, **kw)
        theirs = await self._peer(compare_to).request(method, url, **kw)
        diff = differences(ours, theirs, paths, [h.lower() for h in compare_headers])
        name = f"shadow {method} {ours.request.url.path} vs {compare_to}"
        async with self._ctx.step(name, soft=True):
            if diff:
                self.mismatches[compare_to] = self.mismatches.get(compare_to, 0) + 1
                raise StepFailedError(
                    f"{self._ctx.target.name} and {compare_to} answered differently: "
                    + "; ".join(diff)
                )
        return ours


def _json_or_none(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def differences(
    ours: httpx.Response,
    theirs: httpx.Response,
    ignore: Sequence[Any],
    compare_headers: Sequence[str],
) -> list[str]:
    """Human-readable differences between two answers, empty when they agree."""
    out: list[str] = []
    if ours.status_code != theirs.status_code:
        out.append(f"status {ours.status_code} vs {theirs.status_code}")
    out.extend(
        f"header {h}: {ours.headers.get(h)!r} vs {theirs.headers.get(h)!r}"
        for h in compare_headers
        if ours.headers.get(h) != theirs.headers.get(h)
    )
    a, b = _json_or_none(ours), _json_or_none(theirs)
    if a is None or b is None:
        if ours.content != theirs.content:
            out.append(f"body differs ({len(ours.content)} vs {len(theirs.content)} bytes)")
        return out
    for path in ignore:
        a = path.filter(lambda _: True, a)
        b = path.filter(lambda _: True, b)
    diff = DeepDiff(a, b, verbose_level=2)
    if diff:
        lines = diff.pretty().splitlines()
        more = len(lines) - MAX_DIFF_LINES
        out.extend(lines[:MAX_DIFF_LINES])
        if more > 0:
            out.append(f"... {more} more")
    return out
