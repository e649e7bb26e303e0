"""The `shard` setting: which of N replicas this one is (`"2/5"`, or `"auto/5"` to take
the index from a StatefulSet pod name such as `synthmon-2`). Parsing and validation
only; which pairs a shard owns is `scheduling.sharding`'s job."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass

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
