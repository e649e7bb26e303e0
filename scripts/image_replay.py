"""The Dockerfile's runtime stage as a root file system, without a Docker engine.

Used by `make container-check` (scripts/container_check.py). Parses the Dockerfile with
dockerfile_parse and replays what it says: debootstrap of the runtime stage's Debian
release, then the stage's COPY/RUN/ENV/WORKDIR/USER lines in order, each RUN in a
chroot with its own mount and PID namespaces (the same apt packages, the same user,
the same pip install of the wheel). An instruction it does not know stops it rather
than being skipped.

Layers are cached in a directory (the check's $CONTAINER_CHECK_DIR) like Docker's build
cache, as overlayfs layers keyed by what made them:

    base-<key>        debootstrap of the release, plus a venv of Debian's python3
    stage-<key>       the runtime stage up to its first `COPY --from` (apt packages,
                      user, requirements.lock): keyed by those lines, the files they
                      copy and the base
    wheelhouse-<key>  the wheel's dependencies, keyed by requirements.lock and the
                      wheel's Requires-Dist (downloaded, not a layer)
    deps-<key>        those dependencies installed on the stage, so that the stage's
                      pip line installs only the wheel
    run-<pid>         one run's layer on top (the wheel installed, the daemon's data),
                      discarded after the run

Layers of other keys are pruned, so the directory holds one of each (~1.6 GB). Like
Docker's cache, a cached stage keeps the Debian packages of the day it was built:
delete the directory to pick up newer ones.

Differences from the real image, on purpose: Debian's python3 (the same minor version
as the python:<v>-slim image, which builds its own CPython into /usr/local; a mismatch
stops the check) in a venv at /usr/local/venv, since Debian's python refuses
system-wide pip installs (PEP 668); pip installs from wheels downloaded on the host
(whose pip knows this network's index and certificates).
"""

# This module's job is running system tools as root on paths it builds itself:
# ruff: noqa: S603, S607, S108
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[1]
MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
VENV = "/usr/local/venv"
DEBOOTSTRAP_INCLUDE = "python3,python3-venv,python-is-python3,ca-certificates"
# What the python:<v>-slim base image puts in the environment of its RUN lines and of
# the container (PATH finds the venv's python where the image has /usr/local/bin's).
BASE_ENV = {
    "PATH": f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}
# Bump when the replay itself changes what a cached layer holds.
LAYOUT = "1"
# How an image can be built is Docker's business; these are the instructions the
# replay knows. Anything else stops the check instead of being skipped silently.
METADATA = {"LABEL", "EXPOSE", "VOLUME", "HEALTHCHECK", "STOPSIGNAL", "ENTRYPOINT", "CMD"}
STARTED = time.monotonic()


def say(msg: str) -> None:
    print(f"container-check [{time.monotonic() - STARTED:5.0f}s] {msg}", flush=True)


