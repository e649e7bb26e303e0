"""Generic JSON webhook: the body is `Alert.to_json()` (schema in docs/alerting.md)."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from synthmon.alerting.alert import Alert
from synthmon.alerting.notifiers._http import post_json


class WebhookNotifier:
    def __init__(self, name: str, url: SecretStr, *, client: httpx.AsyncClient) -> None:
        self.name = name
        self._url = url
        self._client = client

    def payload(self, alert: Alert) -> dict[str, Any]:
        return alert.to_json()

    async def send(self, alert: Alert) -> None:
        await post_json(
            self._client,
            self.name,
            self._url.get_secret_value(),
            self.payload(alert),
            where=f"<{self.name} url>",
        )
