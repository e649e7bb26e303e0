"""Packaging: the wheel carries the package and the `synthmon` console script, and the
version comes from one place (src/synthmon/_version.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from synthmon._version import __version__
from synthmon.sinks.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from this checkout, offline (the build backend is installed here)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--wheel-dir",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    [built] = out.glob("synthmon-*.whl")
    return built


@pytest.mark.slow
class TestWheel:
    def test_contains_package_and_entry_point(self, wheel: Path) -> None:
        """The wheel ships synthmon, the demo shop beside it and a `synthmon` console script."""
        with zipfile.ZipFile(wheel) as z:
            names = set(z.namelist())
            dist_info = next(n.split("/")[0] for n in names if ".dist-info/" in n)
            entry_points = z.read(f"{dist_info}/entry_points.txt").decode()
            metadata = z.read(f"{dist_info}/METADATA").decode()
        for module in (
            "synthmon/__init__.py",
            "synthmon/cli/__init__.py",
            "synthmon/daemon.py",
            "synthmon/scheduling/sharding.py",
            "synthmon_demo/shop.py",
        ):
            assert module in names
        assert "synthmon = synthmon.cli:main" in entry_points
        assert f"\nVersion: {__version__}\n" in metadata
        # The status pages' CSS, script and icon are package data: the image has no
        # other way to serve them (no CDN, no external request).
        static = Path(__file__).resolve().parents[2] / "src/synthmon/web/static"
        for asset in sorted(p.name for p in static.iterdir()):
            assert f"synthmon/web/static/{asset}" in names, asset
        assert not any(n.startswith("tests/") for n in names)

    def test_installed_console_script_reports_the_version(
        self, wheel: Path, tmp_path: Path
    ) -> None:
        """`synthmon --version` from the installed wheel prints _version.__version__."""
        target = tmp_path / "site"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--no-index",
                "--target",
                str(target),
                str(wheel),
            ],
            check=True,
            capture_output=True,
        )
        env = {**os.environ, "PYTHONPATH": str(target)}
        out = subprocess.run(
            [str(target / "bin" / "synthmon"), "--version"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == f"synthmon {__version__}"
        where = subprocess.run(
            [sys.executable, "-c", "import synthmon; print(synthmon.__file__)"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert where.stdout.startswith(str(target))


class TestBuildInfo:
    def test_build_info_carries_the_version(self) -> None:
        """synthmon_build_info{version=...} is the same version as --version."""
        registry = CollectorRegistry()
        Metrics(registry)
        text = generate_latest(registry).decode()
        assert 'synthmon_build_info{python="' in text
        assert f'version="{__version__}"' in text
