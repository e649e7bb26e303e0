"""The OpenAPI 3.1 description of the JSON API, served at /api/openapi.json.

Stability: fields are only ever added; a field's meaning or type never changes within
`info.version` 1.x. `tests/history/test_api.py` validates every response against this.
"""

from __future__ import annotations

from typing import Any

J = dict[str, Any]


def _nullable(t: str, **extra: Any) -> J:
    return {"type": [t, "null"], **extra}


def _ref(name: str) -> J:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str], props: J, *, closed: bool = False) -> J:
    out: J = {"type": "object", "required": required, "properties": props}
    if closed:
        out["additionalProperties"] = False
    return out


def _q(name: str, schema: J, description: str) -> J:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _p(name: str) -> J:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _get(summary: str, schema: str, params: list[J], *errors: int) -> J:
    responses: J = {
        "200": {"description": "OK", "content": {"application/json": {"schema": _ref(schema)}}}
    }
    for code in errors:
        responses[str(code)] = {
            "description": "error",
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    return {"get": {"summary": summary, "parameters": params, "responses": responses}}


def spec() -> J:
    """The description, built once per call (`web.api` builds it once at start)."""
    NUM = {"type": "number"}
    STR = {"type": "string"}
    INT = {"type": "integer"}
    BOOL = {"type": "boolean"}
    RESULT = {"type": "string", "enum": ["success", "failure", "timeout", "error"]}
    OUTCOME = {
        "type": "string",
        "enum": ["passed", "failed", "timed_out", "error", "skipped", "missed"],
    }
    WINDOWED = {"type": "object", "additionalProperties": _nullable("number")}

    STEP = _obj(
        ["name", "status", "duration_seconds", "soft", "error"],
        {
            "name": STR,
            "status": RESULT,
            "duration_seconds": NUM,
            "soft": BOOL,
            "error": _nullable("string"),
            "timings": {"type": "object", "additionalProperties": NUM},
        },
    )
    RUN = _obj(
        [
            "id",
            "run_id",
            "journey",
            "target",
            "location",
            "trace_id",
            "scheduled_at",
            "started_at",
            "duration_seconds",
            "status",
            "reason",
            "failed_step",
            "error_type",
            "error",
            "attempt",
            "retried",
            "counted",
            "steps",
            "artifacts",
            "web_vitals",
        ],
        {
            "id": {**INT, "description": "row id: newer runs have larger ids"},
            "run_id": STR,
            "journey": STR,
            "target": STR,
            "location": _nullable("string"),
            "trace_id": _nullable("string"),
            "scheduled_at": _nullable("number", description="the slot this run served (epoch s)"),
            "started_at": NUM,
            "duration_seconds": NUM,
            "status": RESULT,
            "reason": _nullable("string"),
            "failed_step": _nullable("string"),
            "error_type": _nullable("string"),
            "error": _nullable("string", description="secrets scrubbed"),
            "attempt": INT,
            "retried": {**BOOL, "description": "a retry followed: recorded, not counted"},
            "counted": {**BOOL, "description": "counts for availability"},
            "steps": {"type": "array", "items": _ref("Step")},
            "artifacts": {"type": "array", "items": STR},
            "artifact_links": {"type": "array", "items": STR},
            "trace_url": _nullable(
                "string", description="the run's trace in the tracing UI ([tracing] ui_url)"
            ),
            "web_vitals": {
                "type": "array",
                "items": _ref("PageVitals"),
                "description": "browser runs: Web Vitals per document loaded (docs/browser.md)",
            },
        },
    )
    PAGE_VITALS = _obj(
        ["step", "url", "values", "over_threshold"],
        {
            "step": {**STR, "description": "the step in flight when the navigation started"},
            "url": {**STR, "description": "scheme, host and path (no query string)"},
            "values": {
                "type": "object",
                "additionalProperties": NUM,
                "description": "TTFB, FCP, LCP, INP (seconds), CLS (score), "
                "transfer_bytes, requests; INP only after an interaction",
            },
            "over_threshold": {
                "type": "object",
                "additionalProperties": NUM,
                "description": "metric -> the journey's threshold it exceeded: the run is degraded",
            },
        },
    )
    STATS = _obj(
        [
            "runs_counted",
            "runs_passed",
            "availability",
            "time_observed_seconds",
            "time_up_seconds",
            "time_availability",
            "incidents",
            "open_incidents",
            "mttr_seconds",
            "mttd_seconds",
            "mtbf_seconds",
            "longest_incident_seconds",
            "p50_incident_seconds",
            "p95_incident_seconds",
        ],
        {
            "runs_counted": INT,
            "runs_passed": INT,
            "availability": _nullable("number"),
            "time_observed_seconds": NUM,
            "time_up_seconds": NUM,
            "time_availability": _nullable("number"),
            "incidents": INT,
            "open_incidents": INT,
            "mttr_seconds": _nullable("number"),
            "mttd_seconds": _nullable("number"),
            "mtbf_seconds": _nullable("number"),
            "longest_incident_seconds": _nullable("number"),
            "p50_incident_seconds": _nullable("number"),
            "p95_incident_seconds": _nullable("number"),
        },
        closed=True,
    )
    CERT = {
        "not_after": {**NUM, "description": "expiry (epoch s)"},
        "subject": {**STR, "description": "RFC 4514"},
        "issuer": {**STR, "description": "RFC 4514"},
    }
    TLS = _obj(
        ["host", "observed_at", "leaf", "earliest", "chain_length", "chain_complete"],
        {
            "host": {**STR, "description": "host, or host:port when the port is not 443"},
            "observed_at": {**NUM, "description": "when the run that saw it finished"},
            "leaf": _obj(
                ["not_after", "subject", "issuer", "serial", "sans"],
                {
                    **CERT,
                    "serial": {**STR, "description": "hex"},
                    "sans": {"type": "array", "items": STR},
                },
                closed=True,
            ),
            "earliest": _obj(
                ["not_after", "subject", "issuer"],
                CERT,
                closed=True,
            ),
            "chain_length": {**INT, "description": "certificates the server presented"},
            "chain_complete": {**BOOL, "description": "false: only the leaf could be read"},
        },
        closed=True,
    )
    JOURNEY = _obj(
        [
            "journey",
            "target",
            "kind",
            "severity",
            "schedule",
            "paused",
            "runs",
            "consecutive_failures",
            "last_success_at",
            "last_result",
            "state",
            "alert_state",
            "availability",
            "mttr_seconds",
            "mtbf_seconds",
            "stats",
            "tls",
        ],
        {
            "journey": STR,
            "target": STR,
            "location": _nullable("string"),
            "kind": {"type": "string", "enum": ["http", "browser"]},
            "severity": {"type": "string", "enum": ["critical", "warning", "info"]},
            "schedule": STR,
            "paused": BOOL,
            "runs": INT,
            "consecutive_failures": INT,
            "last_success_at": _nullable("number"),
            "next_run_at": _nullable("number"),
            "last_result": {"oneOf": [{"type": "null"}, {"type": "object"}]},
            "state": {
                "type": "string",
                "enum": ["passing", "degraded", "failing", "paused", "never_run"],
            },
            "alert_state": {"type": "string", "enum": ["ok", "pending", "firing"]},
            "availability": WINDOWED,
            "mttr_seconds": WINDOWED,
            "mtbf_seconds": WINDOWED,
            "stats": {
                "oneOf": [
                    {"type": "null"},
                    {"type": "object", "additionalProperties": _ref("Stats")},
                ]
            },
            "tls": {
                "type": "array",
                "items": _ref("Tls"),
                "description": "certificate chains this pair's HTTPS connections presented",
            },
        },
    )
    INCIDENT = _obj(
        [
            "alertname",
            "journey",
            "target",
            "incident",
            "severity",
            "open",
            "started_at",
            "detected_at",
            "ended_at",
            "duration_seconds",
            "failed_step",
            "first_error",
            "run_id",
        ],
        {
            "alertname": STR,
            "journey": STR,
            "target": STR,
            "incident": INT,
            "severity": STR,
            "open": BOOL,
            "started_at": {**NUM, "description": "the incident's first failed attempt"},
            "detected_at": {**NUM, "description": "when the alert started firing"},
            "ended_at": _nullable("number"),
            "duration_seconds": _nullable("number"),
            "failed_step": _nullable("string"),
            "first_error": _nullable("string"),
            "run_id": _nullable("string"),
        },
        closed=True,
    )
    SLOT = _obj(
        [
            "journey",
            "target",
            "slot_at",
            "last_slot_at",
            "count",
            "span_seconds",
            "outcome",
            "reason",
            "run_id",
        ],
        {
            "journey": STR,
            "target": STR,
            "slot_at": NUM,
            "last_slot_at": NUM,
            "count": {**INT, "description": "slots in this row (a gap of missed slots is one row)"},
            "span_seconds": NUM,
            "outcome": OUTCOME,
            "reason": _nullable("string"),
            "run_id": _nullable("string"),
        },
        closed=True,
    )
    SILENCE = _obj(
        ["id", "matchers", "starts_at", "ends_at", "created_by", "comment"],
        {
            "id": INT,
            "matchers": {"type": "object", "additionalProperties": STR},
            "starts_at": NUM,
            "ends_at": NUM,
            "created_by": STR,
            "comment": STR,
        },
    )
    ERROR = _obj(["error"], {"error": STR, "parameter": STR})

    TIME = {"type": ["string", "number"]}
    SINCE = _q("since", TIME, "epoch seconds or RFC 3339")

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "synthmon API",
            "version": "1.0.0",
            "description": "Run history, incidents and slots (docs/history.md).",
        },
        "paths": {
            "/api/journeys": _get(
                "Every (journey, target) pair with state and statistics", "JourneyList", []
            ),
            "/api/journeys/{name}": _get(
                "One journey: config, recent runs, steps, incidents",
                "JourneyDetail",
                [_p("name")],
                400,
                404,
            ),
            "/api/journeys/{name}/runs": _get(
                "A journey's runs, newest first, paginated",
                "RunPage",
                [
                    _p("name"),
                    _q("target", STR, "only this target"),
                    SINCE,
                    _q("until", TIME, "epoch seconds or RFC 3339 (exclusive)"),
                    _q("result", RESULT, "only runs with this result"),
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "default 100"),
                    _q("cursor", STR, "next_cursor of the previous page"),
                ],
                400,
                404,
                503,
            ),
            "/api/runs/{run_id}": _get(
                "One run in full, with artifact links", "RunDetail", [_p("run_id")], 404, 503
            ),
            "/api/incidents": _get(
                "Incidents, newest first",
                "IncidentList",
                [
                    _q("open", {"type": "boolean"}, "true: open only; false: closed only"),
                    _q("since", TIME, "incidents open at or after this time"),
                    _q("journey", STR, "only this journey"),
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "default 100"),
                ],
                400,
                503,
            ),
            "/api/slots": _get(
                "Scheduled slots and their outcomes, newest first",
                "SlotList",
                [
                    _q("journey", STR, "only this journey"),
                    _q("target", STR, "only this target"),
                    _q("outcome", OUTCOME, "only this outcome"),
                    SINCE,
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "default 100"),
                ],
                400,
                503,
            ),
            "/api/silences": {
                **_get("Active and future silences", "SilenceList", []),
                "post": {
                    "summary": "Add a silence (bearer token as for /api/pause)",
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": _obj(
                                    ["comment"],
                                    {
                                        "journey": STR,
                                        "target": STR,
                                        "tag": STR,
                                        "duration": STR,
                                        "comment": STR,
                                        "author": STR,
                                    },
                                    closed=True,
                                )
                            }
                        }
                    },
                    "responses": {
                        "201": {
                            "description": "created",
                            "content": {
                                "application/json": {
                                    "schema": _obj(["silence"], {"silence": _ref("Silence")})
                                }
                            },
                        },
                        "400": {
                            "description": "bad field",
                            "content": {"application/json": {"schema": _ref("Error")}},
                        },
                    },
                },
            },
        },
        "components": {
            "schemas": {
                "Error": ERROR,
                "Step": STEP,
                "PageVitals": PAGE_VITALS,
                "Run": RUN,
                "Stats": STATS,
                "Tls": TLS,
                "Journey": JOURNEY,
                "Incident": INCIDENT,
                "Slot": SLOT,
                "Silence": SILENCE,
                "JourneyList": _obj(
                    ["journeys"], {"journeys": {"type": "array", "items": _ref("Journey")}}
                ),
                "JourneyDetail": _obj(
                    ["journeys", "journey", "steps", "recent_runs", "incidents", "history_error"],
                    {
                        "journeys": {"type": "array", "items": _ref("Journey")},
                        "journey": {"type": "object"},
                        "steps": {"type": "array", "items": _ref("Step")},
                        "recent_runs": {"type": "array", "items": _ref("Run")},
                        "incidents": {"type": "array", "items": _ref("Incident")},
                        "history_error": _nullable("string"),
                    },
                ),
                "RunPage": _obj(
                    ["runs", "next_cursor"],
                    {
                        "runs": {"type": "array", "items": _ref("Run")},
                        "next_cursor": _nullable("string"),
                    },
                    closed=True,
                ),
                "RunDetail": _obj(["run"], {"run": _ref("Run")}, closed=True),
                "IncidentList": _obj(
                    ["incidents"],
                    {"incidents": {"type": "array", "items": _ref("Incident")}},
                    closed=True,
                ),
                "SlotList": _obj(
                    ["slots"], {"slots": {"type": "array", "items": _ref("Slot")}}, closed=True
                ),
                "SilenceList": _obj(
                    ["silences"],
                    {"silences": {"type": "array", "items": _ref("Silence")}},
                    closed=True,
                ),
            }
        },
    }
