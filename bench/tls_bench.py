"""TLS certificates (issue 15): what reading the certificate off the run's own
connection costs, against a local HTTPS server with a certificate chain made here.

  (a) CPU per run of an HTTPS run as the runner makes it (fresh client, handshake, two
      requests), with and without the TLS capture, alternating off/on so machine load
      drifts hit both sides alike;
  (b) the pieces: the first response of a host in a run (chain read + cache hit), a
      further response of the same host, and a parse (only when the chain changed).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.tls.pki

from sizes import Size
from tests.tls.pki import Pki, tls_server

from synthmon.runners.tls import ChainCache, TlsCapture, parse_chain, presented_chain


def per_call_us(fn: Callable[[], object], n: int) -> float:
    t0 = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t0) / n * 1e6


async def runs_cpu_ms(url: str, ctx: object, n: int, capture: bool) -> float:
    cache = ChainCache()
    t0 = time.process_time()
    for _ in range(n):
        tls = TlsCapture(cache)
        async with httpx.AsyncClient(verify=ctx) as client:  # type: ignore[arg-type]
            for path in ("/", "/again"):
                r = await client.get(url + path)
                if capture:
                    tls(r.request, r)
    return (time.process_time() - t0) / n * 1e3


async def main(size: Size) -> dict[str, Any]:
    runs = size.pick(500, 100, 3)
    calls = size.pick(200_000, 20_000, 200)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        pki = Pki.make(Path(tmp), leaf_days=30, intermediate_days=10)
        ctx = pki.client_context()
        async with tls_server(pki) as server:
            off: list[float] = []
            on: list[float] = []
            for _ in range(2):
                off.append(await runs_cpu_ms(server.url, ctx, runs, capture=False))
                on.append(await runs_cpu_ms(server.url, ctx, runs, capture=True))
            print(f"(a) CPU per HTTPS run (handshake + 2 requests), {runs} runs x 2 rounds")
            print(f"    capture off  {sum(off) / len(off):7.3f} ms   rounds {off}")
            print(f"    capture on   {sum(on) / len(on):7.3f} ms   rounds {on}")
            print(f"    difference   {(sum(on) - sum(off)) / len(on) * 1000:+7.1f} us per run")
            out["runs_cpu_ms"] = {"off": off, "on": on}

            async with httpx.AsyncClient(verify=ctx) as client:
                r = await client.get(server.url)
                cache = ChainCache()

                def first() -> None:
                    TlsCapture(cache)(r.request, r)

                seen = TlsCapture(cache)
                seen(r.request, r)
                stream = r.extensions["network_stream"]
                ders, complete = presented_chain(stream.get_extra_info("ssl_object"))
                out["first_us"] = per_call_us(first, calls)
                out["further_us"] = per_call_us(lambda: seen(r.request, r), calls)
                out["parse_us"] = per_call_us(
                    lambda: parse_chain("h", ders, complete), calls // 100
                )
                out["parses"] = cache.parses
                print("(b) pieces, CPU per call")
                print(f"    first response of a host in a run  {out['first_us']:6.2f} us")
                print(f"    further response, same host       {out['further_us']:6.2f} us")
                print(f"    parse (only when the chain changes) {out['parse_us']:6.1f} us")
                print(f"    parses after all that: {cache.parses}")
    return out


if __name__ == "__main__":
    asyncio.run(main(Size.of(quick="--quick" in sys.argv)))
