"""Alerting: from the sequence of run results to notifications that are true, fast and
never lost.

    policy.py     the pure state machine (ok → pending → firing → resolved)
    alert.py      the Alert payload every notifier gets
    notifiers/    alertmanager, pagerduty, slack, webhook, log: `async send(alert)`
    store.py      SQLite: outbox, alert states, silences
    outbox.py     background delivery with backoff and jitter
    silences.py   maintenance windows and runtime silences
    engine.py     the sink that ties them together
    render.py     what an alert says: summary, links to the journey page and artifacts
    settings.py   the [alerting] config section

Decisions are written down in docs/alerting.md.
"""
