"""Artifact storage, retention, trace scrubbing and the /artifacts route."""

from __future__ import annotations

import zipfile
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

from synthmon.runners.browser.artifacts import ArtifactStore, scrub_zip
from synthmon.safety.scrub import Scrubber
from synthmon.web.artifacts import artifact_routes
from synthmon.web.auth import AccessPolicy, guard
from synthmon.web.server import StatusServer

DAY = 86400.0


def _run_id(epoch: float, n: int = 0) -> str:
    return f"{int(epoch * 1000):012x}{n:020x}"


def _store(root: Path, now: float, **kw: float) -> ArtifactStore:
    return ArtifactStore(root, clock=lambda: now, **kw)  # type: ignore[arg-type]


def _add(store: ArtifactStore, journey: str, started: float, size: int = 10) -> Path:
    folder = store.run_dir(journey, _run_id(started))
    (folder / "screenshot.png").write_bytes(b"x" * size)
    return folder


class TestRetention:
    def test_keeps_newest_runs_per_journey(self, tmp_path: Path):
        """With max_runs_per_journey=3 the oldest runs of a journey are deleted, other
        journeys untouched."""
        now = 1_800_000_000.0
        store = _store(tmp_path, now, max_runs_per_journey=3)
        runs = [_add(store, "checkout", now - 100 + i) for i in range(5)]
        other = _add(store, "login", now - 1000)
        deleted = store.enforce()
        assert {r.path for r in deleted} == set(runs[:2])
        assert all(p.exists() for p in runs[2:])
        assert other.exists()

    def test_deletes_runs_older_than_max_age(self, tmp_path: Path):
        """Runs older than max_age go, younger ones stay."""
        now = 1_800_000_000.0
        store = _store(tmp_path, now, max_age=7 * DAY)
        old = _add(store, "checkout", now - 8 * DAY)
        young = _add(store, "checkout", now - 6 * DAY)
        store.enforce()
        assert not old.exists()
        assert young.exists()
        assert not (tmp_path / "login").exists()

    def test_total_bytes_limit_deletes_oldest_first_across_journeys(self, tmp_path: Path):
        """Over max_total_bytes, the oldest runs of any journey go until it fits."""
        now = 1_800_000_000.0
        store = _store(tmp_path, now, max_total_bytes=250)
        a = _add(store, "a", now - 30, size=100)
        b = _add(store, "b", now - 20, size=100)
        c = _add(store, "a", now - 10, size=100)
        store.enforce()
        assert not a.exists()
        assert b.exists()
        assert c.exists()

    def test_journey_folder_disappears_with_its_last_run(self, tmp_path: Path):
        """An emptied journey folder is removed too."""
        now = 1_800_000_000.0
        store = _store(tmp_path, now, max_age=DAY)
        _add(store, "gone", now - 2 * DAY)
        store.enforce()
        assert not (tmp_path / "gone").exists()

    def test_dot_names_cannot_escape_the_root(self, tmp_path: Path):
        """A journey named '..' still gets a folder inside the artifacts root."""
        store = ArtifactStore(tmp_path / "root")
        folder = store.run_dir("..", "0123")
        assert folder.resolve().is_relative_to((tmp_path / "root").resolve())


class TestScrubZip:
    def test_text_entries_are_scrubbed_and_binary_kept(self, tmp_path: Path):
        """Every text entry of a trace zip goes through the scrubber; images stay
        byte for byte."""
        path = tmp_path / "trace.zip"
        png = b"\x89PNG\r\n\x1a\n\xff\xfe"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("trace.trace", '{"value": "hunter2"}')
            z.writestr("resources/page.html", "<input value=hunter2>")
            z.writestr("resources/shot.png", png)
        scrub_zip(path, lambda t: t.replace("hunter2", "***"))
        with zipfile.ZipFile(path) as z:
            assert z.read("trace.trace") == b'{"value": "***"}'
            assert z.read("resources/page.html") == b"<input value=***>"
            assert z.read("resources/shot.png") == png
        assert list(tmp_path.iterdir()) == [path]  # no temporary file left


class _NoStatus:
    def readiness(self) -> tuple[bool, dict[str, object]]:
        return True, {}

    def journeys_json(self) -> list[dict[str, object]]:
        return []


class TestArtifactRoute:
    async def test_serves_run_files_and_refuses_traversal(self, tmp_path: Path):
        """/artifacts/<journey>/<run>/<file> serves the file (HTML as inert text);
        paths that leave the artifacts folder answer 404."""
        root = tmp_path / "artifacts"
        run = root / "checkout" / "0123abcd"
        run.mkdir(parents=True)
        (run / "page.html").write_text("<script>alert(1)</script>")
        (tmp_path / "secret.txt").write_text("do not serve")
        server = StatusServer(
            _NoStatus(),
            CollectorRegistry(),
            guard=guard(AccessPolicy("127.0.0.1"), Scrubber(())),
            host="127.0.0.1",
            port=0,
            extra_routes=[artifact_routes(root)],
        )
        await server.start()
        try:
            async with httpx.AsyncClient(base_url=server.url) as client:
                r = await client.get("/artifacts/checkout/0123abcd/page.html")
                assert r.status_code == 200
                assert r.text == "<script>alert(1)</script>"
                assert r.headers["content-type"].startswith("text/plain")
                assert r.headers["content-security-policy"] == "sandbox"
                r = await client.get("/artifacts/checkout/0123abcd/")
                assert r.json() == {"files": ["page.html"]}
                for bad in (
                    "/artifacts/checkout/../../secret.txt",
                    "/artifacts/checkout/%2e%2e/..%2fsecret.txt",
                    "/artifacts/..%2f..%2f/x/secret.txt",
                    "/artifacts/checkout/0123abcd/missing.png",
                ):
                    r = await client.get(bad)
                    assert r.status_code == 404, bad
                    assert "do not serve" not in r.text
        finally:
            await server.stop()
