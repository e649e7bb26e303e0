"""Every benchmark is run by something: `bench/run.py --check`, the registry check that
`make bench` and CI's `make bench-smoke` start with (docs/benchmarks.md).

A bench/*.py with a top-level `async def main` that is not in run.py's BENCHES, or whose
main does not take the size first, would be run by nothing and rot unseen.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _check(bench: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(bench / "run.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _copy(tmp_path: Path) -> Path:
    copy = tmp_path / "bench"
    copy.mkdir()
    for path in BENCH.glob("*.py"):
        shutil.copy(path, copy / path.name)
    return copy


class TestBenchRegistry:
    def test_every_bench_in_the_repository_is_registered(self) -> None:
        """bench/run.py --check passes on the repository's own bench/ directory."""
        done = _check(BENCH)
        assert done.returncode == 0, done.stdout + done.stderr

    def test_an_unregistered_bench_fails_the_check(self, tmp_path: Path) -> None:
        """A new bench/*.py with an async main that nobody put in BENCHES fails, by name."""
        bench = _copy(tmp_path)
        (bench / "render_bench.py").write_text(
            "async def main(size):\n    print('figures')\n    return {'x': 1}\n"
        )
        done = _check(bench)
        assert done.returncode == 1
        assert "bench/render_bench.py has an async main() but is not in BENCHES" in done.stdout

    def test_a_bench_main_without_the_size_fails_the_check(self, tmp_path: Path) -> None:
        """A registered bench whose main still takes `quick` instead of the size fails."""
        bench = _copy(tmp_path)
        tls = bench / "tls_bench.py"
        text = tls.read_text()
        assert "async def main(size: Size)" in text
        tls.write_text(text.replace("async def main(size: Size)", "async def main(quick: bool)"))
        done = _check(bench)
        assert done.returncode == 1
        assert "bench/tls_bench.py: main() must take `size: Size` first" in done.stdout