def sha(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def sh(cmd: list[str], **kw: Any) -> None:
    subprocess.run(cmd, check=True, **kw)


# --- the Dockerfile ---------------------------------------------------------------


@dataclass
class Image:
    """The parts of the Dockerfile the check follows."""

    release: str
    python: str
    runtime: list[dict[str, Any]]
    wheel_dir: str  # where the build stage leaves the wheel (`pip wheel --wheel-dir`)


def load_image(path: Path) -> Image:
    parser = DockerfileParser(str(path))
    structure = [i for i in parser.structure if i["instruction"] != "COMMENT"]
    args = {}
    for ins in structure:
        if ins["instruction"] == "ARG" and "=" in ins["value"]:
            name, value = ins["value"].split("=", 1)
            args[name.strip()] = value.strip().strip("\"'")
    froms = [i for i, ins in enumerate(structure) if ins["instruction"] == "FROM"]
    if len(froms) != 2:
        raise SystemExit("expected two stages in the Dockerfile (build, runtime)")
    build, runtime = structure[froms[0] : froms[1]], structure[froms[1] :]
    wheel_dirs = [
        m.group(1)
        for ins in build
        if ins["instruction"] == "RUN"
        for m in [re.search(r"--wheel-dir[ =](\S+)", ins["value"])]
        if m
    ]
    if len(wheel_dirs) != 1:
        raise SystemExit("the build stage should run `pip wheel --wheel-dir DIR` once")
    base = runtime[0]["value"]
    for name, value in args.items():
        base = base.replace(f"${{{name}}}", value)
    m = re.match(r"python:(\d+\.\d+)-slim-(\w+)", base)
    if not m:
        raise SystemExit(f"the runtime stage is FROM {base}: only python:<v>-slim-<release>")
    return Image(release=m.group(2), python=m.group(1), runtime=runtime, wheel_dir=wheel_dirs[0])


def exec_form(value: str) -> list[str]:
    """An exec-form (JSON) command as argv; a shell-form one runs under /bin/sh -c."""
    value = value.strip()
    if value.startswith("["):
        return [str(x) for x in json.loads(value)]
    return ["/bin/sh", "-c", value]


@dataclass(frozen=True)
class Healthcheck:
    """A HEALTHCHECK instruction, with Docker's defaults."""

    command: list[str]
    timeout: float = 30.0
    retries: int = 3


def healthcheck_of(value: str) -> Healthcheck:
    """`HEALTHCHECK [--opt=v ...] CMD <command>`."""
    options, _, command = value.partition("CMD")
    if not command.strip():
        raise SystemExit(f"HEALTHCHECK without a command: {value!r}")
    hc = Healthcheck(exec_form(command))
    m = re.search(r"--timeout=(\d+(?:\.\d+)?)(ms|s|m)?", options)
    if m:
        unit = {"ms": 0.001, "s": 1, "m": 60, None: 1}[m.group(2)]
        hc = replace(hc, timeout=float(m.group(1)) * unit)
    m = re.search(r"--retries=(\d+)", options)
    if m:
        hc = replace(hc, retries=int(m.group(1)))
    return hc


def env_pairs(value: str) -> dict[str, str]:
    """ENV a=1 b="2 3" (and the legacy ENV a 1)."""
    words = shlex.split(value)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(w.split("=", 1) for w in words)


def copy_parts(value: str) -> tuple[str | None, list[str], str]:
    words = shlex.split(value)
    flags = [w for w in words if w.startswith("--")]
    paths = [w for w in words if not w.startswith("--")]
    stage = None
    for flag in flags:
        if flag.startswith("--from="):
            stage = flag.split("=", 1)[1]
        else:
            raise SystemExit(f"container_check.py cannot replay COPY {flag} yet")
    return stage, paths[:-1], paths[-1]


def cacheable_prefix(image: Image) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The runtime stage's lines up to its first `COPY --from` (which brings the wheel,
    new on every commit), and the rest."""
    lines = image.runtime[1:]
    for i, ins in enumerate(lines):
        if ins["instruction"] == "COPY" and copy_parts(ins["value"])[0] is not None:
            return lines[:i], lines[i:]
    return lines, []


def content_hash(path: Path) -> str:
    if path.is_file():
        return sha(path.name, path.read_bytes())
    return sha(*(f"{p.relative_to(path)}:{content_hash(p)}" for p in sorted(path.rglob("*"))))


# --- replaying the stage ----------------------------------------------------------


@dataclass
class Replay:
    """Docker's build state across the stage's lines: environment, workdir, user and
    the image's metadata. `run=False` only follows the state (for cached lines)."""

    rootfs: Path | None = None
    env: dict[str, str] = field(default_factory=lambda: dict(BASE_ENV))
    workdir: str = "/"
    user: str | None = None
    meta: dict[str, str] = field(default_factory=dict)
    dist: Path | None = None  # the build stage's wheel dir, built on the host
    wheel_dir: str = ""
    binds: dict[str, Path] = field(default_factory=dict)  # host dirs seen by RUN lines
    run_env: dict[str, str] = field(default_factory=dict)  # extra env for RUN lines

    def apply(self, ins: dict[str, Any], *, run: bool) -> None:
        kind, value = ins["instruction"], ins["value"]
        if kind == "ENV":
            self.env.update(env_pairs(value))
        elif kind == "WORKDIR":
            self.workdir = os.path.join(self.workdir, value)
            if run:
                self._path(self.workdir).mkdir(parents=True, exist_ok=True)
        elif kind == "USER":
            self.user = value
        elif kind == "ARG":
            pass  # the stage's ARGs are not used by its RUN lines here
        elif kind in METADATA:
            self.meta[kind] = value
        elif kind == "RUN" and run:
            say(f"RUN {' '.join(value.split())[:90]}...")
            self._run(value)
        elif kind == "COPY" and run:
            self._copy(value)
        elif kind not in {"RUN", "COPY"}:
            raise SystemExit(f"container_check.py cannot replay {kind} yet")

    def _path(self, inside: str) -> Path:
        assert self.rootfs is not None
        return self.rootfs / os.path.join(self.workdir, inside).lstrip("/")

    def _copy(self, value: str) -> None:
        stage, sources, dst = copy_parts(value)
        target = self._path(dst)
        for src in sources:
            if stage is None:
                source = ROOT / src
            elif src.rstrip("/") == self.wheel_dir.rstrip("/") and self.dist is not None:
                source = self.dist
            else:
                raise SystemExit(f"COPY --from={stage} {src}: only the build stage's wheel")
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                dest = target / source.name if dst.endswith("/") else target
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, dest)

    def _run(self, script: str) -> None:
        assert self.rootfs is not None
        # Replays are idempotent where a cached layer may already hold their effect.
        script = script.replace("groupadd --system", "groupadd -f --system")
        if "useradd" in script:
            script = f"id -u synthmon >/dev/null 2>&1 || ( {script} )"
        argv = ["/bin/sh", "-c", f"cd {shlex.quote(self.workdir)} && {script}"]
        if self.user is not None:
            uid, _, gid = self.user.partition(":")
            argv = ["setpriv", f"--reuid={uid}", f"--regid={gid or uid}", "--clear-groups", *argv]
        env = {"HOME": "/root", **self.env, "DEBIAN_FRONTEND": "noninteractive", **self.run_env}
        in_chroot(self.rootfs, argv, env, self.binds)


