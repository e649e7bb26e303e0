"""What the CLI makes of the config an operator has: environment overrides that set
nothing are errors, and pause/silence work without the production secrets."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from synthmon.alerting.store import MIGRATIONS
from tests.core.test_cli import synthmon
from tests.harness import write_config, write_journeys
from tests.loopback import free_port

HOME = """
    from synthmon import Context, journey

    @journey(interval="30s", tags=["shop"])
    async def home(ctx: Context) -> None:
        await ctx.http.get("/")
"""


def production_config(tmp_path: Path, port: int = 1) -> Path:
    """A config as production has it: an account whose secret this shell lacks."""
    jdir = write_journeys(tmp_path / "journeys", {"home.py": HOME})
    return write_config(
        tmp_path / "synthmon.toml",
        f"""
        journeys_dir = "{jdir}"
        data_dir = "{tmp_path / "data"}"
        [server]
        listen = "127.0.0.1:{port}"
        [targets.prod]
        base_url = "https://shop.example"
        [[accounts]]
        pool = "shopper"
        username = "synthetic@shop.example"
        password = {{ env = "T_UNSET_SHOPPER_PASSWORD" }}
        """,
    )


class TestEnvironmentOverrides:
    def test_misspelt_section_is_an_error_with_a_suggestion(self, tmp_path: Path) -> None:
        """SYNTHMON_SERVR__LISTEN exits 2 naming the variable and the closest valid name."""
        cfg = production_config(tmp_path)
        out = synthmon("check", "--config", str(cfg), env={"SYNTHMON_SERVR__LISTEN": "0:1"})
        assert out.returncode == 2, out.stdout
        assert "environment SYNTHMON_SERVR__LISTEN: " in out.stderr
        assert "did you mean SYNTHMON_SERVER__LISTEN?" in out.stderr

    def test_misspelt_top_level_key_stops_run(self, tmp_path: Path) -> None:
        """`synthmon run` with SYNTHMON_JOURNEYS_DIRR exits 2 instead of ignoring it."""
        cfg = production_config(tmp_path)
        out = synthmon(
            "run",
            "--config",
            str(cfg),
            env={"SYNTHMON_JOURNEYS_DIRR": "/elsewhere", "T_UNSET_SHOPPER_PASSWORD": "x"},
        )
        assert out.returncode == 2, out.stdout
        assert "environment SYNTHMON_JOURNEYS_DIRR: " in out.stderr
        assert "did you mean SYNTHMON_JOURNEYS_DIR?" in out.stderr

    def test_environment_cannot_add_a_target(self, tmp_path: Path) -> None:
        """SYNTHMON_TARGETS__PRM__BASE_URL for an undeclared target is refused."""
        cfg = production_config(tmp_path)
        out = synthmon(
            "check", "--config", str(cfg), env={"SYNTHMON_TARGETS__PRM__BASE_URL": "https://x.y"}
        )
        assert out.returncode == 2, out.stdout
        assert "environment SYNTHMON_TARGETS__PRM__BASE_URL: target 'prm' is not declared" in (
            out.stderr
        )
        assert "['prod']" in out.stderr

    def test_environment_overrides_a_declared_target(self, tmp_path: Path) -> None:
        """A declared target's settings still come from the environment."""
        cfg = production_config(tmp_path)
        out = synthmon(
            "check",
            "--config",
            str(cfg),
            env={"SYNTHMON_TARGETS__PROD__BASE_URL": "https://staging.example"},
        )
        assert out.returncode == 0, out.stderr

    def test_secret_reference_named_like_an_override_is_not_one(self, tmp_path: Path) -> None:
        """api_token = { env = "SYNTHMON_API_TOKEN" } (docs/safety.md) is not a typo."""
        cfg = production_config(tmp_path)
        cfg.write_text(
            cfg.read_text().replace(
                "[targets.prod]", 'api_token = { env = "SYNTHMON_API_TOKEN" }\n[targets.prod]'
            )
        )
        out = synthmon("check", "--config", str(cfg), env={"SYNTHMON_API_TOKEN": "t0k"})
        assert out.returncode == 0, out.stderr


class TestWithoutSecrets:
    def test_silence_needs_no_production_secrets(self, tmp_path: Path) -> None:
        """`synthmon silence add` works in a shell without the accounts' secrets."""
        cfg = production_config(tmp_path)
        out = synthmon("silence", "--config", str(cfg), "add", "--journey", "home", "-m", "x")
        assert out.returncode == 0, out.stderr
        assert "silence 1: journey=home" in out.stdout

    def test_silence_refuses_unknown_names_listing_the_known(self, tmp_path: Path) -> None:
        """A typo'd journey, target or tag is refused with the known names."""
        cfg = production_config(tmp_path)
        for flag, value, known in (
            ("--journey", "hom", "['home']"),
            ("--target", "prd", "['prod']"),
            ("--tag", "shp", "['shop']"),
        ):
            out = synthmon("silence", "--config", str(cfg), "add", flag, value, "-m", "x")
            assert out.returncode == 2, out.stdout
            assert f"no {flag[2:]} named {value!r}; known: {known}" in out.stderr
        listed = synthmon("silence", "--config", str(cfg), "list")
        assert listed.returncode == 0 and listed.stdout == ""

    def test_pause_needs_no_production_secrets(self, tmp_path: Path) -> None:
        """`synthmon pause` reaches the daemon from a shell lacking the accounts' secrets."""
        port = free_port()
        cfg = production_config(tmp_path, port)
        out = synthmon("pause", "--config", str(cfg), "--journey", "home")
        # No daemon listens: the command got as far as trying to reach it.
        assert out.returncode == 1, out.stderr
        assert f"cannot reach the daemon at http://127.0.0.1:{port}" in out.stderr


class TestDatabaseSchema:
    def test_database_from_a_newer_synthmon_stops_run(self, tmp_path: Path) -> None:
        """An alerting database with a newer schema version exits 2 naming the file."""
        cfg = production_config(tmp_path, free_port())
        db_path = tmp_path / "data" / "alerting.sqlite3"
        db_path.parent.mkdir()
        with sqlite3.connect(db_path) as db:
            db.execute("PRAGMA user_version = 99")
        out = synthmon("run", "--config", str(cfg), env={"T_UNSET_SHOPPER_PASSWORD": "x"})
        assert out.returncode == 2, out.stdout
        assert f"{db_path}: the alerting database has schema version 99" in out.stderr

    def test_database_before_versioning_is_adopted_with_its_rows(self, tmp_path: Path) -> None:
        """A file written before migrations existed keeps its silences and gets version 1."""
        cfg = production_config(tmp_path)
        db_path = tmp_path / "data" / "alerting.sqlite3"
        db_path.parent.mkdir()
        with sqlite3.connect(db_path) as db:
            db.executescript(MIGRATIONS[0])
            db.execute(
                "INSERT INTO silences (matchers, starts_at, ends_at, created_by, comment) "
                "VALUES ('{}', 0, 4102444800, 'old', 'kept')"
            )
        out = synthmon("silence", "--config", str(cfg), "list")
        assert out.returncode == 0, out.stderr
        assert "old: kept" in out.stdout
        with sqlite3.connect(db_path) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
