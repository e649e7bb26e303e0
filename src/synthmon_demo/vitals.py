"""Pages with known Web Vitals, for browser journeys and tests of their measurement.

/vitals/fast        small, no shift; its #quick button answers at once (good band)
/vitals/slow-hero   text at once, then a large hero image that arrives after
                    ``HERO_DELAY`` seconds: LCP >= 3 s ("needs improvement")
/vitals/hero.png    that image (high entropy, so Chromium counts it for LCP)
/vitals/shifty      a banner inserted above the content 300 ms after load: CLS
                    about 0.17 at 1280x800 ("needs improvement"); its #slow button
                    blocks the main thread for 300 ms: INP >= 300 ms
"""

from __future__ import annotations

import asyncio
import random
import struct
import zlib
from functools import cache
from typing import Final

from aiohttp import web

HERO_DELAY: Final = 3.0
SLOW_CLICK_MS: Final = 300

_STYLE = (
    "<style>body{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;"
    "padding:0 1rem}#content{min-height:1200px}#banner{height:400px;background:#fde}"
    "img{display:block}</style>"
)


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title} - Demo Shop</title>{_STYLE}"
        '<script src="/static/app.js" defer></script></head>'
        f'<body><nav><a href="/">Home</a></nav>{body}</body></html>\n'
    )


FAST = _page(
    "Fast page",
    '<main id="content"><h1>Fast page</h1><p>Everything here arrives at once.</p>'
    '<button id="quick" onclick="this.textContent = \'done\'">Quick</button></main>',
)

SLOW_HERO = _page(
    "Slow hero",
    '<main><h1>Today\'s offer</h1><img id="hero" src="/vitals/hero.png" '
    'width="400" height="240" alt="offer"></main>',
)

SHIFTY = _page(
    "Shifty page",
    '<div id="slot"></div><main id="content"><h1>Shifty page</h1>'
    "<p>An ad banner pushes this text down after the page has loaded.</p>"
    '<button id="slow">Slow</button></main>'
    "<script>"
    "addEventListener('load', () => setTimeout(() => {"
    "  const b = document.createElement('div'); b.id = 'banner'; b.textContent = 'Ad';"
    "  document.getElementById('slot').appendChild(b);"
    "}, 300));"
    "document.getElementById('slow').addEventListener('click', (e) => {"
    f"  const end = performance.now() + {SLOW_CLICK_MS};"
    "  while (performance.now() < end) {}"
    "  e.target.textContent = 'done';"
    "});"
    "</script>",
)


@cache
def hero_png(width: int = 400, height: int = 240) -> bytes:
    """An RGB PNG of noise: Chromium leaves low-entropy images (a flat colour) out of
    LCP, so the hero must carry real bits per pixel."""
    noise = random.Random(15).randbytes  # noqa: S311 - pixels, not secrets
    raw = b"".join(b"\x00" + noise(width * 3) for _ in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _html(text: str) -> web.Response:
    return web.Response(text=text, content_type="text/html")


async def _fast(request: web.Request) -> web.Response:
    return _html(FAST)


async def _slow_hero(request: web.Request) -> web.Response:
    return _html(SLOW_HERO)


async def _shifty(request: web.Request) -> web.Response:
    return _html(SHIFTY)


async def _hero(request: web.Request) -> web.Response:
    # Made off the loop (the first time it takes a noticeable fraction of a second).
    body, _ = await asyncio.gather(asyncio.to_thread(hero_png), asyncio.sleep(HERO_DELAY))
    return web.Response(body=body, content_type="image/png", headers={"Cache-Control": "no-store"})


def install(app: web.Application) -> None:
    add = app.router
    add.add_get("/vitals/fast", _fast)
    add.add_get("/vitals/slow-hero", _slow_hero)
    add.add_get("/vitals/hero.png", _hero)
    add.add_get("/vitals/shifty", _shifty)
