"""The tree is the pipeline (docs/architecture.md): imports run one way only.

model/errors ← config, journeys ← runners, safety, sinks, alerting, scheduling, runtime
← execution ← web ← daemon ← cli. A module may import its own layer (sideways) and
the layers below; an import that runs back up, or a cycle between layers, fails here.
Imports under `if TYPE_CHECKING:` count too, except the model's one reference to
`Journey` (a type only, documented in model.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import synthmon

PKG = Path(synthmon.__file__).parent

LAYERS: list[tuple[str, ...]] = [
    ("_version", "model", "errors"),
    ("config", "journeys"),
    ("runners", "safety", "sinks", "alerting", "scheduling", "runtime"),
    ("execution",),
    ("web",),
    ("daemon",),
    ("cli", "__main__"),
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}
ALLOWED_UP = {("model", "synthmon.journeys.dsl")}


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path, *, runtime_only: bool = False) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skip.update(id(n) for n in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(a.name for a in node.names)
    return found


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        out.append((".".join(rel.parts).removesuffix(".__init__"), path))
    return out


class TestLayout:
    def test_no_loose_modules_at_the_top(self) -> None:
        """Every top-level module is a pipeline stage of its own (nothing left loose)."""
        top = {p.stem for p in PKG.glob("*.py")}
        assert top <= {"__init__", "__main__", "_version", "model", "errors", "execution", "daemon"}

    @pytest.mark.parametrize(("module", "path"), _modules(), ids=lambda v: str(v))
    def test_imports_run_one_way(self, module: str, path: Path) -> None:
        """A module imports only its own layer and those below it."""
        stage = _stage(module)
        if stage == "__init__":
            return  # the journey-author API re-exports from below
        rank = RANK[stage]
        for imported in _imports(path):
            if not imported.startswith("synthmon.") or (stage, imported) in ALLOWED_UP:
                continue
            other = _stage(imported)
            assert RANK[other] <= rank, f"{module} imports {imported}: an arrow back up"

    @pytest.mark.parametrize(
        "stage", ["runners", "journeys", "model", "config"], ids=lambda v: str(v)
    )
    def test_runners_and_below_never_touch_metrics_or_web(self, stage: str) -> None:
        """Runners (and what they build on) never import prometheus_client or aiohttp."""
        for module, path in _modules():
            if _stage(module) != stage:
                continue
            for imported in _imports(path):
                root = imported.split(".")[0]
                assert root not in ("prometheus_client", "aiohttp"), f"{module}: {imported}"
                assert not imported.startswith("synthmon.sinks"), f"{module}: {imported}"

    def test_http_runner_does_not_load_playwright(self) -> None:
        """HTTP-only deployments never import Playwright: only runners/browser/ does
        (others may name its types for the type checker)."""
        for module, path in _modules():
            if module.startswith("synthmon.runners.browser"):
                continue
            for imported in _imports(path, runtime_only=True):
                assert not imported.startswith("playwright"), f"{module}: {imported}"

    def test_daemon_never_imports_the_demo_shop(self) -> None:
        """The demo shop is a target, not a pipeline stage: synthmon never imports it."""
        for module, path in _modules():
            for imported in _imports(path):
                assert not imported.startswith("synthmon_demo"), f"{module}: {imported}"
