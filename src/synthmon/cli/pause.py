"""`synthmon pause` / `synthmon resume`: the kill switch from a shell.

They talk to the running daemon (`POST /api/pause`, `/api/resume` on
`server.listen`, with `server.api_token`), which applies the change at once and
persists it. Only `server.api_token` of the config's secrets is needed, so an
operator can pull the switch from a shell that lacks the accounts' secrets (the
config is loaded as `check` loads it; the daemon checks the selector's names).
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

import httpx

from synthmon.config.secrets import UnresolvedSecret
from synthmon.config.settings import ServerConfig

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


def pause_command(
    args: argparse.Namespace, server: ServerConfig, *, out: TextIO, err: TextIO
) -> int:
    selector = {k: getattr(args, k) for k in ("journey", "tag", "target")}
    if args.all == any(selector.values()):
        print(
            f"synthmon {args.command}: give --journey, --tag and/or --target, or --all",
            file=err,
        )
        return EXIT_CONFIG
    if isinstance(server.api_token, UnresolvedSecret):
        print(
            f"synthmon {args.command}: server.api_token: {server.api_token.problem} "
            "(the daemon refuses the request without it)",
            file=err,
        )
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
