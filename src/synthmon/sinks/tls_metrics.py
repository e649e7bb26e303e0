"""TLS certificates the HTTP runs saw, per (target, host): the metrics and /api's view.

    synthmon_tls_cert_not_after_seconds{target,host,position}   leaf | earliest (epoch)
    synthmon_tls_cert_info{target,host,position,subject,issuer} always 1

Four series per HTTPS host a target's journeys reach (docs/metrics.md, "TLS
certificates"). What a pair's runs saw is kept per pair: a host stays while the pair's
runs keep reaching it. A run that saw a host replaces what the pair knew of it; a
*passing* run also drops the hosts it no longer reached (a failed run may have stopped
before them, so it drops nothing). Per (target, host) the series show the freshest
observation of any pair, so a renewed certificate shows as soon as one journey saw it.

A custom Collector over plain dicts (like sinks/shadow_metrics.py): a pair removed
from the catalog is gone at the next scrape by construction. Writers run on the event
loop and replace a pair's dict whole; `collect()` (the render thread) copies before
reading.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric

from synthmon.model import RunResult, TlsChain

log = structlog.get_logger("synthmon.tls")

# A journey reaches a handful of hosts; a wildcard in allowed_hosts must not turn a
# crawl into thousands of series.
MAX_HOSTS_PER_PAIR = 20


@dataclass(frozen=True, slots=True)
class Seen:
    chain: TlsChain
    at: float  # when the run that saw it finished (epoch)


class TlsMetrics:
    """A sink with an inline `record` (in memory) and a prometheus_client Collector."""

    def __init__(self, registry: CollectorRegistry, *, location: str | None = None) -> None:
        self._location = location
        self._pairs: dict[tuple[str, str], dict[str, Seen]] = {}
        self._catalog: set[tuple[str, str]] | None = None
        self._over_cap: set[tuple[str, str]] = set()
        registry.register(self)

    # -- catalog and results ------------------------------------------------------------

    def set_catalog(self, pairs: Iterable[tuple[str, str]]) -> None:
        """The (journey, target) pairs that exist now; what removed pairs saw goes."""
        self._catalog = set(pairs)
        self._pairs = {k: v for k, v in self._pairs.items() if k in self._catalog}

    async def emit(self, result: RunResult) -> None:
        self.record(result)

    def record(self, result: RunResult) -> None:
        key = (result.journey, result.target)
        if self._catalog is not None and key not in self._catalog:
            return  # finished after its pair was removed: do not resurrect it
        known = self._pairs.get(key)
        if not result.tls and (not known or not result.ok):
            return
        finished = result.started_at + result.duration
        # A passing run went everywhere the journey goes: hosts it did not reach are no
        # longer part of it. A failed one may have stopped early: it only adds.
        hosts: dict[str, Seen] = {} if result.ok else dict(known or {})
        for chain in result.tls:
            if chain.host not in hosts and len(hosts) >= MAX_HOSTS_PER_PAIR:
                if key not in self._over_cap:
                    self._over_cap.add(key)
                    log.warning(
                        "tls_hosts_capped",
                        journey=result.journey,
                        target=result.target,
                        host=chain.host,
                        max_hosts=MAX_HOSTS_PER_PAIR,
                    )
                continue
            hosts[chain.host] = Seen(chain, finished)
        if hosts:
            self._pairs[key] = hosts
        else:
            self._pairs.pop(key, None)

    # -- reading ---------------------------------------------------------------------------

    def chains(self, journey: str, target: str) -> tuple[TlsChain, ...]:
        """The chains the pair's runs last saw, by host (the status pages show them)."""
        hosts = self._pairs.get((journey, target), {})
        return tuple(seen.chain for _, seen in sorted(hosts.items()))

    def pair_json(self, journey: str, target: str) -> list[dict[str, Any]]:
        """What the pair's runs last saw, host by host (the `tls` of /api/journeys)."""
        hosts = self._pairs.get((journey, target), {})
        return [tls_json(seen) for _, seen in sorted(hosts.items())]

    def by_host(self) -> dict[tuple[str, str], Seen]:
        """The freshest observation per (target, host) over every pair."""
        out: dict[tuple[str, str], Seen] = {}
        for (_, target), hosts in list(self._pairs.items()):
            for host, seen in list(hosts.items()):
                old = out.get((target, host))
                if old is None or seen.at > old.at:
                    out[(target, host)] = seen
        return out

    def describe(self) -> list[Metric]:
        # Registration must not call collect(): families are built at scrape time.
        return []

    def collect(self) -> Iterator[Metric]:
        ln = ["location"] if self._location else []
        loc = [self._location] if self._location else []
        not_after = GaugeMetricFamily(
            "synthmon_tls_cert_not_after_seconds",
            "When a certificate presented by the host expires (epoch), by position: "
            "leaf, or earliest (the first of the presented chain to expire).",
            labels=["target", "host", "position", *ln],
        )
        info = GaugeMetricFamily(
            "synthmon_tls_cert_info",
            "Subject and issuer (RFC 4514) of the leaf and of the earliest-expiring "
            "certificate the host presented, always 1.",
            labels=["target", "host", "position", "subject", "issuer", *ln],
        )
        for (target, host), seen in sorted(self.by_host().items()):
            c = seen.chain
            not_after.add_metric([target, host, "leaf", *loc], c.leaf_not_after)
            not_after.add_metric([target, host, "earliest", *loc], c.earliest_not_after)
            info.add_metric([target, host, "leaf", c.subject, c.issuer, *loc], 1)
            info.add_metric(
                [target, host, "earliest", c.earliest_subject, c.earliest_issuer, *loc], 1
            )
        yield from (not_after, info)


def tls_json(seen: Seen) -> dict[str, Any]:
    c = seen.chain
    return {
        "host": c.host,
        "observed_at": seen.at,
        "leaf": {
            "not_after": c.leaf_not_after,
            "subject": c.subject,
            "issuer": c.issuer,
            "serial": c.serial,
            "sans": list(c.sans),
        },
        "earliest": {
            "not_after": c.earliest_not_after,
            "subject": c.earliest_subject,
            "issuer": c.earliest_issuer,
        },
        "chain_length": c.chain_length,
        "chain_complete": c.chain_complete,
    }
