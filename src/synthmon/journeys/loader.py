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
from types import ModuleType

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
    return JourneyFolder(directory).load(known_targets)


@dataclass(slots=True)
class _FileVersion:
    digest: str
    journeys: list[Journey]
    problems: list[Problem]
    # The bytes these journeys were compiled from: worker processes run exactly this
    # version (runners/workers/), even after the file changed on disk.
    source: bytes = b""


class JourneyFolder:
    """A journeys folder loaded again and again (hot reload, docs/journeys.md).

    Each `load()` re-imports only the files whose content changed, so the journeys of
    untouched files stay the very same objects (their pairs keep schedule and state).
    A file whose new version does not load keeps its last good version running; its
    problems are still reported. A removed file's journeys are gone."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._seen: dict[str, _FileVersion] = {}  # what each file held at its last read
        self._good: dict[str, _FileVersion] = {}  # each file's last version that loaded
        # id(journey) -> (journey, its version), for `source_of`.
        self._versions: dict[int, tuple[Journey, _FileVersion]] = {}

    def load(self, known_targets: Iterable[str] | None = None) -> LoadReport:
        report = LoadReport()
        root = self.directory
        if not root.is_dir():
            report.problems.append(
                Problem(str(root), 0, "journeys folder not found; set journeys_dir in the config")
            )
            return report
        targets = set(known_targets) if known_targets is not None else None
        seen: dict[str, Journey] = {}
        files = journey_files(root)
        present = {str(p) for p in files}
        for gone in (self._seen.keys() | self._good.keys()) - present:
            self._seen.pop(gone, None)
            self._good.pop(gone, None)
        for path in files:
            fname = str(path)
            report.files.append(fname)
            version = self._read(path)
            found, problems = version.journeys, list(version.problems)
            problems += _unknown_targets(found, targets)
            good = self._good.get(fname)
            if problems and good is not None and good is not version:
                # A broken edit: the previous version keeps running, if it still fits.
                if not _unknown_targets(good.journeys, targets):
                    found = good.journeys
            elif not problems:
                self._good[fname] = version
            report.problems.extend(problems)
            for j in found:
                if targets is not None and any(t not in targets for t in j.targets or ()):
                    continue  # reported above
                if j.name in seen:
                    first = seen[j.name]
                    report.problems.append(
                        Problem(
                            j.filename,
                            j.lineno,
                            f"duplicate journey name {j.name!r} (first defined at "
                            f"{first.where}); pass name= to one of them",
                        )
                    )
                    continue
                seen[j.name] = j
                report.journeys.append(j)
        self._versions = {
            id(j): (j, v) for v in (*self._good.values(), *self._seen.values()) for j in v.journeys
        }
        return report

    def source_of(self, journey: Journey) -> tuple[str, bytes] | None:
        """(digest, source) of the file version `journey` was loaded from; None for a
        journey this folder did not load."""
        entry = self._versions.get(id(journey))
        if entry is None or entry[0] is not journey or not entry[1].digest:
            return None
        return entry[1].digest, entry[1].source

    def _read(self, path: Path) -> _FileVersion:
        fname = str(path)
        try:
            # Through symlinks: a Kubernetes ConfigMap swaps `..data`, not the file.
            # Read once: the digest and the compiled code are of the same bytes.
            data = path.read_bytes()
        except OSError:
            data = None
        source, digest = data, hashlib.sha256(data).hexdigest() if data is not None else ""
        last = self._seen.get(fname)
        if last is not None and digest and last.digest == digest:
            return last
        single = LoadReport()
        journeys = _load_file(path, single, source)
        version = _FileVersion(digest, journeys, single.problems, source or b"")
        self._seen[fname] = version
        return version


def _unknown_targets(journeys: Iterable[Journey], targets: set[str] | None) -> list[Problem]:
    problems = []
    for j in journeys:
        if targets is not None and j.targets is not None:
            unknown = [t for t in j.targets if t not in targets]
            if unknown:
                problems.append(
                    Problem(
                        j.filename,
                        j.lineno,
                        f"journey {j.name!r} names unknown target(s) {unknown}; "
                        f"configured targets: {sorted(targets)}",
                    )
                )
    return problems


def load_source(fname: str, source: bytes) -> tuple[list[Journey], list[Problem]]:
    """The journeys of one file version given as bytes (a worker process loads what
    the daemon loaded, not what the file holds now)."""
    report = LoadReport()
    return _load_file(Path(fname), report, source), report.problems


def _load_file(path: Path, report: LoadReport, source: bytes | None = None) -> list[Journey]:
    fname = str(path)
    # A unique module name per file, so a stdlib module named like the file never
    # collides with it; a new version of the file replaces the old one's entry.
    digest = hashlib.sha1(fname.encode(), usedforsecurity=False).hexdigest()[:10]
    modname = f"synthmon_journeys_{digest}_{path.stem}"
    try:
        if source is None:
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
    previous = sys.modules.get(modname)
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
        _restore(modname, previous)
        return []
    found = [v for v in vars(module).values() if isinstance(v, Journey)]
    # Only journeys declared in this file: an imported one would run twice.
    return sorted((j for j in found if j.filename == fname), key=lambda j: j.lineno)


def _restore(modname: str, previous: ModuleType | None) -> None:
    # A broken new version must not unload the one still running.
    if previous is None:
        del sys.modules[modname]
    else:
        sys.modules[modname] = previous


def _lineno_in(exc: BaseException, fname: str) -> int:
    line = 0
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == fname:
            line = lineno
    return line
