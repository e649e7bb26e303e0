"""`make container-check`: the image's runtime stage without a Docker engine.

Builds the runtime stage's file system with debootstrap of the Dockerfile's Debian
release, replays the runtime stage's RUN lines in a chroot (the same apt packages, the
same user, the same pip install of the wheel), then starts the Dockerfile's exact
ENTRYPOINT + CMD in that chroot as the image's user with tini as PID 1 (a fresh PID
namespace), and checks: /healthz answers, the HEALTHCHECK command passes, Chromium
starts sandboxed as the non-root user, and SIGTERM stops it with exit 0.

Differences from the real image, on purpose: Debian's python3 (the same minor version
as the python:<v>-slim image, which builds its own CPython into /usr/local) in a venv
at /usr/local/venv, since Debian's python refuses system-wide pip installs (PEP 668);
the listen address moves to loopback on a free port; the config and journeys are the
repository's examples, copied where the container mounts them.

Needs root, debootstrap and network access to the Debian mirror and PyPI. The root
file system is cached in $CONTAINER_CHECK_DIR (default /var/tmp/synthmon-container-check).
Not part of `make test`.
"""

# This script's job is running system tools as root on paths it builds itself:
# ruff: noqa: S603, S607, S108
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[1]
MIRROR = "http://deb.debian.org/debian"
VENV = "/usr/local/venv"
CHROMIUM_FLAGS = [
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def say(msg: str) -> None:
    print(f"container-check: {msg}", flush=True)


def runtime_stage(parser: DockerfileParser) -> list[dict[str, str]]:
    structure = parser.structure
    last_from = max(i for i, ins in enumerate(structure) if ins["instruction"] == "FROM")
    return structure[last_from:]


def arg_default(parser: DockerfileParser, name: str) -> str:
    for ins in parser.structure:
        if ins["instruction"] == "ARG" and ins["value"].startswith(f"{name}="):
            return ins["value"].split("=", 1)[1]
    raise SystemExit(f"Dockerfile has no ARG {name}=...")


def exec_form(value: str) -> list[str]:
    return [str(x) for x in json.loads(value)]


def sh(cmd: list[str], **kw: object) -> None:
    subprocess.run(cmd, check=True, **kw)  # type: ignore[call-overload]


def in_chroot(rootfs: Path, script: str, env: dict[str, str] | None = None) -> None:
    base = {"PATH": f"{VENV}/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"}
    envs = [f"{k}={v}" for k, v in {**base, **(env or {})}.items()]
    sh(["chroot", str(rootfs), "/usr/bin/env", "-i", *envs, "sh", "-ec", script])


@contextlib.contextmanager
def mounted(rootfs: Path) -> Iterator[None]:
    """/proc, /dev and resolv.conf inside the chroot, always unmounted afterwards."""
    mounts = []
    try:
        for what in ("proc", "dev"):
            target = rootfs / what
            if what == "proc":
                sh(["mount", "-t", "proc", "proc", str(target)])
            else:
                sh(["mount", "--bind", "/dev", str(target)])
            mounts.append(target)
        shutil.copy("/etc/resolv.conf", rootfs / "etc" / "resolv.conf")
        yield
    finally:
        for target in reversed(mounts):
            subprocess.run(["umount", "-l", str(target)], check=False)


def build_rootfs(rootfs: Path, release: str) -> None:
    stamp = rootfs / ".debootstrap-done"
    if stamp.exists():
        say(f"reusing {rootfs}")
        return
    shutil.rmtree(rootfs, ignore_errors=True)
    rootfs.mkdir(parents=True)
    say(f"debootstrap {release} into {rootfs} (a few minutes)")
    sh(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=python3,python3-venv,python-is-python3,ca-certificates",
            release,
            str(rootfs),
            MIRROR,
        ]
    )
    # The python slim images carry the release, its updates and its security suite.
    (rootfs / "etc/apt/sources.list").write_text(
        f"deb {MIRROR} {release} main\n"
        f"deb {MIRROR} {release}-updates main\n"
        f"deb http://deb.debian.org/debian-security {release}-security main\n"
    )
    stamp.touch()


