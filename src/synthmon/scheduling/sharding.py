"""Splitting the (journey, target) pairs between replicas: rendezvous hashing.

Each replica knows only its own index and the replica count (`shard = "2/5"`, or
`"auto/5"` to take the index from a StatefulSet pod name such as `synthmon-2`). A pair
belongs to the shard whose weight for it is highest (highest-random-weight hashing):

- every pair is owned by exactly one shard, with no coordination between replicas;
- going from N to N+1 replicas moves only the pairs the new shard wins, about
  1/(N+1) of them; nothing moves between the old shards, so their metrics series
  and alert state stay where they were.

Pure functions, no I/O apart from reading the host name in `current_hostname`.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

V = TypeVar("V")

_SPEC = re.compile(r"^\s*(?P<index>\d+|auto)\s*/\s*(?P<count>\d+)\s*$")
# A StatefulSet pod is named <statefulset>-<ordinal>.
_ORDINAL = re.compile(r"-(\d+)$")


@dataclass(frozen=True, slots=True)
class Shard:
    """This replica's place among `count` replicas (index 0..count-1)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"shard count must be at least 1, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(
                f"shard index {self.index} is outside 0..{self.count - 1} "
                f"(indices count from 0: the shards of {self.count} are "
                f"0/{self.count} .. {self.count - 1}/{self.count})"
            )

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, key: str) -> bool:
        return owner(key, self.count) == self.index

    def owns_pair(self, journey: str, target: str) -> bool:
        # The same key as daemon.pair_key: the daemon and `synthmon check` must agree.
        return self.owns(f"{journey}@{target}")


def weight(key: str, index: int) -> int:
    """The pseudo-random weight of `key` on shard `index` (stable across processes,
    Python versions and machines: never Python's salted `hash()`)."""
    digest = hashlib.blake2b(f"{index}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(key: str, count: int) -> int:
    """The index of the shard among `count` that owns `key`."""
    return max(range(count), key=lambda i: weight(key, i))


def owned(pairs: Mapping[str, V], shard: Shard | None) -> dict[str, V]:
    """The entries of `pairs` (keyed by "journey@target") that `shard` owns; all of
    them when there is no sharding."""
    if shard is None or shard.count == 1:
        return dict(pairs)
    return {k: v for k, v in pairs.items() if shard.owns(k)}


def moved_fraction(keys: Iterable[str], before: int, after: int) -> float:
    """Which fraction of `keys` changes owner when the replica count changes."""
    keys = list(keys)
    if not keys:
        return 0.0
    moved = sum(1 for k in keys if owner(k, before) != owner(k, after))
    return moved / len(keys)


def current_hostname() -> str:
    # Kubernetes sets HOSTNAME to the pod name; elsewhere ask the kernel.
    return os.environ.get("HOSTNAME") or socket.gethostname()


def parse_shard(spec: str, hostname: str | None = None) -> Shard:
    """`"2/5"` → Shard(2, 5); `"auto/5"` takes the index from the trailing `-<n>` of
    `hostname` (a StatefulSet pod name). Raises ValueError saying what to write."""
    m = _SPEC.match(spec)
    if m is None:
        raise ValueError(
            f"expected INDEX/COUNT such as '2/5' (shard 2 of 5, counting from 0) or "
            f"'auto/5' (index from the StatefulSet pod name), got {spec!r}"
        )
    count = int(m["count"])
    if m["index"] != "auto":
        return Shard(int(m["index"]), count)
    host = hostname if hostname is not None else current_hostname()
    found = _ORDINAL.search(host)
    if found is None:
        raise ValueError(
            f"shard 'auto/{count}' takes the index from a StatefulSet pod name ending in "
            f"'-<ordinal>' (e.g. 'synthmon-2'), but the host name is {host!r}; "
            f"set an explicit shard such as '0/{count}'"
        )
    index = int(found[1])
    if index >= count:
        raise ValueError(
            f"pod {host!r} has ordinal {index} but shard is 'auto/{count}': the "
            f"StatefulSet runs more replicas than the shard count; keep the count in "
            f"the shard setting equal to spec.replicas"
        )
    return Shard(index, count)
