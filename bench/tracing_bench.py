"""Tracing on vs off: daemon CPU per run of the HTTP bench's journeys (bench/http_bench.py)
with `[tracing] enabled = false` and with every run exported over OTLP/HTTP.

The collector is a minimal OTLP/HTTP sink in a child process (its CPU not counted); the
SDK's batch worker thread runs in the daemon's process, so encoding and sending the
spans is counted. Off and on alternate, and each keeps its least disturbed round.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from typing import Any

import httpx
from http_bench import daemon_run, free_port, start_target
from sizes import Size

COLLECTOR = textwrap.dedent(
    """
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
    """
)


def start_collector() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", COLLECTOR, str(port)])
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(url, timeout=0.5)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("benchmark collector did not start")


async def main(size: Size) -> dict[str, Any]:
    target, url = start_target()
    collector, endpoint = start_collector()
    on_toml = f'[tracing]\nenabled = true\nendpoint = "{endpoint}"\nflush_interval = "1s"\n'
    try:
        offs, ons = [], []
        # Smoke: a 1 s interval, so the warm-up (one interval) is short too.
        n, every, seconds = size.pick((100, "2s", 15), (100, "2s", 6), (20, "1s", 1))
        for _ in range(size.pick(3, 1, 1)):
            offs.append(await daemon_run(url, n, every, seconds))
            ons.append(await daemon_run(url, n, every, seconds, extra_toml=on_toml))
    finally:
        for proc in (target, collector):
            proc.terminate()
            proc.wait()
    off = min(offs, key=lambda c: float(c["cpu_per_run"]))
    on = min(ons, key=lambda c: float(c["cpu_per_run"]))
    extra = on["cpu_per_run"] - off["cpu_per_run"]
    print("== HTTP journeys: CPU per run, tracing off vs on (1 step, 1 request: 3 spans) ==")
    print(
        f"  tracing off             {off['cpu_per_run'] * 1000:7.3f} ms CPU/run  "
        f"({off['runs']} runs, best of {len(offs)})"
    )
    print(
        f"  tracing on (OTLP/HTTP)  {on['cpu_per_run'] * 1000:7.3f} ms CPU/run  "
        f"({on['runs']} runs, best of {len(ons)})"
    )
    print(
        f"  tracing costs {extra * 1000:+.3f} ms CPU/run "
        f"({on['cpu_per_run'] / off['cpu_per_run']:.2f}x)"
    )
    return {"off": off, "on": on, "extra_cpu_per_run": extra}