def replay_runtime_stage(
    rootfs: Path, parser: DockerfileParser, dist: Path, wheelhouse: Path
) -> None:
    """Each COPY/RUN of the runtime stage, in order, with python in a venv. pip in the
    chroot installs from `wheelhouse`, downloaded on the host (whose pip knows this
    network's index and certificates): the RUN lines stay exactly as written."""
    shutil.copytree(wheelhouse, rootfs / "tmp/wheelhouse", dirs_exist_ok=True)
    pip_env = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/tmp/wheelhouse"}
    with mounted(rootfs):
        in_chroot(rootfs, f"test -x {VENV}/bin/python || python3 -m venv {VENV}")
        for ins in runtime_stage(parser):
            kind, value = ins["instruction"], ins["value"]
            if kind == "COPY":
                src, dst = value.split()[-2:]
                source = dist if "--from=build" in value else ROOT / src
                target = rootfs / dst.lstrip("/")
                if source.is_dir():
                    shutil.copytree(source, target, dirs_exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(source, target)
            elif kind == "RUN":
                say(f"RUN {value[:70]}...")
                # Replays are idempotent: the user may exist from an earlier run.
                script = value.replace("groupadd --system", "groupadd -f --system")
                if "useradd" in script:
                    script = f"id -u synthmon >/dev/null 2>&1 || ( {script} )"
                in_chroot(rootfs, script, {"DEBIAN_FRONTEND": "noninteractive", **pip_env})
    shutil.rmtree(rootfs / "tmp/wheelhouse", ignore_errors=True)
    compilers = [
        c for c in ("gcc", "cc", "g++", "clang", "make") if (rootfs / "usr/bin" / c).exists()
    ]
    if compilers:
        raise SystemExit(f"the runtime stage contains build tools: {compilers}")
    say("no compilers in the runtime stage")


# A container without a runtime: new mount and PID namespaces, the root file system
# pivoted (not chroot(2): the kernel refuses user namespaces, hence Chromium's sandbox,
# inside a chroot), a fresh /proc, then the image's user. The shell runs on the host
# side until pivot_root; mount, umount and setpriv then come from the image.
_ENTER = """
mount --make-rprivate /
mount --rbind "$ROOTFS" "$ROOTFS"
cd "$ROOTFS"
mkdir -p .oldroot
pivot_root . .oldroot
mount -t proc proc /proc
umount -l /.oldroot
exec setpriv --reuid="$UID_" --regid="$GID_" --clear-groups -- /usr/bin/env -i "$@"
"""


def container_argv(rootfs: Path, user: str, argv: list[str]) -> list[str]:
    uid, _, gid = user.partition(":")
    return [
        "unshare",
        "--mount",
        "--pid",
        "--fork",
        "--kill-child",
        "/usr/bin/env",
        f"ROOTFS={rootfs}",
        f"UID_={uid}",
        f"GID_={gid or uid}",
        "/bin/sh",
        "-ec",
        _ENTER,
        "container",
        *argv,
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], within: float = 60) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"process exited with {proc.returncode} before {url} answered")
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not answer within {within}s")
        time.sleep(0.3)


