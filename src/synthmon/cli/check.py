"""`synthmon check`: validate the config and every journey file, list what would run."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from synthmon.config.secrets import unresolved_secrets
from synthmon.config.settings import Settings
from synthmon.journeys.loader import load_journeys
from synthmon.scheduling.sharding import Shard, owns_pair

EXIT_OK, EXIT_PROBLEMS = 0, 1


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
            targets = tuple(t for t in targets if owns_pair(shard, j.name, t))
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
    from synthmon.alerting.policybook import policy_problems, retry_warnings
    from synthmon.safety.accounts import pool_problems

    for warning in retry_warnings(report.journeys, settings.alerting):
        print(f"warning: {warning}", file=err)
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
