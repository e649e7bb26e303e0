"""Regenerate deploy/kubernetes/journeys-configmap.yaml from journeys/ (no kubectl needed).

python scripts/sync_journeys_configmap.py
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "deploy" / "kubernetes" / "journeys-configmap.yaml"

HEADER = """\
# The journeys folder as a ConfigMap, mounted read-only at /etc/synthmon/journeys.
# Generated from journeys/ (a test fails when they differ). Regenerate with:
#   python scripts/sync_journeys_configmap.py
# A ConfigMap holds up to 1 MiB; for more journeys, build them into an image.
apiVersion: v1
kind: ConfigMap
metadata:
  name: synthmon-journeys
  labels:
    app.kubernetes.io/name: synthmon
data:
"""


def render() -> str:
    parts = [HEADER]
    for path in sorted((ROOT / "journeys").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        if not text.endswith("\n") or text.endswith("\n\n"):
            raise SystemExit(f"{path}: must end with exactly one newline for a YAML block")
        parts.append(f"  {path.name}: |\n")
        parts.extend(f"    {line}\n" if line else "\n" for line in text.splitlines())
    return "".join(parts)


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
