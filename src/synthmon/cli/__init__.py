"""Command line: `synthmon run`, `synthmon check`, `synthmon pause` / `resume`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from synthmon._version import __version__
from synthmon.config.secrets import unresolved_secrets, unresolved_secrets_allowed
from synthmon.config.settings import Settings, load_settings
from synthmon.errors import ConfigError
from synthmon.journeys.loader import load_journeys
from synthmon.scheduling.sharding import Shard, parse_shard

EXIT_OK, EXIT_PROBLEMS, EXIT_CONFIG = 0, 1, 2
DEFAULT_CONFIG = "synthmon.toml"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="synthmon", description="Synthetic monitoring: user journeys as code."
    )
    p.add_argument("--version", action="version", version=f"synthmon {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the monitoring daemon")
    run.add_argument(
        "--config", "-c", help=f"TOML config file (default: ./{DEFAULT_CONFIG} if present)"
    )

    check = sub.add_parser("check", help="validate the config and every journey file")
    check.add_argument("--config", "-c", help="TOML config file")
    check.add_argument("journeys_dir", nargs="?", help="journeys folder (default: from config)")
    check.add_argument(
        "--shard",
        type=_shard_arg,
        help="list only what shard INDEX/COUNT owns, e.g. 2/5 (default: shard from config)",
    )
    from synthmon.cli import silence as silence_cli
    from synthmon.cli.pause import add_parsers

    add_parsers(sub)
    silence_cli.add_parser(sub)
    return p


def _shard_arg(value: str) -> Shard:
    try:
        return parse_shard(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _settings(path: str | None) -> Settings:
    if path is None and Path(DEFAULT_CONFIG).exists():
        path = DEFAULT_CONFIG
    return load_settings(path)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("pause", "resume"):
        from synthmon.cli.pause import pause_command

        path = args.config
        if path is None and Path(DEFAULT_CONFIG).exists():
            path = DEFAULT_CONFIG
        return pause_command(args, path, out=sys.stdout, err=sys.stderr)
    try:
        if args.command == "check":
            # CI checks configs without production secrets: missing ones are warnings.
            with unresolved_secrets_allowed():
                settings = _settings(args.config)
        else:
            settings = _settings(args.config)
    except ConfigError as exc:
        print(f"synthmon: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "silence":
        from synthmon.cli import silence as silence_cli

        return silence_cli.main(args, settings.data_dir, out=sys.stdout, err=sys.stderr)
    if args.command == "check":
        shard = args.shard or (parse_shard(settings.shard) if settings.shard else None)
        return check(settings, args.journeys_dir, out=sys.stdout, err=sys.stderr, shard=shard)
    return run(settings)


def run(settings: Settings) -> int:
    from synthmon.daemon import Daemon
    from synthmon.runtime.logs import configure_logging
    from synthmon.safety.facade import scrubber_for

    configure_logging(
        level=settings.logging.level,
        fmt=settings.logging.format,
        extra_processors=[scrubber_for(settings).processor],
        static={"location": settings.location} if settings.location else None,
    )
    try:
        asyncio.run(Daemon(settings).run_forever())
    except ConfigError as exc:
        # Found only when starting (an unwritable data_dir, say): same as bad config.
        print(f"synthmon: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK


def check(
    settings: Settings,
    journeys_dir: str | None,
    *,
    out: TextIO,
    err: TextIO,
    shard: Shard | None = None,
) -> int:
    """Print what would run (on `shard`, when given); report every problem as
    file:line: message."""
    directory = Path(journeys_dir) if journeys_dir else settings.journeys_dir
    report = load_journeys(directory, known_targets=settings.targets)
    rows = [("JOURNEY", "KIND", "SEVERITY", "SCHEDULE", "TIMEOUT", "TARGETS", "FILE")]
    all_pairs = owned_pairs = 0
    for j in report.journeys:
        targets = j.targets if j.targets is not None else tuple(settings.targets)
        all_pairs += len(targets)
        if shard is not None:
            targets = tuple(t for t in targets if shard.owns_pair(j.name, t))
            if not targets:
                continue
        owned_pairs += len(targets)
        rows.append(
            (
                j.name,
                j.kind.value,
                j.severity.value,
                j.schedule,
                f"{j.timeout:g}s",
                ",".join(targets) or "-",
                j.where,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip(), file=out)
    if not settings.targets:
        print("warning: no [targets.*] configured: nothing will run", file=err)
    if shard is not None:
        print(f"shard {shard} owns {owned_pairs} of {all_pairs} (journey, target) pairs", file=out)
    for field, missing in unresolved_secrets(settings):
        print(f"warning: {field}: {missing} (needed by `synthmon run`)", file=err)
    from synthmon.alerting.policybook import policy_problems
    from synthmon.safety.accounts import pool_problems

    problems = [
        *report.problems,
        *pool_problems(report.journeys, settings),
        *policy_problems(report.journeys, settings.alerting),
    ]
    for problem in problems:
        print(problem, file=err)
    print(
        f"{len(report.journeys)} journeys in {len(report.files)} files, "
        f"{len(settings.targets)} targets, {len(problems)} problems",
        file=out,
    )
    return EXIT_PROBLEMS if problems else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