# A RUN line: its own mount and PID namespaces (so nothing it mounts or starts
# outlives it), /proc, /dev and the host's resolv.conf (as Docker bind-mounts it) and
# the given host directories, then chroot.
_CHROOT = """
mount --make-rprivate /
mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev"
touch "$R/etc/resolv.conf"
mount --bind /etc/resolv.conf "$R/etc/resolv.conf"
for b in $BINDS; do mkdir -p "$R/${b%%=*}"; mount --bind -o ro "${b#*=}" "$R/${b%%=*}"; done
exec chroot "$R" /usr/bin/env -i "$@"
"""


def in_chroot(
    rootfs: Path, argv: list[str], env: dict[str, str], binds: dict[str, Path] | None = None
) -> None:
    spec = " ".join(f"{inside.lstrip('/')}={host}" for inside, host in (binds or {}).items())
    sh(
        [
            "unshare",
            "--mount",
            "--pid",
            "--fork",
            "--kill-child",
            "/usr/bin/env",
            f"R={rootfs}",
            f"BINDS={spec}",
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "/bin/sh",
            "-ec",
            _CHROOT,
            "chroot",
            *(f"{k}={v}" for k, v in env.items()),
            *argv,
        ]
    )
    for inside in binds or {}:
        with contextlib.suppress(OSError):
            (rootfs / inside.lstrip("/")).rmdir()


# --- the layer cache --------------------------------------------------------------


def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return sorted(found, key=len, reverse=True)


def remove(path: Path) -> None:
    """rm -rf that never reaches through a mount point into another file system."""
    for point in mounts_under(path):
        subprocess.run(["umount", "-l", point], check=False)
    if mounts_under(path):
        raise SystemExit(f"cannot unmount everything under {path}; remove it by hand")
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def overlay(lowers: list[Path], scratch: Path) -> Iterator[tuple[Path, Path]]:
    """A writable root over read-only `lowers` (top first): yields (merged, upper)."""
    upper, work, merged = scratch / "root", scratch / "work", scratch / "merged"
    for d in (upper, work, merged):
        d.mkdir(parents=True, exist_ok=True)
    lowerdir = ":".join(str(p) for p in lowers)
    try:
        sh(
            [
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                f"lowerdir={lowerdir},upperdir={upper},workdir={work}",
                str(merged),
            ]
        )
    except subprocess.CalledProcessError:
        raise SystemExit("overlayfs mount failed: the layer cache needs overlayfs") from None
    try:
        yield merged, upper
    finally:
        subprocess.run(["umount", str(merged)], check=False)


