"""`make container-check`'s reading of the Dockerfile and the config (the parts that run
without root; the check itself runs in CI after `make test`, see .ci/run)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO_SECRET_NAMES = {
    "DEMO_SHOPPER1_PASSWORD",
    "DEMO_SHOPPER2_PASSWORD",
    "DEMO_MFA_PASSWORD",
    "DEMO_MFA_TOTP_SECRET",
}


@pytest.fixture(scope="module")
def scripts() -> Iterator[tuple[ModuleType, ModuleType]]:
    """scripts/image_replay.py and scripts/container_check.py, imported as the check
    runs them (scripts/ first on sys.path)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(ROOT / "scripts"))
        import container_check
        import image_replay

        yield image_replay, container_check


def runtime_lines(replay: ModuleType, dockerfile: Path) -> list[dict[str, Any]]:
    return list(replay.load_image(dockerfile).runtime[1:])


class TestDockerfileReading:
    def test_release_python_and_wheel_dir_come_from_the_dockerfile(self, scripts: Any) -> None:
        """The Debian release, Python version and wheel dir are read, not assumed."""
        replay, _ = scripts
        image = replay.load_image(ROOT / "Dockerfile")
        assert (image.release, image.python, image.wheel_dir) == ("bookworm", "3.11", "/dist")

    def test_healthcheck_command_timeout_and_retries(self, scripts: Any) -> None:
        """Today's and the layout refactor's HEALTHCHECK both parse, with their options;
        a shell-form one runs under /bin/sh with Docker's defaults."""
        replay, _ = scripts
        for command in (
            '["python", "-m", "synthmon.healthcheck", "--config", "/etc/s.toml"]',
            '["synthmon", "healthcheck", "--config", "/etc/s.toml"]',
        ):
            hc = replay.healthcheck_of(f"--interval=30s --timeout=5s --retries=2 CMD {command}")
            assert hc.command[-2:] == ["--config", "/etc/s.toml"]
            assert (hc.timeout, hc.retries) == (5.0, 2)
        hc = replay.healthcheck_of("CMD synthmon healthcheck")
        assert (hc.command, hc.timeout, hc.retries) == (
            ["/bin/sh", "-c", "synthmon healthcheck"],
            30.0,
            3,
        )

    def test_cached_prefix_ends_where_the_wheel_comes_in(self, scripts: Any) -> None:
        """The cached layer holds the apt packages, the user and the lock file; the
        wheel, ENV, HEALTHCHECK and ENTRYPOINT are replayed on every run."""
        replay, _ = scripts
        cached, rest = replay.cacheable_prefix(replay.load_image(ROOT / "Dockerfile"))
        assert [i["instruction"] for i in cached] == ["RUN", "RUN", "COPY"]
        assert rest[0]["instruction"] == "COPY" and "--from=build" in rest[0]["value"]
        assert {"HEALTHCHECK", "ENTRYPOINT", "CMD"} <= {i["instruction"] for i in rest}

    def test_every_runtime_line_is_replayable(self, scripts: Any) -> None:
        """Each line of the runtime stage is one the replay knows; the state it leaves
        is the image's user, workdir and environment."""
        replay, _ = scripts
        state = replay.Replay()
        for ins in runtime_lines(replay, ROOT / "Dockerfile"):
            state.apply(ins, run=False)
        assert state.user == "10001:10001"
        assert state.workdir == "/var/lib/synthmon"
        assert state.env["SYNTHMON_DATA_DIR"] == "/var/lib/synthmon"
        assert {"HEALTHCHECK", "ENTRYPOINT", "CMD", "STOPSIGNAL"} <= set(state.meta)

    def test_unknown_instruction_stops_the_check(self, scripts: Any) -> None:
        """An instruction the replay does not know fails instead of being skipped."""
        replay, _ = scripts
        with pytest.raises(SystemExit, match="ADD"):
            replay.Replay().apply({"instruction": "ADD", "value": "x /x"}, run=False)


class TestStageCacheKey:
    @pytest.fixture
    def context(self, tmp_path: Path) -> Path:
        shutil.copy(ROOT / "Dockerfile", tmp_path / "Dockerfile")
        (tmp_path / "requirements.lock").write_text("httpx==1.0\n")
        return tmp_path

    def key(self, scripts: Any, context: Path) -> str:
        replay, _ = scripts
        cached, _ = replay.cacheable_prefix(replay.load_image(context / "Dockerfile"))
        return str(replay.stage_key("base-x", cached, context))

    def test_lock_file_content_changes_the_key(self, scripts: Any, context: Path) -> None:
        """A new requirements.lock rebuilds the cached stage."""
        before = self.key(scripts, context)
        (context / "requirements.lock").write_text("httpx==2.0\n")
        assert self.key(scripts, context) != before

    def test_apt_line_changes_the_key(self, scripts: Any, context: Path) -> None:
        """Another apt package list rebuilds the cached stage."""
        before = self.key(scripts, context)
        dockerfile = context / "Dockerfile"
        dockerfile.write_text(dockerfile.read_text().replace("      tini \\", "      tini curl \\"))
        assert self.key(scripts, context) != before

    def test_comments_and_later_lines_keep_the_key(self, scripts: Any, context: Path) -> None:
        """Comments, the HEALTHCHECK and the CMD are not in the cached stage."""
        before = self.key(scripts, context)
        dockerfile = context / "Dockerfile"
        old = dockerfile.read_text()
        text = old.replace("--interval=30s", "--interval=1m").replace('["run", ', '["run", "-v", ')
        assert text.count("\n") == old.count("\n") and text != old
        dockerfile.write_text("# a new comment\n" + text)
        assert self.key(scripts, context) == before


class TestSecrets:
    def test_the_configs_env_secrets_are_passed(
        self, scripts: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Every `{ env = ... }` secret of config.example.toml goes into the container."""
        _, check = scripts
        for name in DEMO_SECRET_NAMES:
            monkeypatch.setenv(name, f"value-of-{name}")
        assert check.secret_env(ROOT / "config.example.toml") == {
            name: f"value-of-{name}" for name in DEMO_SECRET_NAMES
        }

    def test_a_missing_secret_is_named(self, scripts: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without a secret the check stops before building anything, naming it."""
        _, check = scripts
        for name in DEMO_SECRET_NAMES:
            monkeypatch.setenv(name, "x")
        monkeypatch.delenv("DEMO_MFA_TOTP_SECRET")
        with pytest.raises(SystemExit, match="DEMO_MFA_TOTP_SECRET"):
            check.secret_env(ROOT / "config.example.toml")

    def test_demo_shop_module_is_found(self, scripts: Any) -> None:
        """The demo shop runs from its own package, or from synthmon's before the move."""
        _, check = scripts
        assert check.demo_module() in check.DEMO_MODULES
