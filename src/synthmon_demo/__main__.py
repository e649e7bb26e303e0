"""``python -m synthmon_demo``: serve the demo shop until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from synthmon_demo.shop import serve


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m synthmon_demo",
        description="Serve synthmon's demo shop (a target for example journeys).",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8080,
        help="port to bind, 0 for any free one (default: %(default)s)",
    )
    parser.add_argument(
        "--third-party-origin",
        default=None,
        metavar="URL",
        help="origin of another server; /products then embeds its /static/pixel.gif",
    )
    return parser.parse_args(argv)


async def _run(host: str, port: int, third_party_origin: str | None) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        async with serve(host, port, third_party_origin=third_party_origin) as shop:
            print(f"synthmon demo shop listening on {shop.url}", flush=True)
            await stop.wait()
    except OSError as exc:
        print(f"synthmon demo shop: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    return asyncio.run(_run(args.host, args.port, args.third_party_origin))


if __name__ == "__main__":
    raise SystemExit(main())
