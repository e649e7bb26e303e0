"""Command line: `synthmon run`, `check`, `pause` / `resume`, `silence`, `healthcheck`.
One module per command; this one parses arguments and dispatches."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from synthmon._version import __version__
from synthmon.config.secrets import unresolved_secrets_allowed
from synthmon.config.settings import Settings, load_settings
from synthmon.errors import ConfigError
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
    from synthmon.cli import compare, once

    once.add_parser(sub)
    compare.add_parser(sub)
    hc = sub.add_parser("healthcheck", help="exit 0 when the local daemon answers /healthz")
    hc.add_argument("--config", "-c", help="the daemon's TOML config (missing: env only)")
    hc.add_argument("--timeout", type=float, default=3.0)
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
    if args.command == "healthcheck":
        from synthmon.cli.healthcheck import healthcheck

        return healthcheck(args.config, args.timeout)
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
        from synthmon.cli.check import check

        return check(settings, args.journeys_dir, out=sys.stdout, err=sys.stderr, shard=shard)
    if args.command == "compare":
        from synthmon.cli.compare import compare_command

        return compare_command(args, settings, out=sys.stdout, err=sys.stderr)
    if args.command == "once":
        from synthmon.cli.once import once

        return once(args, settings, out=sys.stdout, err=sys.stderr)
    from synthmon.cli.run import run

    return run(settings)


if __name__ == "__main__":
    raise SystemExit(main())
