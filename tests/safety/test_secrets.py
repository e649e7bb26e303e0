from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import structlog

from synthmon.config.settings import load_settings
from synthmon.errors import ConfigError
from synthmon.model import RunResult, Status, StepResult
from synthmon.runtime.logs import configure_logging
from synthmon.safety.facade import scrubber_for
from synthmon.safety.scrub import Scrubber
from tests.harness import write_config

from .conftest import ACCOUNTS_TOML


class TestSecretRef:
    def test_inline_secret_is_rejected_with_how_to_pass_it(self, tmp_path: Path) -> None:
        """An inline password is a config error naming file and field and saying how to pass it."""
        cfg = write_config(
            tmp_path / "s.toml",
            """
            [[accounts]]
            pool = "shopper"
            username = "synthetic+shopper1@shop.example"
            password = "hunter2-inline"
            """,
        )
        with pytest.raises(ConfigError) as err:
            load_settings(cfg)
        msg = str(err.value)
        assert str(cfg) in msg
        assert "accounts.0.password" in msg
        assert '{ env = "NAME" }' in msg
        assert "{ file =" in msg
        assert "hunter2-inline" not in msg

    def test_inline_api_token_is_rejected(self, tmp_path: Path) -> None:
        """server.api_token written inline is refused too."""
        cfg = write_config(tmp_path / "s.toml", '[server]\napi_token = "abc12345"\n')
        with pytest.raises(ConfigError, match=r"server\.api_token: .*inline"):
            load_settings(cfg)

    def test_env_and_file_secrets_load_as_secretstr(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Secrets load from an env variable and from a file (trailing newline dropped)."""
        monkeypatch.setenv("T_PW", "from-env-1")
        (tmp_path / "pw").write_text("from-file-2\n")
        cfg = write_config(
            tmp_path / "s.toml",
            f"""
            [[accounts]]
            pool = "p"
            username = "a"
            password = {{ env = "T_PW" }}
            [[accounts]]
            pool = "p"
            username = "b"
            password = {{ file = "{tmp_path / "pw"}" }}
            """,
        )
        s = load_settings(cfg)
        assert [a.password.get_secret_value() for a in s.accounts] == ["from-env-1", "from-file-2"]
        assert "from-env-1" not in repr(s)

    def test_unset_variable_names_field_and_variable(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A secret whose env variable is unset names the field and the variable."""
        monkeypatch.delenv("T_NOT_SET", raising=False)
        cfg = write_config(
            tmp_path / "s.toml",
            '[[accounts]]\npool = "p"\nusername = "a"\npassword = { env = "T_NOT_SET" }\n',
        )
        with pytest.raises(ConfigError, match=r"accounts\.0\.password: .*T_NOT_SET is not set"):
            load_settings(cfg)

    def test_environment_override_takes_json_reference(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """SYNTHMON_SERVER__API_TOKEN='{"env": ...}' works; a bare value there is refused."""
        monkeypatch.setenv("T_TOKEN_SRC", "tok-from-env")
        monkeypatch.setenv("SYNTHMON_SERVER__API_TOKEN", '{"env": "T_TOKEN_SRC"}')
        token = load_settings(None).server.api_token
        assert token is not None
        assert token.get_secret_value() == "tok-from-env"
        monkeypatch.setenv("SYNTHMON_SERVER__API_TOKEN", "tok-bare")
        with pytest.raises(ConfigError, match=r"environment SYNTHMON_SERVER__API_TOKEN") as err:
            load_settings(None)
        assert "tok-bare" not in str(err.value)

    def test_missing_secret_file_is_named(self, tmp_path: Path) -> None:
        """An unreadable secret file is reported with its path."""
        cfg = write_config(
            tmp_path / "s.toml",
            '[server]\napi_token = { file = "/nonexistent/synthmon-token" }\n',
        )
        with pytest.raises(ConfigError, match="/nonexistent/synthmon-token"):
            load_settings(cfg)

    def test_every_loaded_secret_is_scrubbed(
        self, tmp_path: Path, secret_env: dict[str, str]
    ) -> None:
        """Account passwords, TOTP secrets and the API token all register for scrubbing."""
        cfg = write_config(
            tmp_path / "s.toml",
            '[server]\napi_token = { env = "T_API_TOKEN" }\n' + ACCOUNTS_TOML,
        )
        scrub = scrubber_for(load_settings(cfg))
        for value in secret_env.values():
            assert scrub(f"x {value} y") == "x *** y"


class TestScrubber:
    def test_masks_plain_url_and_json_escaped_forms(self) -> None:
        """A secret is masked as written, URL-encoded and JSON-escaped."""
        scrub = Scrubber(['p@ss "w/rd"'])
        assert scrub('pw=p@ss "w/rd".') == "pw=***."
        assert scrub("pw=p%40ss%20%22w%2Frd%22") == "pw=***"
        assert scrub(json.dumps({"pw": 'p@ss "w/rd"'})) == '{"pw": "***"}'

    def test_longer_secret_masked_whole(self) -> None:
        """A secret containing another is masked whole, not partly."""
        scrub = Scrubber(["abcd", "abcdefgh"])
        assert scrub("abcdefgh abcd") == "*** ***"

    def test_without_secrets_text_is_unchanged(self) -> None:
        """No secrets configured: output passes through untouched."""
        assert Scrubber()("anything") == "anything"

    def test_result_messages_scrubbed(self) -> None:
        """Error messages of a RunResult and its steps lose the secret."""
        scrub = Scrubber(["s3cr3t-value"])
        r = RunResult(
            journey="j",
            target="t",
            run_id="1",
            trace_id="1",
            status=Status.FAILURE,
            started_at=0,
            duration=1,
            steps=(StepResult("login", Status.FAILURE, 1, error_message="bad s3cr3t-value"),),
            error_message="login with s3cr3t-value failed",
        )
        clean = scrub.result(r)
        assert clean.error_message == "login with *** failed"
        assert clean.steps[0].error_message == "bad ***"

    @pytest.mark.usefixtures("restore_logging")
    def test_log_processor_scrubs_events_and_tracebacks(self) -> None:
        """Log events, nested fields and exception tracebacks never show the secret."""
        out = io.StringIO()
        configure_logging(
            fmt="json", stream=out, extra_processors=[Scrubber(["s3cr3t-value"]).processor]
        )
        log = structlog.get_logger("t")
        log.info("login s3cr3t-value", data={"pw": ["s3cr3t-value"]})
        try:
            raise RuntimeError("boom s3cr3t-value")
        except RuntimeError:
            log.exception("failed")
        text = out.getvalue()
        assert "s3cr3t-value" not in text
        assert text.count("***") >= 3
        assert "RuntimeError" in text


class TestAccountConfig:
    def test_same_account_twice_on_one_target_is_refused(
        self, tmp_path: Path, secret_env: dict[str, str]
    ) -> None:
        """An account listed in two pools for the same target is a config error (two
        runs could otherwise use it at once); disjoint targets are fine."""
        entry = (
            '[[accounts]]\npool = "{pool}"\nusername = "same@shop.example"\n'
            'password = {{ env = "T_SHOPPER1_PASSWORD" }}\n{targets}\n'
        )
        targets = '[targets.a]\nbase_url = "http://a.example"\n[targets.b]\nbase_url = "http://b.example"\n'
        cfg = write_config(
            tmp_path / "dup.toml",
            targets + entry.format(pool="p1", targets="") + entry.format(pool="p2", targets=""),
        )
        with pytest.raises(ConfigError, match=r"'same@shop\.example' is listed twice"):
            load_settings(cfg)
        cfg = write_config(
            tmp_path / "ok.toml",
            targets
            + entry.format(pool="p1", targets='targets = ["a"]')
            + entry.format(pool="p2", targets='targets = ["b"]'),
        )
        assert len(load_settings(cfg).accounts) == 2

    def test_unknown_account_target_is_named(
        self, tmp_path: Path, secret_env: dict[str, str]
    ) -> None:
        """An account for a target that is not configured names it and the known ones."""
        cfg = write_config(
            tmp_path / "c.toml",
            '[targets.prod]\nbase_url = "http://p.example"\n[[accounts]]\npool = "p"\n'
            'username = "u"\npassword = { env = "T_SHOPPER1_PASSWORD" }\ntargets = ["prd"]\n',
        )
        with pytest.raises(
            ConfigError, match=r"unknown targets \['prd'\]; configured targets: \['prod'\]"
        ):
            load_settings(cfg)

    def test_bad_totp_secret_is_refused_without_echoing_it(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret_env: dict[str, str]
    ) -> None:
        """A TOTP secret that is not base32 is a config error that does not print it."""
        monkeypatch.setenv("T_BAD_TOTP", "not-base32-!!")
        cfg = write_config(
            tmp_path / "c.toml",
            '[[accounts]]\npool = "p"\nusername = "u"\n'
            'password = { env = "T_SHOPPER1_PASSWORD" }\ntotp_secret = { env = "T_BAD_TOTP" }\n',
        )
        with pytest.raises(ConfigError, match=r"accounts\.0\.totp_secret: .*base32") as err:
            load_settings(cfg)
        assert "not-base32" not in str(err.value)
