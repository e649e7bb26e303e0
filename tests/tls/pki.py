"""Certificates made in the test (with `cryptography`) and a local HTTPS server that
counts the connections it accepts, for the TLS tests (and the series budget).

`Pki` is a root CA, one intermediate and a leaf for 127.0.0.1/localhost, each expiring
when the test says; the server presents leaf + intermediate, as real servers do."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "synthmon tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    not_after: dt.datetime,
    *,
    ca: bool,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(min(now, not_after) - dt.timedelta(days=1))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Pki:
    """A chain root → intermediate → leaf, written as PEM files under `directory`."""

    directory: Path
    root: x509.Certificate
    intermediate: x509.Certificate
    leaf: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey

    @classmethod
    def make(cls, directory: Path, *, leaf_days: float, intermediate_days: float = 400.0) -> Pki:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        root_key, inter_key = (ec.generate_private_key(ec.SECP256R1()) for _ in "ab")
        root = _cert(
            "Test Root", root_key, "Test Root", root_key, now + dt.timedelta(3650), ca=True
        )
        inter = _cert(
            "Test Intermediate",
            inter_key,
            "Test Root",
            root_key,
            now + dt.timedelta(intermediate_days),
            ca=True,
        )
        return cls._issue(directory, root, inter, inter_key, leaf_days)

    def renew(self, directory: Path, *, leaf_days: float) -> Pki:
        """A new leaf from the same intermediate (a renewal; negative days: expired)."""
        return self._issue(
            directory, self.root, self.intermediate, self.intermediate_key, leaf_days
        )

    @classmethod
    def _issue(
        cls,
        directory: Path,
        root: x509.Certificate,
        inter: x509.Certificate,
        inter_key: ec.EllipticCurvePrivateKey,
        leaf_days: float,
    ) -> Pki:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        not_after = now + dt.timedelta(leaf_days)
        leaf = _cert("localhost", leaf_key, "Test Intermediate", inter_key, not_after, ca=False)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "ca.pem").write_bytes(_pem(root))
        (directory / "chain.pem").write_bytes(_pem(leaf) + _pem(inter))
        (directory / "key.pem").write_bytes(
            leaf_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cls(directory, root, inter, leaf, inter_key)

    @property
    def leaf_not_after(self) -> float:
        return self.leaf.not_valid_after_utc.timestamp()

    @property
    def intermediate_not_after(self) -> float:
        return self.intermediate.not_valid_after_utc.timestamp()

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.directory / "chain.pem", self.directory / "key.pem")
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this PKI's root (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.directory / "ca.pem"))


class TlsServer:
    """A minimal HTTPS/1.1 server (keep-alive, 200 "ok" to everything) on 127.0.0.1
    that counts the TLS connections it accepts."""

    def __init__(self, pki: Pki) -> None:
        self.pki = pki
        self.connections = 0
        self.requests = 0
        self._ctx = pki.server_context()
        self._server: asyncio.Server | None = None
        self.port = 0
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def present(self, pki: Pki) -> None:
        """Serve `pki`'s chain on new connections from now on (a renewal)."""
        self.pki = pki
        self._ctx.load_cert_chain(pki.directory / "chain.pem", pki.directory / "key.pem")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            # The loop is ending with the connection still open (a client's keep-alive):
            # end quietly; Python 3.11's stream callback logs a re-raised cancellation.
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._ctx)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()


@contextlib.asynccontextmanager
async def tls_server(pki: Pki) -> AsyncIterator[TlsServer]:
    server = TlsServer(pki)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
