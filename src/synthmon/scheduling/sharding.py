"""Splitting the (journey, target) pairs between replicas: rendezvous hashing.

Each replica knows only its own index and the replica count (`shard = "2/5"`, or
`"auto/5"` to take the index from a StatefulSet pod name such as `synthmon-2`). A pair
belongs to the shard whose weight for it is highest (highest-random-weight hashing):

- every pair is owned by exactly one shard, with no coordination between replicas;
- going from N to N+1 replicas moves only the pairs the new shard wins, about
  1/(N+1) of them; nothing moves between the old shards, so their metrics series
  and alert state stay where they were.

Pure functions, no I/O. The `Shard` value itself is parsed by `config.shard`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TypeVar

from synthmon.config.shard import Shard, parse_shard

__all__ = [
    "Shard",
    "owned",
    "owner",
    "owns",
    "owns_pair",
    "parse_shard",
    "weight",
]

V = TypeVar("V")


def weight(key: str, index: int) -> int:
    """The pseudo-random weight of `key` on shard `index` (stable across processes,
    Python versions and machines: never Python's salted `hash()`)."""
    digest = hashlib.blake2b(f"{index}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(key: str, count: int) -> int:
    """The index of the shard among `count` that owns `key`."""
    return max(range(count), key=lambda i: weight(key, i))


def owns(shard: Shard, key: str) -> bool:
    return owner(key, shard.count) == shard.index


def owns_pair(shard: Shard, journey: str, target: str) -> bool:
    # The same key as execution.pair_key: the daemon and `synthmon check` must agree.
    return owns(shard, f"{journey}@{target}")


def owned(pairs: Mapping[str, V], shard: Shard | None) -> dict[str, V]:
    """The entries of `pairs` (keyed by "journey@target") that `shard` owns; all of
    them when there is no sharding."""
    if shard is None or shard.count == 1:
        return dict(pairs)
    return {k: v for k, v in pairs.items() if owns(shard, k)}
