"""`synthmon pause` / `synthmon resume`: the kill switch from a shell.

They talk to the running daemon (`POST /api/pause`, `/api/resume` on
`server.listen`, with `server.api_token`), which applies the change at once and
persists it. Only the `[server]` section of the config is read, so an operator can
pull the switch from a shell that lacks the accounts' secrets.
"""

from __future__ import annotations

import argparse
import json
import os
import tomllib
from pathlib import Path
from typing import Any, TextIO

import httpx

from synthmon.config.settings import ENV_PREFIX, ServerConfig
from synthmon.errors import ConfigError

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def add_parsers(sub: Any) -> None:
    for name, verb in (("pause", "stop running"), ("resume", "run again")):
        p = sub.add_parser(
            name, help=f"{verb} journeys in the running daemon (kill switch; persisted)"
        )
        p.add_argument("--config", "-c", help="TOML config file (for server.listen/api_token)")
        p.add_argument("--journey", "-j", help="journey name")
        p.add_argument("--tag", "-t", help="every journey with this tag")
        p.add_argument("--target", help="every journey against this target")
        p.add_argument("--all", action="store_true", help="every journey on every target")
        p.add_argument("--url", help="daemon URL (default: from server.listen)")
        if name == "pause":
            p.add_argument("--reason", default="", help="why, shown in /api/pauses")


def server_config(path: str | None) -> ServerConfig:
    """The `[server]` section only, with SYNTHMON_SERVER__* overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8")).get("server", {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read config: {exc}") from None
    prefix = f"{ENV_PREFIX}SERVER__"
    for key, value in os.environ.items():
        if key.upper().startswith(prefix):
            field = key[len(prefix) :].lower()
            try:
                data[field] = (
                    json.loads(value)
                    if field in ("api_token", "metrics_auth", "read_auth")
                    else value
                )
            except ValueError:
                data[field] = value
    try:
        return ServerConfig(**data)
    except ValueError as exc:
        raise ConfigError(f"{path or '<defaults>'}: [server]: {exc}") from None


def pause_command(args: argparse.Namespace, path: str | None, *, out: TextIO, err: TextIO) -> int:
    selector = {k: getattr(args, k) for k in ("journey", "tag", "target")}
    if args.all == any(selector.values()):
        print(
            f"synthmon {args.command}: give --journey, --tag and/or --target, or --all",
            file=err,
        )
        return EXIT_CONFIG
    try:
        server = server_config(path)
    except ConfigError as exc:
        print(f"synthmon: {exc}", file=err)
        return EXIT_CONFIG
    url = args.url or _url(server)
    body: dict[str, Any] = {k: v for k, v in selector.items() if v}
    if args.all:
        body["all"] = True
    if getattr(args, "reason", ""):
        body["reason"] = args.reason
    headers = {}
    if server.api_token is not None:
        headers["Authorization"] = f"Bearer {server.api_token.get_secret_value()}"
    try:
        r = httpx.post(
            f"{url}/api/{args.command}", json=body, headers=headers, timeout=10, trust_env=False
        )
    except httpx.HTTPError as exc:
        print(f"synthmon {args.command}: cannot reach the daemon at {url}: {exc}", file=err)
        print("is `synthmon run` running with this config? (--url to point elsewhere)", file=err)
        return EXIT_FAILED
    try:
        answer = r.json()
    except ValueError:
        answer = {"error": r.text[:500]}
    if r.status_code != 200:
        print(f"synthmon {args.command}: {r.status_code}: {answer.get('error', answer)}", file=err)
        return EXIT_FAILED
    _report(args.command, answer, out)
    return EXIT_OK


def _url(server: ServerConfig) -> str:
    host = server.host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard bind is reachable on loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{server.port}"


def _report(command: str, answer: dict[str, Any], out: TextIO) -> None:
    if command == "pause":
        pairs = answer.get("pairs", [])
        print(f"paused {len(pairs)} journey/target pairs:", file=out)
        for pair in pairs:
            print(f"  {pair['journey']} @ {pair['target']}", file=out)
        return
    print(f"removed {len(answer.get('resumed', []))} pause rules", file=out)
    for pair in answer.get("still_paused", []):
        print(
            f"  still paused: {pair['journey']} @ {pair['target']} (by {pair['paused_by']})",
            file=out,
        )
