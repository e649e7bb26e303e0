"""scripts/screenshots.py (`make screenshots`) still produces the README's pictures."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.status.conftest import screenshots

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


class TestScreenshotScript:
    async def test_writes_status_and_journey_pages_at_desktop_and_phone_width(
        self, tmp_path: Path
    ) -> None:
        """The script writes the four pictures README.md shows, desktop 1280 px and
        phone 375 px wide, into the folder it is given."""
        written = await screenshots.main(tmp_path)
        names = {p.name: png_size(p) for p in written}
        assert set(names) == {
            "status-desktop.png",
            "status-phone.png",
            "journey-desktop.png",
            "journey-phone.png",
        }
        for name, (width, height) in names.items():
            assert width == (375 if "phone" in name else 1280), name
            assert height >= 600, name
        readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
        for name in names:
            assert f"docs/images/{name}" in readme, f"README.md does not show {name}"
