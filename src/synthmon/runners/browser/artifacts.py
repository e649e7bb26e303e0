"""Failure artifacts on disk: `<root>/<journey>/<run_id>/<file>`, and their retention.

The store knows files, not browsers: the browser runner decides what to capture and
hands text and files to it. Everything textual passes through a `Scrubber` on the
way to disk (the HTML snapshot, console and network logs, and every text entry of a
Playwright trace zip), because artifacts are served over HTTP and kept for days, and
a trace records every value a journey typed, passwords included.

Credentials are kept out by construction where their place is known: the values of
`Authorization`, `Proxy-Authorization`, `Cookie` and `Set-Cookie` headers, cookie
values and `httpCredentials` passwords are replaced by `***` in the trace's network
and action entries, whoever set them (the journey, the target, the account), and any
`Basic ...`/`Bearer ...` credential left in text is masked. The `Scrubber` then masks
the configured secrets in every spelling it knows (docs/safety.md).

Retention (age, runs per journey, total bytes) runs after every write and on a timer,
oldest runs first; run ids start with their start time in milliseconds, so sorting
the folder names sorts the runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("synthmon.runners.browser.artifacts")

Scrubber = Callable[[str], str]


def no_scrub(text: str) -> str:
    return text


MASK = "***"
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
# `Basic <base64>` / `Bearer <token>` anywhere in text (a header echoed into a page, a
# journey's own log line): the scheme stays readable, the credential goes. A token is
# 8+ characters with a digit, `+/=`, or a capital after its first letter, so prose
# ("Basic information") stays.
_CREDENTIAL = re.compile(
    r"\b(Basic|Bearer)(\s+)(?=[A-Za-z0-9._~+/=-]*(?:[0-9+/=]|(?<=.)[A-Z]))"
    r"[A-Za-z0-9._~+/-]{8,}=*"
)


def mask_credentials(obj: Any) -> Any:
    """`obj` (a decoded trace entry) with every credential-carrying value masked:
    `{"name": <credential header>, "value": ...}` pairs (Playwright's header lists),
    `{<credential header>: ...}` mappings, every cookie's `value`, and the `password`
    of `httpCredentials`."""
    if isinstance(obj, list):
        return [mask_credentials(item) for item in obj]
    if not isinstance(obj, dict):
        return obj
    out: dict[str, Any] = {}
    name = obj.get("name")
    is_header = isinstance(name, str) and name.lower() in CREDENTIAL_HEADERS
    for key, value in obj.items():
        lowered = key.lower()
        if (key == "value" and is_header) or (
            lowered in CREDENTIAL_HEADERS and isinstance(value, str)
        ):
            out[key] = MASK
        elif lowered == "cookies" and isinstance(value, list):
            out[key] = [_mask_cookie(c) for c in value]
        elif lowered == "httpcredentials" and isinstance(value, dict):
            out[key] = {**value, "password": MASK} if "password" in value else value
        else:
            out[key] = mask_credentials(value)
    return out


def _mask_cookie(cookie: Any) -> Any:
    if isinstance(cookie, dict) and "value" in cookie:
        return {**cookie, "value": MASK}
    return mask_credentials(cookie)


def artifact_text(text: str, scrub: Scrubber) -> str:
    """Text on its way into an artifact: configured secrets (`scrub`), then any
    `Basic`/`Bearer` credential."""
    return _CREDENTIAL.sub(rf"\1\2{MASK}", scrub(text))


def _trace_lines(text: str) -> str:
    """A JSON-lines trace entry (trace.trace, trace.network) with credentials masked;
    a line that is not JSON stays as it is (the text scrub still applies)."""
    out = []
    for line in text.split("\n"):
        try:
            event = json.loads(line)
        except ValueError:
            out.append(line)
            continue
        masked = mask_credentials(event)
        # Lines without credentials stay byte for byte as Playwright wrote them.
        out.append(
            line
            if masked == event
            else json.dumps(masked, ensure_ascii=False, separators=(",", ":"))
        )
    return "\n".join(out)


@dataclass(frozen=True, slots=True)
class RunFolder:
    journey: str
    run_id: str
    path: Path
    started: float  # epoch seconds
    size: int


def safe_component(name: str) -> str:
    """A journey name or run id as one path component: never '.', '..' or a separator."""
    cleaned = name.replace("/", "_").replace("\\", "_").replace("\x00", "_")
    if cleaned in ("", ".", ".."):
        cleaned = f"_{cleaned}"
    return cleaned


def run_started(run_id: str, fallback: float) -> float:
    """The start time encoded in a run id (48-bit ms prefix), else `fallback`."""
    try:
        return int(run_id[:12], 16) / 1000.0
    except ValueError:
        return fallback


class ArtifactStore:
    def __init__(
        self,
        root: Path,
        *,
        max_age: float = 7 * 86400.0,
        max_runs_per_journey: int = 50,
        max_total_bytes: int = 1024 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root
        self.max_age = max_age
        self.max_runs_per_journey = max_runs_per_journey
        self.max_total_bytes = max_total_bytes
        self._clock = clock

    def run_dir(self, journey: str, run_id: str) -> Path:
        path = self.root / safe_component(journey) / safe_component(run_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write_text(self, folder: Path, name: str, text: str, scrub: Scrubber = no_scrub) -> Path:
        path = folder / name
        path.write_text(artifact_text(text, scrub), encoding="utf-8")
        return path

    # -- retention -----------------------------------------------------------------

    def runs(self) -> list[RunFolder]:
        """Every run folder, oldest first."""
        found: list[RunFolder] = []
        if not self.root.is_dir():
            return found
        for jdir in self.root.iterdir():
            if not jdir.is_dir() or jdir.is_symlink():
                continue
            for rdir in jdir.iterdir():
                if not rdir.is_dir() or rdir.is_symlink():
                    continue
                try:
                    mtime = rdir.stat().st_mtime
                except FileNotFoundError:
                    continue
                found.append(
                    RunFolder(
                        jdir.name, rdir.name, rdir, run_started(rdir.name, mtime), _size(rdir)
                    )
                )
        found.sort(key=lambda r: (r.started, r.run_id))
        return found

    def enforce(self) -> list[RunFolder]:
        """Delete what the limits do not allow, oldest first; return what was deleted."""
        runs = self.runs()
        doomed: dict[Path, RunFolder] = {}
        cutoff = self._clock() - self.max_age
        for r in runs:
            if r.started < cutoff:
                doomed[r.path] = r
        per_journey: dict[str, list[RunFolder]] = {}
        for r in runs:
            if r.path not in doomed:
                per_journey.setdefault(r.journey, []).append(r)
        for kept in per_journey.values():
            for r in kept[: max(0, len(kept) - self.max_runs_per_journey)]:
                doomed[r.path] = r
        total = sum(r.size for r in runs if r.path not in doomed)
        for r in runs:
            if total <= self.max_total_bytes:
                break
            if r.path not in doomed:
                doomed[r.path] = r
                total -= r.size
        for r in doomed.values():
            shutil.rmtree(r.path, ignore_errors=True)
            with contextlib.suppress(OSError):
                r.path.parent.rmdir()  # only succeeds once the journey folder is empty
        if doomed:
            log.info(
                "artifacts_pruned", runs=len(doomed), bytes=sum(r.size for r in doomed.values())
            )
        return list(doomed.values())


def scrub_zip(path: Path, scrub: Scrubber) -> None:
    """Rewrite the trace zip at `path`: credential headers, cookies and
    httpCredentials masked in its JSON-lines entries (`*.trace`, `*.network`), then
    `artifact_text` on every entry that decodes as UTF-8 (trace events, network log,
    resources, HTML snapshots); binary entries (screenshots) are copied as they are.
    Atomic: the original is replaced only once complete."""
    fd, tmp_name = tempfile.mkstemp(prefix=".scrub-", suffix=".zip", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with (
            zipfile.ZipFile(path) as src,
            zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as dst,
        ):
            for info in src.infolist():
                data = src.read(info)
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    dst.writestr(info, data)
                    continue
                if info.filename.endswith((".trace", ".network")):
                    text = _trace_lines(text)
                dst.writestr(info, artifact_text(text, scrub).encode("utf-8"))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _size(folder: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(dirpath, f)).st_size
    return total
