"""`synthmon silence add|list|expire`: runtime silences, persisted in the alerting
database of `data_dir`, picked up by a running daemon at its next notification."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from synthmon.alerting.engine import DB_NAME
from synthmon.alerting.store import AlertStore
from synthmon.config.durations import format_duration, parse_duration
from synthmon.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("silence", help="hold back alert notifications for a while")
    p.add_argument("--config", "-c", help="TOML config file (its data_dir holds the silences)")
    ssub = p.add_subparsers(dest="silence_command", required=True)
    add = ssub.add_parser("add", help="add a silence (runs and recording continue)")
    add.add_argument("--journey", help="only this journey (default: all)")
    add.add_argument("--target", help="only this target (default: all)")
    add.add_argument("--tag", help="only journeys with this tag")
    add.add_argument("--duration", "-d", default="1h", help="how long, e.g. 30m, 2h (default 1h)")
    add.add_argument("--comment", "-m", required=True, help="why (shown in logs)")
    add.add_argument("--author", default="cli", help="who (default: cli)")
    ssub.add_parser("list", help="list active and future silences")
    exp = ssub.add_parser("expire", help="end a silence now")
    exp.add_argument("id", type=int)


def main(args: argparse.Namespace, data_dir: Path, *, out: TextIO, err: TextIO) -> int:
    try:
        store = AlertStore(data_dir / DB_NAME)
    except ConfigError as exc:
        print(f"synthmon silence: {exc}", file=err)
        return 2
    now = time.time()
    try:
        if args.silence_command == "add":
            try:
                duration = parse_duration(args.duration)
            except ValueError as exc:
                print(f"synthmon silence: --duration {args.duration!r}: {exc}", file=err)
                return 2
            matchers = {
                k: v
                for k, v in (("journey", args.journey), ("target", args.target), ("tag", args.tag))
                if v
            }
            sid = store.add_silence(matchers, now, now + duration, args.author, args.comment)
            what = ", ".join(f"{k}={v}" for k, v in matchers.items()) or "everything"
            print(f"silence {sid}: {what} for {format_duration(duration)}", file=out)
            return 0
        if args.silence_command == "list":
            for s in store.silences(now):
                what = ", ".join(f"{k}={v}" for k, v in s["matchers"].items()) or "everything"
                until = datetime.fromtimestamp(s["ends_at"], UTC).isoformat(timespec="seconds")
                print(
                    f"{s['id']}\t{what}\tuntil {until}\t{s['created_by']}: {s['comment']}", file=out
                )
            return 0
        if store.expire_silence(args.id, now):
            print(f"silence {args.id} expired", file=out)
            return 0
        print(
            f"synthmon silence: no active silence {args.id} (see 'synthmon silence list')", file=err
        )
        return 1
    finally:
        store.close()
