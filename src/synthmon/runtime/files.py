"""One way to replace a file: write the new version beside it, then rename it over the
old one. Readers (and a crash half-way) see the old file or the new one, never a torn
mix; the pause state, scrubbed traces and artifacts all go through here."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any], *, durable: bool = False) -> None:
    """Replace `path` with what `write` writes to a temporary file in the same folder.
    `durable`: fsync before the rename, for state that must survive a power cut (the
    pause rules), not for artifacts that can be lost."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