@contextlib.contextmanager
def locked(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another container-check using {cache}")
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


def prune(cache: Path, keep: set[str] | None = None) -> None:
    """Scratch left by runs that were killed and, given the layers to `keep`, the
    layers of other keys."""
    for entry in cache.iterdir():
        name = entry.name
        layer = name.split("-", 1)[0] in {"base", "stage", "wheelhouse", "deps"}
        if (layer and keep is not None and name not in keep) or name.startswith(("tmp-", "run-")):
            say(f"pruning {entry}")
            remove(entry)


def ensure_base(cache: Path, image: Image) -> Path:
    key = "base-" + sha(LAYOUT, image.release, MIRROR, DEBOOTSTRAP_INCLUDE)
    layer = cache / key / "root"
    if (cache / key / "done").exists():
        say(f"cached {key}: debootstrap {image.release}")
        return layer
    scratch = cache / f"tmp-{key}"
    remove(scratch)
    rootfs = scratch / "root"
    rootfs.mkdir(parents=True)
    say(f"debootstrap {image.release} into {rootfs} (a few minutes)")
    sh(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={DEBOOTSTRAP_INCLUDE}",
            image.release,
            str(rootfs),
            MIRROR,
        ]
    )
    # The python slim images carry the release, its updates and its security suite.
    (rootfs / "etc/apt/sources.list").write_text(
        f"deb {MIRROR} {image.release} main\n"
        f"deb {MIRROR} {image.release}-updates main\n"
        f"deb {SECURITY_MIRROR} {image.release}-security main\n"
    )
    version = subprocess.run(
        [
            "chroot",
            str(rootfs),
            "python3",
            "-c",
            "import sys; print(*sys.version_info[:2], sep='.')",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if version != image.python:
        raise SystemExit(
            f"Debian {image.release}'s python3 is {version}, the image's is {image.python}: "
            "the replay would test another Python; run the release whose python3 matches"
        )
    sh(["chroot", str(rootfs), "python3", "-m", "venv", VENV])
    remove(cache / key)
    scratch.rename(cache / key)
    (cache / key / "done").touch()
    return layer


def stage_key(base_key: str, lines: list[dict[str, Any]], context: Path = ROOT) -> str:
    """Docker's cache rule: the lines as written, the content of the files they copy
    from the build context, and the layer below."""
    material = [LAYOUT, base_key]
    for ins in lines:
        material.append(f"{ins['instruction']} {ins['value']}")
        if ins["instruction"] == "COPY":
            material += [content_hash(context / src) for src in copy_parts(ins["value"])[1]]
    return "stage-" + sha(*material)


def ensure_stage(cache: Path, base: Path, lines: list[dict[str, Any]]) -> Path:
    key = stage_key(base.parent.name, lines)
    if (cache / key / "done").exists():
        say(f"cached {key}: {len(lines)} lines of the runtime stage")
        return cache / key / "root"
    scratch = cache / f"tmp-{key}"
    remove(scratch)
    say(f"building {key}: the runtime stage up to its first COPY --from")
    with overlay([base], scratch) as (merged, _):
        replay = Replay(rootfs=merged)
        for ins in lines:
            replay.apply(ins, run=True)
    remove(scratch / "work")
    remove(scratch / "merged")
    remove(cache / key)
    scratch.rename(cache / key)
    (cache / key / "done").touch()
    return cache / key / "root"


def ensure_wheelhouse(cache: Path, image: Image, wheel: Path) -> Path:
    """The wheel's dependencies as the image's pip would pick them (binary wheels for
    its Python), downloaded on the host."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        requires = sorted(
            line for line in z.read(meta).decode().splitlines() if line.startswith("Requires-Dist:")
        )
    lock = (ROOT / "requirements.lock").read_bytes()
    key = "wheelhouse-" + sha(LAYOUT, image.python, lock, *requires)
    if (cache / key / "done").exists():
        say(f"cached {key}")
        return cache / key / "wheels"
    scratch = cache / f"tmp-{key}"
    remove(scratch)
    say(f"downloading the wheel's dependencies into {key}")
    sh(
        [
            *(sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"),
            *("--only-binary=:all:", "--python-version", image.python),
            *("--dest", str(scratch / "wheels"), "-c", str(ROOT / "requirements.lock")),
            str(wheel),
        ]
    )
    for own in (scratch / "wheels").glob("synthmon-*.whl"):
        own.unlink()  # the wheel under test comes from the build, never from here
    remove(cache / key)
    scratch.rename(cache / key)
    (cache / key / "done").touch()
    return cache / key / "wheels"


def ensure_deps(cache: Path, stage: Path, base: Path, wheelhouse: Path) -> Path:
    """The wheel's dependencies installed on top of the stage: the wheelhouse is what pip
    resolved for the wheel under the lock's constraints, so the stage's own pip line
    then finds them satisfied and installs only the wheel. Saves installing numpy,
    scipy, playwright... on every run."""
    key = "deps-" + sha(LAYOUT, stage.parent.name, wheelhouse.parent.name)
    if (cache / key / "done").exists():
        say(f"cached {key}: the wheel's dependencies installed")
        return cache / key / "root"
    scratch = cache / f"tmp-{key}"
    remove(scratch)
    say(f"building {key}: the wheel's dependencies installed")
    with overlay([stage, base], scratch) as (merged, _):
        in_chroot(
            merged,
            ["/bin/sh", "-c", "pip install -q --no-cache-dir --no-index --no-deps /tmp/wh/*.whl"],
            {**BASE_ENV, "HOME": "/root"},
            {"/tmp/wh": wheelhouse},
        )
    remove(scratch / "work")
    remove(scratch / "merged")
    remove(cache / key)
    scratch.rename(cache / key)
    (cache / key / "done").touch()
    return cache / key / "root"


def build_wheel(dest: Path) -> Path:
    sh(
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check"),
            *("--no-deps", "--no-build-isolation", "--wheel-dir", str(dest), str(ROOT)),
        ]
    )
    [wheel] = dest.glob("*.whl")
    return wheel


def no_compilers(rootfs: Path) -> None:
    found = [c for c in ("gcc", "cc", "g++", "clang", "make") if (rootfs / "usr/bin" / c).exists()]
    if found:
        raise SystemExit(f"the runtime stage contains build tools: {found}")
    say("no compilers in the runtime stage")
