"""A network namespace of our own, so requests really come from a non-loopback
address: `ip netns add`, a veth pair inside it (both ends, both addresses ours), and
helpers to run processes in it. Root only; skipped with the reason elsewhere."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

SERVER_ADDR = "10.199.0.1"  # on veth end "a", inside our namespace only
CLIENT_ADDR = "10.199.0.2"  # on veth end "b", inside our namespace only

# Runs in the namespace: waits for each server's /healthz, then does the requests
# from CLIENT_ADDR and prints [status, body] per request as JSON.
CLIENT = """
import json, sys, time, httpx
spec = json.loads(sys.argv[1])
t = httpx.HTTPTransport(local_address=spec["source"])
out = []
with httpx.Client(transport=t, timeout=10, trust_env=False, follow_redirects=True) as c:
    for base in spec["wait"]:
        deadline = time.monotonic() + 60
        while True:
            try:
                if c.get(base + "/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{base} did not answer /healthz")
            time.sleep(0.1)
    for url, headers in spec["requests"]:
        r = c.get(url, headers=headers)
        out.append([r.status_code, r.text[:200_000]])
print(json.dumps(out))
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Namespace:
    name: str

    def popen(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *argv], **kw)

    def get(
        self, requests: list[tuple[str, dict[str, str]]], wait: Sequence[str] = ()
    ) -> list[tuple[int, str]]:
        """GET each (url, headers) from CLIENT_ADDR inside the namespace."""
        spec = json.dumps({"source": CLIENT_ADDR, "wait": list(wait), "requests": requests})
        done = subprocess.run(
            ["ip", "netns", "exec", self.name, sys.executable, "-c", CLIENT, spec],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return [(int(s), b) for s, b in json.loads(done.stdout)]


@contextlib.contextmanager
def network_namespace() -> Iterator[Namespace]:
    """A fresh namespace with lo up and a veth pair carrying SERVER_ADDR and
    CLIENT_ADDR; deleted afterwards (with its links)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to create a network namespace")
    name = f"smfa-{secrets.token_hex(4)}"
    try:
        _ip("netns", "add", name)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create a network namespace here: {exc.stderr.strip()}")
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "link", "add", "va", "type", "veth", "peer", "name", "vb")
        _ip("-n", name, "addr", "add", f"{SERVER_ADDR}/24", "dev", "va")
        _ip("-n", name, "addr", "add", f"{CLIENT_ADDR}/24", "dev", "vb")
        _ip("-n", name, "link", "set", "va", "up")
        _ip("-n", name, "link", "set", "vb", "up")
        yield Namespace(name)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
