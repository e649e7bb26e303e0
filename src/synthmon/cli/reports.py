"""Machine-readable reports of `synthmon once`: JUnit XML and JSON.

JUnit XML as CI systems read it (Jenkins' JUnit/xUnit plugins, GitLab, GitHub Actions
test reporters): one `<testcase>` per (journey, target); its steps as `<properties>`
(`step.<n>.<name>` = "success 0.123s"); a failed run as `<failure>` (the target
misbehaved or timed out) or `<error>` (the journey or synthmon broke) whose message
names the step and the error; artifact paths as `[[ATTACHMENT|path]]` lines in
`<system-out>`, the form Jenkins' attachments plugin and GitLab show as links.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from synthmon.journeys.dsl import Journey
from synthmon.model import RunResult, Status


def result_summary(r: RunResult) -> dict[str, Any]:
    """One run as JSON-ready data (the shape of `synthmon once --json`)."""
    return {
        "journey": r.journey,
        "target": r.target,
        "location": r.location,
        "run_id": r.run_id,
        "trace_id": r.trace_id,
        "result": r.status.value,
        "passed": r.status is Status.SUCCESS,
        "started_at": datetime.fromtimestamp(r.started_at, UTC).isoformat(),
        "duration_seconds": round(r.duration, 6),
        "attempt": r.attempt,
        "failed_step": r.failed_step,
        "error_type": r.error_type,
        "error": r.error_message,
        "reason": r.reason,
        "steps": [
            {
                "name": s.name,
                "result": s.status.value,
                "duration_seconds": round(s.duration, 6),
                "soft": s.soft,
                "error": s.error_message,
            }
            for s in r.steps
        ],
        "artifacts": list(r.artifacts),
    }


def write_json(path: Path, results: Sequence[RunResult]) -> None:
    failed = sum(1 for r in results if r.status is not Status.SUCCESS)
    body = {
        "passed": failed == 0,
        "summary": {"runs": len(results), "passed": len(results) - failed, "failed": failed},
        "results": [result_summary(r) for r in results],
    }
    atomic_write(path, json.dumps(body, indent=2).encode())


def _failure_message(r: RunResult) -> str:
    where = f"step {r.failed_step!r}: " if r.failed_step else ""
    what = (r.error_message or r.status.value).strip().splitlines()[0]
    return f"{r.status.value} at {where}{what}" if where else f"{r.status.value}: {what}"


def junit_tree(
    results: Sequence[RunResult], journeys: Mapping[str, Journey], *, suite: str = "synthmon"
) -> ET.ElementTree[ET.Element]:
    failures = sum(1 for r in results if r.status.is_target_failure)
    errors = sum(1 for r in results if r.status is Status.ERROR)
    total = sum(r.duration for r in results)
    started = min((r.started_at for r in results), default=0.0)
    root = ET.Element(
        "testsuites",
        name=suite,
        tests=str(len(results)),
        failures=str(failures),
        errors=str(errors),
        time=f"{total:.3f}",
    )
    ts = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(results)),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
        time=f"{total:.3f}",
        timestamp=datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        hostname=socket.gethostname(),
    )
    for r in results:
        j = journeys.get(r.journey)
        attrs = {"name": f"{r.journey} @ {r.target}", "classname": f"synthmon.{r.journey}"}
        attrs["time"] = f"{r.duration:.3f}"
        if j is not None and j.filename:
            attrs["file"] = j.filename
            attrs["line"] = str(j.lineno)
        tc = ET.SubElement(ts, "testcase", attrs)
        props = ET.SubElement(tc, "properties")
        for key, value in (
            ("target", r.target),
            ("run_id", r.run_id),
            ("trace_id", r.trace_id),
            ("attempt", str(r.attempt)),
        ):
            ET.SubElement(props, "property", name=key, value=value)
        for i, s in enumerate(r.steps, 1):
            ET.SubElement(
                props,
                "property",
                name=f"step.{i}.{s.name}",
                value=f"{s.status.value} {s.duration:.3f}s" + (" (soft)" if s.soft else ""),
            )
        if r.status is not Status.SUCCESS:
            kind = "error" if r.status is Status.ERROR else "failure"
            el = ET.SubElement(
                tc, kind, message=_failure_message(r), type=r.error_type or r.status.value
            )
            lines = [f"result: {r.status.value}" + (f" ({r.reason})" if r.reason else "")]
            if r.failed_step:
                lines.append(f"step: {r.failed_step}")
            if r.error_message:
                lines.append(f"error: {r.error_message}")
            lines.extend(
                f"step {s.name!r} ({s.status.value}): {s.error_message}"
                for s in r.steps
                if s.status is not Status.SUCCESS and s.error_message and s.name != r.failed_step
            )
            el.text = "\n".join(lines)
        if r.artifacts:
            out = ET.SubElement(tc, "system-out")
            out.text = "\n".join(f"[[ATTACHMENT|{os.path.abspath(p)}]]" for p in r.artifacts)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(path: Path, results: Sequence[RunResult], journeys: Mapping[str, Journey]) -> None:
    tree = junit_tree(results, journeys)
    data = ET.tostring(tree.getroot(), encoding="utf-8", xml_declaration=True)
    atomic_write(path, data)


def atomic_write(path: Path, data: bytes) -> None:
    # A CI step reading a half-written report would misreport the deploy.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
