"""Names vulture (`make lint`) reports as unused that something outside `src/` uses.

vulture only sees calls in `src/`; each entry says who uses the name instead. Decorated
pydantic validators are skipped in pyproject.toml (`ignore_decorators`). The `_.name`
spelling is vulture's: any attribute of that name counts as used.
"""

# ruff: noqa: B018 - the expressions are the whitelist

_ = object()

# pydantic reads `model_config` of every model class (config/settings.py, config/alerting.py).
_.model_config
# pydantic-settings calls this hook by name; its parameters are its fixed signature.
_.settings_customise_sources
_.settings_cls
_.dotenv_settings
_.file_secret_settings

# The journey-author API (`synthmon.__all__`): journeys call these, src/ does not.
_.http  # ctx.http
_.fail  # ctx.fail(message)
_.defer  # ctx.defer(async_fn)
_.totp  # ctx.account.totp()
# ctx.run_source values: `synthmon once` and test harnesses set them; journeys compare them.
_.ONCE
_.TEST

# alerting/store.py OutboxEntry.created: the outbox row's creation time, carried with the
# entry for whoever inspects the outbox (it mirrors the SQLite column).
_.created

# prometheus_client's registry calls `collect()` of every registered collector
# (sinks/shadow_metrics.py ShadowMetrics).
_.collect
# ctx.shadow: journey-author API (issue 14), journeys call it.
_.shadow
# alerting/outbox.py Outbox.in_memory: read only by tests/faults/test_disk.py today
# (reported to the lead: expose it, e.g. as a metric, or move the check to one).
_.in_memory

# The async context manager protocol's fixed signature (runners/leftovers.py RunScope.__aexit__).
_.exc_info
# runners/tls.py ChainCache.parses: how often a chain was parsed, read by tests/tls and
# bench/tls_bench.py to hold the "parsed once per certificate change" promise.
_.parses
