"""HTTP journeys in worker processes (`[scheduler] workers = N`, docs/workers.md).

A daemon is one event loop, so one core; past ~100 HTTP runs a second (docs/deploy.md,
"Sizing") that core is full. With workers, the daemon keeps everything but the run
itself — scheduling, slots, retries, leases, scrubbing, sinks, alerts, history, the web
server — and hands each HTTP attempt's `RunRequest` to one of N child processes
(`pool.WorkerPool`, a `Runner`), which runs the journey with its own `HttpRunner` and
sends the `RunResult` back (`child`). Browser journeys stay in the daemon (Chromium is
a process of its own already).
"""
