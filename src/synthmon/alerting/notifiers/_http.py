"""One POST with httpx, translated into `DeliveryError`.

Bodies are compact UTF-8 JSON with keys in the documented order
(`json.dumps(body, separators=(",", ":"), ensure_ascii=False)`), so receivers and
tests can rely on the exact bytes.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from synthmon.errors import DeliveryError


async def post_json(
    client: httpx.AsyncClient, notifier: str, url: str, body: Any, *, where: str | None = None
) -> httpx.Response:
    # `where` replaces the URL in errors: webhook URLs carry their secret in the path.
    shown = where or url
    try:
        response = await client.post(
            url,
            content=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
            headers={"Content-Type": "application/json"},
        )
    except httpx.HTTPError as exc:
        raise DeliveryError(notifier, f"POST {shown} failed: {type(exc).__name__}: {exc}") from exc
    if response.status_code >= 300:
        # 4xx other than 429 will not get better by retrying the same body.
        retryable = response.status_code in (408, 429) or response.status_code >= 500
        raise DeliveryError(
            notifier,
            f"POST {shown} answered {response.status_code}: {response.text[:300]}",
            retryable=retryable,
        )
    return response
