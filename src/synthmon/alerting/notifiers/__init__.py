"""Notifiers: each turns an `Alert` into one receiver's format and hands it over.

A notifier is `async send(alert)`; it raises `DeliveryError` when the receiver did not
take it (the outbox retries), and nothing else.
"""

from __future__ import annotations

from typing import Protocol

from synthmon.alerting.alert import Alert


class Notifier(Protocol):
    async def send(self, alert: Alert) -> None: ...
