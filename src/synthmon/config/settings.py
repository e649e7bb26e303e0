"""Configuration: a TOML file plus `SYNTHMON_*` environment overrides.

Validation only, no side effects. Environment variables win over the file and
nest with `__`: `SYNTHMON_SERVER__LISTEN=0.0.0.0:9321`,
`SYNTHMON_TARGETS__PRODUCTION__BASE_URL=https://shop.example`.
"""

from __future__ import annotations

import base64
import os
import ssl
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from synthmon.config.alerting import AlertingConfig
from synthmon.config.compare import CompareConfig
from synthmon.config.durations import parse_duration
from synthmon.config.environment import ENV_PREFIX, environment_problems
from synthmon.config.secrets import SecretRef, UnresolvedSecret
from synthmon.config.shard import parse_shard
from synthmon.config.tracing import TracingSettings
from synthmon.errors import ConfigError
from synthmon.model import Target

Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Section(BaseModel):
    # A typo in a key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricsAuthConfig(_Section):
    """Credentials `/metrics` requires: a bearer `token`, or basic `username`+`password`."""

    token: SecretRef | None = None
    username: str | None = None
    password: SecretRef | None = None

    @model_validator(mode="after")
    def _one_scheme(self) -> MetricsAuthConfig:
        basic = self.username is not None or self.password is not None
        if self.token is not None and basic:
            raise ValueError("give either token or username+password, not both")
        if basic and (self.username is None or self.password is None):
            raise ValueError("basic auth needs both username and password")
        if self.token is None and not basic:
            raise ValueError("give token, or username and password")
        return self


class ServerConfig(_Section):
    listen: str = "127.0.0.1:9321"
    # Public URL of this instance's status pages, used in alert links.
    external_url: str | None = None
    # Bearer token for mutating endpoints (POST /api/pause, ...); required to use them
    # when listen is not a loopback address. See docs/safety.md.
    api_token: SecretRef | None = None
    metrics_auth: MetricsAuthConfig | None = None
    # Credentials (bearer token or basic auth, as metrics_auth) for reading /api, the
    # status pages and /artifacts. Without them, reads are served only while listen is
    # a loopback address, or when public_read = true says so (docs/safety.md).
    read_auth: MetricsAuthConfig | None = None
    public_read: bool = False
    # Inbound connections at once (never more than a quarter of RLIMIT_NOFILE), and how
    # long a connection may stay without a complete request (docs/config.md).
    max_connections: int = Field(default=256, ge=1)
    idle_timeout: Duration = 10.0

    @model_validator(mode="after")
    def _read_rule(self) -> ServerConfig:
        if self.read_auth is not None and self.public_read:
            raise ValueError("give either read_auth or public_read = true, not both")
        return self

    @field_validator("listen")
    @classmethod
    def _host_port(cls, v: str) -> str:
        _, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("expected HOST:PORT, e.g. '127.0.0.1:9321' or '[::1]:9321'")
        return v

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]") or "0.0.0.0"  # noqa: S104

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class TargetConfig(_Section):
    base_url: str
    # Hosts a journey may reach; default: the host of base_url. "*.example.com" allowed.
    allowed_hosts: list[str] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    max_concurrency: int = Field(default=4, ge=1)
    max_requests_per_second: float | None = Field(default=None, gt=0)
    verify_tls: bool = True
    # A CA bundle (PEM) that signs this target's certificates (a private CA): ctx.http
    # trusts it instead of the public roots, as Prometheus' `tls_config.ca_file` does.
    ca_file: Path | None = None
    block_third_party: bool = False
    # A response body past this many bytes fails the run (read streaming, never held whole).
    max_response_size: ByteSize = Field(default=ByteSize(10 * 1024 * 1024), gt=0)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an absolute http(s) URL, e.g. 'https://shop.example'")
        return v.rstrip("/")

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, v: Path | None) -> Path | None:
        if v is not None:
            try:
                ssl.create_default_context(cafile=str(v))
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(
                    f"cannot load the CA bundle {str(v)!r} ({exc}); give a PEM file of the "
                    "CA certificates that sign this target's certificates"
                ) from None
        return v

    def to_target(self, name: str) -> Target:
        host = urlsplit(self.base_url).hostname or ""
        allowed = self.allowed_hosts if self.allowed_hosts is not None else [host]
        return Target(
            name=name,
            base_url=self.base_url,
            allowed_hosts=frozenset(h.lower() for h in allowed),
            headers=tuple(self.headers.items()),
            block_third_party=self.block_third_party,
            verify_tls=self.verify_tls,
            ca_file=str(self.ca_file) if self.ca_file is not None else None,
            max_concurrency=self.max_concurrency,
            max_requests_per_second=self.max_requests_per_second,
            max_response_bytes=int(self.max_response_size),
        )


