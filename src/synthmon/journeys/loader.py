"""Loads every `*.py` file of a journeys folder and collects the `Journey` objects
they define. One broken file never hides the others: problems are collected as
`file:line: message` and the rest load."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from synthmon.errors import JourneyDefinitionError
from synthmon.journeys.dsl import Journey, collecting_problems
from synthmon.model import Problem


@dataclass(slots=True)
class LoadReport:
    journeys: list[Journey] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def journey_files(directory: Path) -> list[Path]:
    """`*.py` files, sorted; names starting with `_` are helpers, not journeys."""
    return sorted(p for p in directory.glob("*.py") if not p.name.startswith("_"))


def load_journeys(directory: str | Path, known_targets: Iterable[str] | None = None) -> LoadReport:
    """Import each journey file of `directory` and validate what it declares."""
    report = LoadReport()
    root = Path(directory)
    if not root.is_dir():
        report.problems.append(
            Problem(str(root), 0, "journeys folder not found; set journeys_dir in the config")
        )
        return report
    seen: dict[str, Journey] = {}
    targets = set(known_targets) if known_targets is not None else None
    for path in journey_files(root):
        report.files.append(str(path))
        found = _load_file(path, report)
        for j in found:
            if j.name in seen:
                first = seen[j.name]
                report.problems.append(
                    Problem(
                        j.filename,
                        j.lineno,
                        f"duplicate journey name {j.name!r} (first defined at {first.where}); "
                        "pass name= to one of them",
                    )
                )
                continue
            if targets is not None and j.targets is not None:
                unknown = [t for t in j.targets if t not in targets]
                if unknown:
                    report.problems.append(
                        Problem(
                            j.filename,
                            j.lineno,
                            f"journey {j.name!r} names unknown target(s) {unknown}; "
                            f"configured targets: {sorted(targets)}",
                        )
                    )
                    continue
            seen[j.name] = j
            report.journeys.append(j)
    return report


def _load_file(path: Path, report: LoadReport) -> list[Journey]:
    fname = str(path)
    # A unique module name per file and content, so re-loading never collides with an
    # earlier version or with a stdlib module named like the file.
    digest = hashlib.sha1(fname.encode(), usedforsecurity=False).hexdigest()[:10]
    modname = f"synthmon_journeys_{digest}_{path.stem}"
    try:
        source = path.read_bytes()
        code = compile(source, fname, "exec")
    except SyntaxError as exc:
        report.problems.append(Problem(fname, exc.lineno or 0, f"syntax error: {exc.msg}"))
        return []
    except OSError as exc:
        report.problems.append(Problem(fname, 0, f"cannot read: {exc.strerror}"))
        return []
    spec = importlib.util.spec_from_file_location(modname, path)
    if spec is None:  # pragma: no cover - only for non-.py paths
        report.problems.append(Problem(fname, 0, "not a Python file"))
        return []
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    failed = False
    with collecting_problems() as declared:
        try:
            exec(code, module.__dict__)  # noqa: S102 - loading the user's journey code is the job
        except JourneyDefinitionError as exc:
            declared.append(exc)
        except Exception as exc:  # noqa: BLE001 - any import failure is reported, never fatal
            failed = True
            report.problems.append(
                Problem(fname, _lineno_in(exc, fname), f"{type(exc).__name__} on import: {exc}")
            )
    # Every bad declaration of the file, in the order met (not only the first).
    for bad in declared:
        report.problems.append(
            Problem(bad.filename or fname, bad.lineno or _lineno_in(bad, fname), str(bad))
        )
    if failed or declared:
        # A file with a problem loads none of its journeys, as before: half a file
        # running would surprise more than none of it.
        del sys.modules[modname]
        return []
    found = [v for v in vars(module).values() if isinstance(v, Journey)]
    # Only journeys declared in this file: an imported one would run twice.
    return sorted((j for j in found if j.filename == fname), key=lambda j: j.lineno)


def _lineno_in(exc: BaseException, fname: str) -> int:
    line = 0
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == fname:
            line = lineno
    return line
