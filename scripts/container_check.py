"""`make container-check`: the image's runtime stage started and checked without Docker.

Builds the runtime stage's file system from the Dockerfile (scripts/image_replay.py:
debootstrap plus the stage's lines replayed, cached as layers in $CONTAINER_CHECK_DIR,
default /var/tmp/synthmon-container-check). Then it starts the image's exact
ENTRYPOINT + CMD as the image's USER with tini as PID 1, in new mount and PID
namespaces with the root pivoted into that file system, the example config and
journeys where the container mounts them, and the config's `{ env = ... }` secrets
passed as environment variables, as `docker run -e NAME` does (`make container-check`
exports the demo shop's values, the Makefile's DEMO_SECRETS). It checks, failing loudly
on the first miss:

- no compilers in the stage;
- /healthz answers, and the HEALTHCHECK command passes inside the container;
- tini is PID 1 and the daemon runs as the image's (non-root) user;
- Chromium starts sandboxed as that user (`chromium --dump-dom`, no --no-sandbox);
- every example journey runs once and succeeds against the demo shop, the browser
  journey included: the daemon's own Chromium runs sandboxed as that user (its
  processes sit in a user namespace of their own) and the accounts' secrets arrived;
- STOPSIGNAL makes the daemon exit 0 after `shutdown_complete`.

The first run costs minutes (debootstrap, Chromium from the Debian mirror); later runs
install the wheel, then wait for the journeys' first runs (spread over their first
interval). The listen address moves to loopback on a free port; the network
namespace is the host's (only loopback is used).

Needs root, debootstrap, overlayfs, user namespaces, and network access to the Debian
mirror and PyPI (the first time and when a key changes).
"""

# This script's job is running system tools as root on paths it builds itself:
# ruff: noqa: S603, S108
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from image_replay import (
    ROOT,
    Healthcheck,
    Replay,
    build_wheel,
    cacheable_prefix,
    ensure_base,
    ensure_deps,
    ensure_stage,
    ensure_wheelhouse,
    exec_form,
    healthcheck_of,
    load_image,
    locked,
    no_compilers,
    overlay,
    prune,
    remove,
    say,
)