class SchedulerConfig(_Section):
    # In-flight runs across all journeys and targets.
    max_concurrency: int = Field(default=50, ge=1)
    # SIGTERM: in-flight runs get this long to finish before they are cancelled.
    shutdown_grace: Duration = 20.0
    # Warn when the event loop is blocked (a journey calling time.sleep, say) this long.
    loop_lag_warning: Duration = 0.25
    # Sinks (metrics, logs, alerting) get this long per result before it is dropped.
    sink_timeout: Duration = 5.0
    # HTTP journeys run in this many worker processes, 0: on the daemon's own event
    # loop, one core (docs/workers.md; past ~100 HTTP runs a second, docs/deploy.md).
    workers: int = Field(default=0, ge=0, le=64)


class SyntheticConfig(_Section):
    """How synthetic traffic identifies itself to the target."""

    header: str = "X-Synthetic-Monitor"
    value: str = "synthmon"
    # Appended after "synthmon/<version>" in the User-Agent.
    user_agent_comment: str = "+https://github.com/synthmon/synthmon"
    # Sent with the pool name on every request of a run that holds an account.
    account_header: str = "X-Synthetic-Account"
    # How long a run waits for a free account before it is an error "no_account".
    account_wait: Duration = 5.0


class AccountConfig(_Section):
    """One synthetic account (`[[accounts]]`); secrets load via SecretRef only."""

    pool: str = Field(min_length=1)
    username: str = Field(min_length=1)
    password: SecretRef
    totp_secret: SecretRef | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    # Targets the account exists on; default: every target.
    targets: list[str] | None = None
    # Send username/password as HTTP basic auth on every request to the target's origin
    # (ctx.http and the browser's http_credentials); docs/safety.md.
    basic_auth: bool = False

    @field_validator("totp_secret")
    @classmethod
    def _base32(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not isinstance(v, UnresolvedSecret):
            try:
                base64.b32decode(
                    v.get_secret_value().upper() + "=" * (-len(v.get_secret_value()) % 8)
                )
            except ValueError:
                raise ValueError(
                    "totp_secret must be base32 (A-Z, 2-7), as MFA apps expect"
                ) from None
        return v


class ViewportConfig(_Section):
    width: int = Field(default=1280, ge=100, le=10000)
    height: int = Field(default=800, ge=100, le=10000)


class BrowserConfig(_Section):
    """The browser pool for `kind="browser"` journeys (see docs/browser.md)."""

    # None: Playwright's bundled Chromium if installed, else chromium / chromium-browser /
    # google-chrome found on PATH.
    executable_path: str | None = None
    headless: bool = True
    # Extra Chromium flags, after synthmon's own (no background networking, no sync, ...).
    args: list[str] = Field(default_factory=list)
    # Chromium's sandbox off (--no-sandbox). Only for hosts where it cannot work (some
    # containers running as root); never switched on behind your back.
    no_sandbox: bool = False
    # Browser runs in flight at once (each holds a BrowserContext, ~50-150 MB).
    max_concurrency: int = Field(default=2, ge=1)
    # Relaunch the browser after this many runs, or when its processes' RSS passes
    # max_rss_mb; restart the Playwright driver after driver_recycle_after. Never with a
    # run in flight.
    recycle_after_runs: int = Field(default=200, ge=1)
    max_rss_mb: float = Field(default=1024.0, gt=0)
    driver_recycle_after: Duration = 6 * 3600.0
    launch_timeout: Duration = 30.0
    viewport: ViewportConfig = ViewportConfig()
    locale: str = "en-US"
    timezone: str = "UTC"
    # Web Vitals per page (web-vitals injected into every document; docs/browser.md).
    web_vitals: bool = True


class ArtifactsConfig(_Section):
    """Failure artifacts of browser runs: screenshot, trace, HTML, console, network."""

    # None: <data_dir>/artifacts.
    dir: Path | None = None
    on: Literal["failure", "always", "never"] = "failure"
    # A screencast in the trace (filmstrip); costs ~20% CPU per browser run.
    trace_screenshots: bool = False
    max_age: Duration = 7 * 86400.0
    max_runs_per_journey: int = Field(default=50, ge=1)
    max_total_mb: float = Field(default=1024.0, gt=0)


class MetricsConfig(_Section):
    # Per-step duration and navigation-timing histograms: 11 series per step (and per
    # navigation phase) per pair, so off by default (docs/metrics.md, series budget).
    step_histograms: bool = False


class HistoryConfig(_Section):
    """Run history (docs/history.md): every run, slot and incident, in
    `<data_dir>/history.sqlite3`. Best-effort: a broken disk never stops monitoring."""

    enabled: bool = True
    # Directory of history.sqlite3; None: data_dir. Another disk keeps a full history
    # disk away from the alert outbox (relative: to the config file).
    dir: Path | None = None
    # Runs, slots and incidents older than this are deleted.
    max_age: Duration = 30 * 86400.0
    # When the file grows beyond this, the oldest runs go first.
    max_size_mb: float = Field(default=2048.0, gt=0)
    # Writes are batched off the event loop: at most this long between commits.
    flush_interval: Duration = 1.0
    # Results waiting for the writer beyond this many are dropped (and counted).
    max_queue: int = Field(default=100_000, ge=100)
    # How often availability/MTTR/MTBF (API and metrics) are recomputed.
    stats_interval: Duration = 60.0
    # Retention and VACUUM run this often.
    maintenance_interval: Duration = 3600.0


class StatusPageConfig(_Section):
    """The HTML status pages `/` and `/journeys/NAME` (docs/status-page.md)."""

    # A page for customers: only journeys tagged `public_tag`, without errors,
    # artifacts, trace links or target URLs, and readable without read_auth.
    public: bool = False
    public_tag: str = Field(default="public", min_length=1)
    # How often the open page refreshes itself in place (0: never).
    refresh: Duration = 30.0
    title: str = "synthmon"


class LoggingConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    # auto: readable on a terminal, JSON lines otherwise.
    format: Literal["auto", "json", "console"] = "auto"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    journeys_dir: Path = Path("journeys")
    data_dir: Path = Path("data")
    location: str | None = None
    # "2/5": run only the (journey, target) pairs shard 2 of 5 owns; "auto/5": the
    # index comes from a StatefulSet pod name (synthmon-2). See docs/deploy.md.
    shard: str | None = None
    server: ServerConfig = ServerConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    synthetic: SyntheticConfig = SyntheticConfig()
    logging: LoggingConfig = LoggingConfig()
    metrics: MetricsConfig = MetricsConfig()
    browser: BrowserConfig = BrowserConfig()
    artifacts: ArtifactsConfig = ArtifactsConfig()
    alerting: AlertingConfig = AlertingConfig()
    history: HistoryConfig = HistoryConfig()
    compare: CompareConfig = CompareConfig()
    status_page: StatusPageConfig = StatusPageConfig()
    tracing: TracingSettings = TracingSettings()
    targets: dict[str, TargetConfig] = Field(default_factory=dict)
    accounts: list[AccountConfig] = Field(default_factory=list)

    @field_validator("accounts")
    @classmethod
    def _account_targets(cls, v: list[AccountConfig], info: ValidationInfo) -> list[AccountConfig]:
        known = set(info.data.get("targets") or {})
        seen: dict[str, set[str]] = {}
        for account in v:
            unknown = sorted(set(account.targets or ()) - known)
            if unknown:
                raise ValueError(
                    f"account {account.username!r} names unknown targets {unknown}; "
                    f"configured targets: {sorted(known)}"
                )
            # One real account listed twice could be leased by two runs at once.
            on = set(account.targets) if account.targets is not None else known
            if seen.get(account.username, set()) & on or (account.username in seen and not known):
                raise ValueError(
                    f"account {account.username!r} is listed twice for the same target; "
                    "list it once (one pool), or give the entries disjoint targets"
                )
            seen.setdefault(account.username, set()).update(on)
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init kwargs; the environment must win over it.
        return (env_settings, init_settings)

    @field_validator("shard")
    @classmethod
    def _shard(cls, v: str | None) -> str | None:
        if v is not None:
            parse_shard(v)
        return v

    def target_list(self) -> list[Target]:
        return [cfg.to_target(name) for name, cfg in self.targets.items()]

    @property
    def history_dir(self) -> Path:
        return self.history.dir if self.history.dir is not None else self.data_dir

    @property
    def artifacts_dir(self) -> Path:
        return self.artifacts.dir if self.artifacts.dir is not None else self.data_dir / "artifacts"


def load_settings(path: str | Path | None) -> Settings:
    """Load `path` (TOML) with environment overrides.

    Raises ConfigError naming the file (or environment variable) and the field.
    """
    data: dict[str, Any] = {}
    where = str(path) if path is not None else "<defaults>"
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{where}: config file not found", path=where) from None
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read config: {exc.strerror}", path=where) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{where}: invalid TOML: {exc}", path=where) from None
        # Relative paths in the file are relative to the file, not to the cwd.
        base = Path(path).resolve().parent
        for key in ("journeys_dir", "data_dir"):
            if isinstance(data.get(key), str) and not os.path.isabs(data[key]):
                data[key] = str(base / data[key])
        artifacts = data.get("artifacts")
        if isinstance(artifacts, dict) and isinstance(artifacts.get("dir"), str):
            artifacts["dir"] = str(base / artifacts["dir"])  # an absolute dir stays as is
        history = data.get("history")
        if isinstance(history, dict) and isinstance(history.get("dir"), str):
            history["dir"] = str(base / history["dir"])
        for target in (data.get("targets") or {}).values():
            if isinstance(target, dict) and isinstance(target.get("ca_file"), str):
                target["ca_file"] = str(base / target["ca_file"])
        tracing = data.get("tracing")
        if isinstance(tracing, dict):
            for key in ("certificate", "client_certificate", "client_key"):
                if isinstance(tracing.get(key), str):
                    tracing[key] = str(base / tracing[key])
    problems = environment_problems(Settings, data, where)
    if problems:
        raise ConfigError(
            "invalid configuration:\n  " + "\n  ".join(problems), path=where
        ) from None
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, data, where), path=where) from None


def _format_errors(exc: ValidationError, data: Mapping[str, Any], where: str) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        dotted = ".".join(loc)
        env_name = ENV_PREFIX + "__".join(p.upper() for p in loc)
        if _env_sets(env_name):
            origin = f"environment {env_name}"
        elif _in_file(data, err["loc"]) or err["type"] == "missing":
            origin = where
        else:
            origin = "environment"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown setting (check the spelling; see docs/config.md)"
        lines.append(f"{origin}: {dotted}: {msg}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _env_sets(name: str) -> bool:
    # Environment variables match case-insensitively; a parent key set as JSON counts too.
    names = {k.upper() for k in os.environ}
    parts = name.split("__")
    return any("__".join(parts[:i]) in names for i in range(1, len(parts) + 1))


def _in_file(data: Mapping[str, Any], loc: tuple[int | str, ...]) -> bool:
    node: Any = data
    for part in loc:
        if isinstance(node, list) and isinstance(part, int):
            node = dict(enumerate(node))
        if not (isinstance(node, Mapping) and part in node):
            return False
        node = node[part]
    return True
