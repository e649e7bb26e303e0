"""The certificates an HTTP run's own HTTPS connections presented: no extra connection.

httpcore hands every response the connection it came over
(`response.extensions["network_stream"]`), whose `get_extra_info("ssl_object")` is
the live `ssl.SSLObject`. The presented chain is read off it:

- Python 3.13+: `SSLObject.get_unverified_chain()` (public, DER bytes);
- Python 3.10-3.12: the same method of the underlying `_ssl._SSLSocket`
  (`ssl_object._sslobj`), private but present since 3.10, returning certificate
  objects we turn into DER;
- neither (another TLS stack): the leaf alone (`getpeercert(binary_form=True)`), the
  chain marked incomplete. An extra connection would not help: it would go through the
  same stack. docs/metrics.md ("TLS certificates") records this decision.

"Unverified" is the chain as the server sent it, which is what the issue asks for
(earliest expiry *in the presented chain*) and works with `verify_tls = false` too.

Per run, the first response of each host reads the chain (a few microseconds); the
parse with `cryptography` happens once per distinct chain (`ChainCache`), so a run
against an unchanged certificate costs a dict lookup.
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections import OrderedDict
from typing import Any

import httpx
import structlog
from cryptography import x509

from synthmon.model import TlsChain

log = structlog.get_logger("synthmon.tls")

ENCODING_DER = 2  # _ssl.ENCODING_DER: Certificate.public_bytes(2) is DER


def presented_chain(ssl_object: ssl.SSLObject) -> tuple[tuple[bytes, ...], bool]:
    """The DER certificates the peer presented, leaf first, and whether that is the
    whole chain (False: the leaf only, no chain API here)."""
    raw: list[Any] | None = None
    public = getattr(ssl_object, "get_unverified_chain", None)  # Python 3.13+
    if public is not None:
        raw = public()
    else:
        private = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
        if private is not None:
            raw = private()
    if raw:
        return tuple(c if isinstance(c, bytes) else c.public_bytes(ENCODING_DER) for c in raw), True
    leaf = ssl_object.getpeercert(binary_form=True)
    return ((leaf,), False) if leaf else ((), False)


def host_label(url: httpx.URL) -> str:
    """`shop.example`, or `shop.example:8443` when the port is not the default."""
    host = url.host
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    return f"{host}:{url.port}" if url.port is not None else host


def _sans(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    names: list[str] = list(ext.get_values_for_type(x509.DNSName))
    names.extend(str(ip) for ip in ext.get_values_for_type(x509.IPAddress))
    return tuple(names)


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat()


def _serial(n: int) -> str:
    text = f"{n:X}"
    return text if len(text) % 2 == 0 else "0" + text


def parse_chain(host: str, ders: tuple[bytes, ...], complete: bool) -> TlsChain:
    """Summarise a presented chain (leaf first). Raises ValueError on a certificate
    `cryptography` cannot read."""
    certs = [x509.load_der_x509_certificate(der) for der in ders]
    leaf = certs[0]
    earliest = min(certs, key=lambda c: c.not_valid_after_utc)
    return TlsChain(
        host=host,
        leaf_not_after=leaf.not_valid_after_utc.timestamp(),
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        serial=_serial(leaf.serial_number),
        sans=_sans(leaf),
        earliest_not_after=earliest.not_valid_after_utc.timestamp(),
        earliest_subject=earliest.subject.rfc4514_string(),
        earliest_issuer=earliest.issuer.rfc4514_string(),
        chain_length=len(certs),
        chain_complete=complete,
    )


class ChainCache:
    """Parsed chains by (host, DER bytes): parsing happens when a host's certificate
    changes, not per run. Bounded (least recently used go first); a chain that cannot
    be parsed is remembered as such. Unreadable hosts are logged once. Never raises."""

    def __init__(self, max_entries: int = 512) -> None:
        self._max = max_entries
        self._parsed: OrderedDict[tuple[str, tuple[bytes, ...], bool], TlsChain | None] = (
            OrderedDict()
        )
        self.parses = 0  # how often a chain was parsed (bench/tests: once per change)
        self._unreadable: set[str] = set()

    def unreadable(self, host: str, exc: BaseException) -> None:
        """Log that `host`'s certificates could not be read, once per host."""
        if host not in self._unreadable:
            self._unreadable.add(host)
            log.warning("tls_chain_unreadable", host=host, error=f"{type(exc).__name__}: {exc}")

    def summary(self, host: str, ders: tuple[bytes, ...], complete: bool) -> TlsChain | None:
        if not ders:
            return None
        key = (host, ders, complete)
        if key in self._parsed:
            self._parsed.move_to_end(key)
            return self._parsed[key]
        self.parses += 1
        chain: TlsChain | None
        try:
            chain = parse_chain(host, ders, complete)
        except Exception as exc:  # noqa: BLE001 - a strange certificate never fails a run
            # cryptography raises ValueError and a few of its own (DuplicateExtension):
            # whatever a strange certificate does, the journey's request must not fail.
            self.unreadable(host, exc)
            chain = None
        else:
            # Once per host at start, then once per renewal: a deployed certificate
            # shows in the log the first time a run meets it.
            log.info(
                "tls_certificate_seen",
                host=host,
                subject=chain.subject,
                issuer=chain.issuer,
                not_after=_iso(chain.leaf_not_after),
                earliest_not_after=_iso(chain.earliest_not_after),
                earliest_subject=chain.earliest_subject,
            )
        self._parsed[key] = chain
        if len(self._parsed) > self._max:
            self._parsed.popitem(last=False)
        return chain


class TlsCapture:
    """What one run's HTTPS connections presented, one chain per host: called with
    every response of the run's ctx.http (TaggingTransport's `on_response`)."""

    def __init__(self, cache: ChainCache) -> None:
        self._cache = cache
        self._hosts: dict[str, TlsChain | None] = {}

    def __call__(self, request: httpx.Request, response: httpx.Response) -> None:
        if request.url.scheme != "https":
            return
        host = host_label(request.url)
        if host in self._hosts:
            return  # this run read the host's chain already: one read per host per run
        stream = response.extensions.get("network_stream")
        try:
            ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
            if ssl_object is None:
                return  # a transport without a live connection (tests' MockTransport)
            ders, complete = presented_chain(ssl_object)
        except Exception as exc:  # noqa: BLE001 - reading certificates never fails a request
            self._cache.unreadable(host, exc)
            self._hosts[host] = None
            return
        self._hosts[host] = self._cache.summary(host, ders, complete)

    @property
    def chains(self) -> tuple[TlsChain, ...]:
        return tuple(c for c in self._hosts.values() if c is not None)