CONFIG = ROOT / "config.example.toml"
# The demo shop to run the journeys against: its own top-level package after the
# layout refactor, a synthmon subpackage before it. The first one importable wins.
DEMO_MODULES = ("synthmon_demo", "synthmon.demo")
CHROMIUM_FLAGS = [
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


# --- running the image ------------------------------------------------------------

# A container without a runtime: new mount and PID namespaces, the root file system
# pivoted (not chroot(2): the kernel refuses user namespaces, hence Chromium's sandbox,
# inside a chroot), /dev, a 1 GB /dev/shm (`--shm-size 1g`), read-only /sys, a fresh
# /proc, then the image's user in its WORKDIR with only the container's environment.
# The shell runs on the host side until pivot_root; after it, mount, umount and
# setpriv come from the image.
_ENTER = """
mount --make-rprivate /
mount --rbind "$ROOTFS" "$ROOTFS"
mount --rbind /dev "$ROOTFS/dev"
mount -t tmpfs -o size=1g,mode=1777,nosuid,nodev shm "$ROOTFS/dev/shm"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$ROOTFS/sys"
cd "$ROOTFS"
mkdir -p .oldroot
pivot_root . .oldroot
mount -t proc proc /proc
umount -l /.oldroot
rmdir /.oldroot 2>/dev/null || true
cd "$WORKDIR_"
uid=$UID_ gid=$GID_
unset ROOTFS UID_ GID_ WORKDIR_
exec setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$@"
"""


@dataclass
class Container:
    rootfs: Path
    user: str
    workdir: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    def argv(self, command: list[str]) -> list[str]:
        uid, _, gid = self.user.partition(":")
        return [
            *("unshare", "--mount", "--pid", "--fork", "--kill-child", "/usr/bin/env", "-i"),
            f"ROOTFS={self.rootfs}",
            f"UID_={uid}",
            f"GID_={gid or uid}",
            f"WORKDIR_={self.workdir}",
            *(f"{k}={v}" for k, v in self.env.items()),
            *("/bin/sh", "-ec", _ENTER, "container", *command),
        ]

    def start(self, command: list[str], log: Any) -> None:
        # The host side needs a PATH until pivot_root; the container's env has one.
        self.proc = subprocess.Popen(self.argv(command), stdout=log, stderr=subprocess.STDOUT)

    @property
    def init_pid(self) -> int:
        """The host PID of the container's PID 1."""
        assert self.proc is not None
        return children(self.proc.pid)[0]

    def exec(self, command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """`docker exec`: the command in the running container's namespaces, root and
        working directory, as its user, with its environment."""
        uid, _, gid = self.user.partition(":")
        return subprocess.run(
            [
                *("nsenter", "--target", str(self.init_pid), "--mount", "--pid"),
                *("--root", "--wd", "--", "setpriv", f"--reuid={uid}", f"--regid={gid or uid}"),
                *("--clear-groups", "--", "/usr/bin/env", "-i"),
                *(f"{k}={v}" for k, v in self.env.items()),
                *command,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def descendants(pid: int) -> list[int]:
    out = []
    for child in children(pid):
        out += [child, *descendants(child)]
    return out


def status_field(pid: int, name: str) -> list[str]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split()[1:]
    return []


def secret_env(config: Path) -> dict[str, str]:
    """The variables the config's `{ env = "NAME" }` secrets name, from this process's
    environment: what `docker run -e NAME` passes into a container."""
    names: list[str] = []
    files: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if set(node) == {"env"} and isinstance(node["env"], str):
                names.append(node["env"])
            if set(node) == {"file"} and isinstance(node["file"], str):
                files.append(node["file"])
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(tomllib.loads(config.read_text()))
    if files:
        raise SystemExit(f"{config.name} reads secret files {files}: the check passes env only")
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        raise SystemExit(
            f"{config.name} takes secrets from {', '.join(missing)}, not set here: "
            "`make container-check` exports the demo shop's values (DEMO_SECRETS)"
        )
    return {n: os.environ[n] for n in names}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - loopback only
        return json.load(r)


def wait_http(url: str, proc: subprocess.Popen[bytes], within: float = 60) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback only
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"the container exited with {proc.returncode} before {url} answered")
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not answer within {within}s")
        time.sleep(0.3)


def demo_module() -> str:
    for name in DEMO_MODULES:
        with contextlib.suppress(ImportError):
            if importlib.util.find_spec(name) is not None:
                return name
    raise SystemExit(f"no demo shop to run: none of {DEMO_MODULES} imports")


def run_image(rootfs: Path, replay: Replay, secrets: dict[str, str]) -> None:
    meta = replay.meta
    if replay.user is None or replay.user.split(":")[0] in {"0", "root"}:
        raise SystemExit(f"the image runs as {replay.user or 'root'}, not a non-root USER")
    entry, cmd = exec_form(meta["ENTRYPOINT"]), exec_form(meta["CMD"])
    healthcheck = healthcheck_of(meta["HEALTHCHECK"])
    stop_signal = signal.Signals[meta.get("STOPSIGNAL", "SIGTERM")]
    # What the container gets from its mounts: the example config and journeys.
    etc = rootfs / "etc/synthmon"
    etc.mkdir(parents=True, exist_ok=True)
    shutil.copy(CONFIG, etc / "synthmon.toml")
    shutil.copytree(ROOT / "journeys", etc / "journeys", dirs_exist_ok=True)

    shop_port, port = free_port(), free_port()
    env = {
        **replay.env,
        **secrets,
        "SYNTHMON_SERVER__LISTEN": f"127.0.0.1:{port}",
        "SYNTHMON_TARGETS__DEMO__BASE_URL": f"http://127.0.0.1:{shop_port}",
        # HTTP journeys in a worker process (docs/workers.md): proves the image can
        # start one as its user, and that runs pass through it.
        "SYNTHMON_SCHEDULER__WORKERS": "1",
    }
    box = Container(rootfs, replay.user, replay.workdir, env)
    shop = subprocess.Popen(
        [sys.executable, "-m", demo_module(), "--port", str(shop_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    fd, log_name = tempfile.mkstemp(prefix="synthmon-container-", suffix=".log")
    log = os.fdopen(fd, "wb")
    rc = None
    try:
        wait_http(f"http://127.0.0.1:{shop_port}/", shop)
        say(f"starting ENTRYPOINT + CMD as {replay.user}: {' '.join(entry + cmd)}")
        say(f"secrets as environment variables: {', '.join(secrets)}")
        box.start([*entry, *cmd], log)
        assert box.proc is not None
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz", box.proc)
        say("/healthz answers")
        check_healthcheck(box, healthcheck)
        check_init(box)
        check_chromium_sandboxed(box)
        check_journeys(base, box)
        check_worker(base, box)
        check_daemon_browser_sandboxed(box)
        os.kill(box.init_pid, stop_signal)
        rc = box.proc.wait(40)
    except BaseException:
        print(Path(log_name).read_text(errors="replace")[-6000:], file=sys.stderr)
        say(f"the container's log: {log_name}")
        raise
    finally:
        if box.proc is not None and box.proc.poll() is None:
            box.proc.kill()
            box.proc.wait()
        log.close()
        shop.terminate()
        shop.wait()
    text = Path(log_name).read_text(errors="replace")
    if rc != 0 or "shutdown_complete" not in text:
        print(text[-4000:], file=sys.stderr)
        raise SystemExit(
            f"{stop_signal.name}: exit {rc}, expected 0 with shutdown_complete (log: {log_name})"
        )
    Path(log_name).unlink()
    say(f"{stop_signal.name} -> exit 0, shutdown complete")


def check_healthcheck(box: Container, hc: Healthcheck) -> None:
    """The HEALTHCHECK command passes inside the container, by Docker's rule: healthy
    at the first pass, unhealthy after `--retries` failures in a row, each attempt cut
    at `--timeout` (Docker waits `--interval` between attempts; this does not)."""
    failures = []
    for attempt in range(1, hc.retries + 1):
        t0 = time.monotonic()
        try:
            out = box.exec(hc.command, timeout=hc.timeout)
        except subprocess.TimeoutExpired as exc:
            output = b"".join(
                x if isinstance(x, bytes) else (x or "").encode() for x in (exc.stdout, exc.stderr)
            )
            failures.append(
                f"attempt {attempt}: cut at --timeout={hc.timeout:g}s after "
                f"{time.monotonic() - t0:.1f}s: {output.decode(errors='replace').strip()[-500:]}"
            )
            continue
        took = time.monotonic() - t0
        if out.returncode == 0:
            say(f"HEALTHCHECK passes in {took:.1f}s (attempt {attempt}): {' '.join(hc.command)}")
            return
        output = (out.stdout + out.stderr).strip()[-500:]
        failures.append(f"attempt {attempt}: exit {out.returncode} in {took:.1f}s: {output}")
    # Once more without the cut, to say how long it takes (a heavy import, a busy host).
    t0 = time.monotonic()
    out = box.exec(hc.command, timeout=120)
    failures.append(f"untimed: exit {out.returncode} in {time.monotonic() - t0:.1f}s")
    raise SystemExit(
        f"HEALTHCHECK {hc.command} failed {hc.retries} times in a row, so Docker would mark "
        f"the container unhealthy (load average {os.getloadavg()[0]:.1f}):\n  "
        + "\n  ".join(failures)
    )


def check_init(box: Container) -> None:
    init = box.init_pid
    comm = Path(f"/proc/{init}/comm").read_text().strip()
    nspid = status_field(init, "NSpid")
    if comm != "tini" or nspid[-1] != "1":
        raise SystemExit(f"PID 1 of the container is {comm!r} (pid {nspid[-1]}), not tini")
    [daemon] = children(init)
    uids = status_field(daemon, "Uid")
    if "0" in uids:
        raise SystemExit(f"the daemon runs with uids {uids}: root")
    say(f"tini is PID 1; the daemon runs as uid {uids[0]}")


def check_chromium_sandboxed(box: Container) -> None:
    """Chromium starts without --no-sandbox as the image's user: without a usable
    sandbox (user namespaces) it refuses to start at all."""
    out = box.exec(
        ["chromium", *CHROMIUM_FLAGS, "--dump-dom", "data:text/html,<p>sandboxed</p>"],
        timeout=60,
    )
    if "<p>sandboxed</p>" not in out.stdout:
        raise SystemExit(f"Chromium did not start sandboxed as {box.user}:\n{out.stderr[-2000:]}")
    say(f"Chromium starts sandboxed as {box.user}")


def check_journeys(base: str, box: Container) -> None:
    """Every journey runs once (first runs are spread over the first interval) and
    succeeds against the demo shop: proves the browser runner and the secrets."""
    journeys = get_json(f"{base}/api/journeys")["journeys"]
    if not journeys:
        raise SystemExit("the daemon loaded no journeys")
    last_start = max((j["next_run_at"] or time.time()) for j in journeys)
    longest = max(j["timeout_seconds"] for j in journeys)
    within = max(0.0, last_start - time.time()) + longest + 30
    say(f"waiting up to {within:.0f}s for the first run of {len(journeys)} journeys")
    deadline = time.monotonic() + within
    assert box.proc is not None
    while True:
        journeys = get_json(f"{base}/api/journeys")["journeys"]
        done = [j for j in journeys if j["last_result"] is not None]
        if len(done) == len(journeys):
            break
        if box.proc.poll() is not None:
            raise SystemExit(f"the container exited with {box.proc.returncode}")
        if time.monotonic() > deadline:
            names = sorted({j["journey"] for j in journeys} - {j["journey"] for j in done})
            raise SystemExit(f"journeys that never ran within {within:.0f}s: {names}")
        time.sleep(1)
    failed = [j for j in journeys if j["last_result"]["status"] != "success"]
    for j in journeys:
        r = j["last_result"]
        say(
            f"  {j['journey']} ({j['kind']}) on {j['target']}: {r['status']} "
            f"in {r['duration_seconds']:.2f}s{': ' + str(r['error']) if r['error'] else ''}"
        )
    if failed:
        raise SystemExit(f"journeys failed in the container: {[j['journey'] for j in failed]}")
    say("every journey succeeded in the container")


def check_worker(base: str, box: Container) -> None:
    """The HTTP journeys above ran in the daemon's worker process: it is up, a child
    of the daemon, running as the image's user."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as r:  # noqa: S310 - loopback only
        metrics = r.read().decode()
    up = [line for line in metrics.splitlines() if line.startswith("synthmon_workers_up")]
    handed = [
        line
        for line in metrics.splitlines()
        if line.startswith("synthmon_worker_handoff_seconds_count")
    ]
    if not up or float(up[0].split()[-1]) != 1 or not handed or float(handed[0].split()[-1]) < 1:
        raise SystemExit(f"no worker process took the HTTP runs: {up} {handed}")
    workers = []
    for pid in descendants(box.init_pid):
        with contextlib.suppress(OSError):
            if b"synthmon.runners.workers.child" in Path(f"/proc/{pid}/cmdline").read_bytes():
                workers.append(Path(f"/proc/{pid}/status").read_text())
    uids = {line.split()[1] for w in workers for line in w.splitlines() if line.startswith("Uid:")}
    if len(workers) != 1 or "0" in uids:
        raise SystemExit(f"expected one worker process, not as root: {len(workers)}, uids {uids}")
    say(f"HTTP runs went through the worker process (uid {', '.join(sorted(uids))})")


def check_daemon_browser_sandboxed(box: Container) -> None:
    """The daemon's own Chromium (Playwright, launched by the browser runner) runs as
    the image's user without --no-sandbox, its sandboxed processes in a user namespace
    of their own. Looks at every process of the container: tini adopts the ones
    Chromium detaches (crashpad)."""
    init = box.init_pid
    container_userns = os.readlink(f"/proc/{init}/ns/user")
    chromium = []
    for pid in descendants(init):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if "chrom" in os.path.basename(argv[0].decode(errors="replace")):
                chromium.append((pid, argv))
    if not chromium:
        raise SystemExit("no Chromium in the container after its browser journey ran")
    for pid, argv in chromium:
        if b"--no-sandbox" in argv:
            raise SystemExit(f"the daemon's Chromium (pid {pid}) runs with --no-sandbox")
        if "0" in status_field(pid, "Uid"):
            raise SystemExit(f"the daemon's Chromium (pid {pid}) runs as root")
    sandboxed = [
        pid for pid, _ in chromium if os.readlink(f"/proc/{pid}/ns/user") != container_userns
    ]
    if not sandboxed:
        raise SystemExit("none of the daemon's Chromium processes is in a sandbox user namespace")
    say(
        f"the daemon's Chromium: {len(chromium)} processes as uid "
        f"{status_field(chromium[0][0], 'Uid')[0]}, none with --no-sandbox, "
        f"{len(sandboxed)} in a sandbox user namespace"
    )


# --- main -------------------------------------------------------------------------


def main() -> int:
    if os.geteuid() != 0:
        raise SystemExit("container-check needs root (debootstrap, overlayfs, namespaces)")
    for tool in ("debootstrap", "chroot", "unshare", "nsenter", "setpriv"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} missing: apt-get install debootstrap util-linux coreutils")
    image = load_image(ROOT / "Dockerfile")
    secrets = secret_env(CONFIG)
    cache = Path(os.environ.get("CONTAINER_CHECK_DIR", "/var/tmp/synthmon-container-check"))
    cached, rest = cacheable_prefix(image)
    with locked(cache), tempfile.TemporaryDirectory() as tmp:
        prune(cache)
        base = ensure_base(cache, image)
        stage = ensure_stage(cache, base, cached)
        wheel = build_wheel(Path(tmp) / "dist")
        wheelhouse = ensure_wheelhouse(cache, image, wheel)
        deps = ensure_deps(cache, stage, base, wheelhouse)
        layers = [deps, stage, base]
        prune(cache, keep={wheelhouse.parent.name, *(layer.parent.name for layer in layers)})
        scratch = cache / f"run-{os.getpid()}"
        try:
            with overlay(layers, scratch) as (rootfs, _):
                replay = Replay(rootfs=rootfs, dist=wheel.parent, wheel_dir=image.wheel_dir)
                for ins in cached:
                    replay.apply(ins, run=False)
                # pip in the chroot installs from the host's wheelhouse, read-only.
                replay.binds = {"/tmp/wheelhouse": wheelhouse}
                replay.run_env = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/tmp/wheelhouse"}
                for ins in rest:
                    replay.apply(ins, run=True)
                no_compilers(rootfs)
                run_image(rootfs, replay, secrets)
        finally:
            remove(scratch)
    say("OK")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
