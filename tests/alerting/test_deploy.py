"""The shipped Prometheus rules and Alertmanager config: valid, unit-tested, and only
using metrics synthmon exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from synthmon.alerting.metrics import AlertMetrics
from synthmon.sinks.metrics import Metrics
from synthmon.sinks.tls_metrics import TlsMetrics
from synthmon.sinks.worker_metrics import WorkerMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "rules.yml"


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed (make system-deps installs it)"
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


class TestPrometheusRules:
    def test_rules_are_valid(self) -> None:
        """promtool accepts every rule in deploy/prometheus/rules.yml."""
        done = run(tool("promtool"), "check", "rules", str(RULES))
        assert done.returncode == 0, done.stdout + done.stderr

    def test_rule_unit_tests_pass(self) -> None:
        """The rules fire and stay quiet exactly as rules_test.yml specifies."""
        done = run(tool("promtool"), "test", "rules", str(RULES.with_name("rules_test.yml")))
        assert done.returncode == 0, done.stdout + done.stderr

    def test_rules_only_use_exported_metrics(self) -> None:
        """Every synthmon_* metric a rule reads is one synthmon actually exports."""
        registry = CollectorRegistry()
        Metrics(registry, location="eu")
        AlertMetrics(registry, location="eu")
        TlsMetrics(registry, location="eu")
        WorkerMetrics(registry, size=2, location="eu")  # [scheduler] workers > 0
        exported = set()
        for family in registry.collect():
            exported |= {family.name, *(s.name for s in family.samples)}
        groups = yaml.safe_load(RULES.read_text())["groups"]
        exprs = " ".join(r["expr"] for g in groups for r in g["rules"])
        used = set(re.findall(r"\bsynthmon_[a-z_]+", exprs))
        assert used, "no synthmon metrics found in the rules"
        assert used - exported == set()


class TestAlertmanagerConfig:
    def test_config_is_valid(self) -> None:
        """amtool accepts deploy/alertmanager/alertmanager.yml."""
        done = run(
            tool("amtool"), "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml")
        )
        assert done.returncode == 0, done.stdout + done.stderr

    @pytest.mark.parametrize(
        ("labels", "receivers"),
        [
            ("alertname=SyntheticJourneyFailed severity=critical", "pager,chat"),
            ("alertname=SyntheticJourneyFailed severity=warning", "chat"),
            ("alertname=SynthmonInternalError severity=warning", "chat"),
            ("alertname=SynthmonHeartbeat severity=none", "deadman"),
            ("alertname=SyntheticJourneyFailed severity=info", "blackhole"),
        ],
    )
    def test_routes_by_severity(self, labels: str, receivers: str) -> None:
        """Critical pages and chats, warning chats, info goes nowhere, heartbeat to the deadman."""
        done = run(
            tool("amtool"),
            "config",
            "routes",
            "test",
            f"--config.file={DEPLOY / 'alertmanager' / 'alertmanager.yml'}",
            *labels.split(),
        )
        assert done.stdout.strip() == receivers, done.stdout + done.stderr


class TestRuleInputs:
    def test_retried_attempts_do_not_count_as_failed_runs(self) -> None:
        """fail+retry-fail is one failed run for synthmon_journey_consecutive_failures,
        so the Prometheus rule agrees with synthmon's own policy."""
        from synthmon import journey
        from synthmon.model import RunResult, Status
        from tests.harness import sample

        async def j(ctx: object) -> None: ...

        registry = CollectorRegistry()
        metrics = Metrics(registry)
        metrics.set_catalog([(journey(name="j")(j), "t")])  # type: ignore[arg-type]

        def attempt(n: int, retried: bool) -> RunResult:
            return RunResult(
                journey="j",
                target="t",
                run_id=str(n),
                trace_id=str(n),
                status=Status.FAILURE,
                started_at=0.0,
                duration=0.1,
                retried=retried,
            )

        metrics.pairs.record(attempt(1, retried=True))
        metrics.pairs.record(attempt(2, retried=False))
        from prometheus_client import generate_latest

        text = generate_latest(registry).decode()
        assert sample(text, "synthmon_journey_consecutive_failures", journey="j", target="t") == 1