def run_image(rootfs: Path, parser: DockerfileParser) -> None:
    user = next(i["value"] for i in runtime_stage(parser) if i["instruction"] == "USER")
    entry = exec_form(
        next(i["value"] for i in parser.structure if i["instruction"] == "ENTRYPOINT")
    )
    cmd = exec_form(next(i["value"] for i in parser.structure if i["instruction"] == "CMD"))
    hc = next(i["value"] for i in parser.structure if i["instruction"] == "HEALTHCHECK")
    healthcheck = exec_form(hc.split("CMD", 1)[1].strip())
    envs = dict(parser.envs)
    # What the container gets from its mounts: the example config and journeys.
    etc = rootfs / "etc/synthmon"
    etc.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "config.example.toml", etc / "synthmon.toml")
    shutil.copytree(ROOT / "journeys", etc / "journeys", dirs_exist_ok=True)

    shop_port, port = free_port(), free_port()
    envs.update(
        SYNTHMON_SERVER__LISTEN=f"127.0.0.1:{port}",
        SYNTHMON_TARGETS__DEMO__BASE_URL=f"http://127.0.0.1:{shop_port}",
        PATH=f"{VENV}/bin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    )
    env_args = [f"{k}={v}" for k, v in envs.items()]
    shop = subprocess.Popen(
        [sys.executable, "-m", "synthmon_demo", "--port", str(shop_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    fd, log_name = tempfile.mkstemp(prefix="synthmon-container-", suffix=".log")
    log = os.fdopen(fd, "wb")
    try:
        with mounted(rootfs):
            wait_http(f"http://127.0.0.1:{shop_port}/", shop)
            say("starting the image's ENTRYPOINT + CMD as " + user + ": " + " ".join(entry + cmd))
            proc = subprocess.Popen(
                container_argv(rootfs, user, [*env_args, *entry, *cmd]),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(rootfs),
            )
            try:
                wait_http(f"http://127.0.0.1:{port}/healthz", proc)
                say("/healthz answers")
                sh(container_argv(rootfs, user, [*env_args, *healthcheck]))
                say("HEALTHCHECK command passes")
                check_tini_is_pid_one(proc)
                check_chromium_sandboxed(rootfs, user, env_args)
                tini = child_of(proc.pid)
                os.kill(tini, signal.SIGTERM)
                rc = proc.wait(40)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    finally:
        log.close()
        shop.terminate()
        shop.wait()
    text = Path(log_name).read_text(errors="replace")
    if rc != 0 or "shutdown_complete" not in text:
        print(text[-4000:])
        raise SystemExit(f"SIGTERM: exit {rc}, expected 0 with shutdown_complete logged")
    say(f"SIGTERM → exit 0, shutdown complete (log: {log_name})")


def child_of(pid: int) -> int:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(children[0])


def check_tini_is_pid_one(proc: subprocess.Popen[bytes]) -> None:
    tini = child_of(proc.pid)
    status = Path(f"/proc/{tini}/status").read_text()
    nspid = next(line for line in status.splitlines() if line.startswith("NSpid:")).split()
    comm = Path(f"/proc/{tini}/comm").read_text().strip()
    if comm != "tini" or nspid[-1] != "1":
        raise SystemExit(f"PID 1 of the container is {comm!r} (pid {nspid[-1]}), not tini")
    daemon = child_of(tini)
    uids = next(
        line
        for line in Path(f"/proc/{daemon}/status").read_text().splitlines()
        if line.startswith("Uid:")
    ).split()[1:]
    if "0" in uids:
        raise SystemExit(f"the daemon runs with uid {uids}: root")
    say(f"tini is PID 1; the daemon runs as uid {uids[0]}")


def check_chromium_sandboxed(rootfs: Path, user: str, env_args: list[str]) -> None:
    """Chromium starts without --no-sandbox as the image's user (needs user namespaces)."""
    out = subprocess.run(
        container_argv(
            rootfs,
            user,
            [
                *env_args,
                "chromium",
                *CHROMIUM_FLAGS,
                "--dump-dom",
                "data:text/html,<p>sandboxed</p>",
            ],
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if "sandboxed" not in out.stdout:
        raise SystemExit(f"Chromium did not start sandboxed as {user}:\n{out.stderr[-2000:]}")
    say(f"Chromium starts sandboxed as {user}")


def main() -> int:
    if os.geteuid() != 0:
        raise SystemExit("container-check needs root (debootstrap, chroot, mounts)")
    for tool in ("debootstrap", "chroot", "unshare"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} missing: apt-get install debootstrap util-linux coreutils")
    parser = DockerfileParser(str(ROOT / "Dockerfile"))
    release = arg_default(parser, "DEBIAN_RELEASE")
    rootfs = Path(os.environ.get("CONTAINER_CHECK_DIR", "/var/tmp/synthmon-container-check"))
    build_rootfs(rootfs, release)
    with tempfile.TemporaryDirectory() as tmp:
        dist, wheelhouse = Path(tmp) / "dist", Path(tmp) / "wheelhouse"
        sh(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--wheel-dir",
                str(dist),
                str(ROOT),
            ]
        )
        [wheel] = dist.glob("*.whl")
        sh(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--only-binary=:all:",
                "--dest",
                str(wheelhouse),
                "-c",
                str(ROOT / "requirements.lock"),
                str(wheel),
            ]
        )
        replay_runtime_stage(rootfs, parser, dist, wheelhouse)
    run_image(rootfs, parser)
    say("OK")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
