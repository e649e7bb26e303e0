"""Deployment recipes (deploy/): YAML that parses, files that exist, and ports, labels,
selectors and settings that agree with each other and with the image."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser

from synthmon.config.secrets import unresolved_secrets_allowed
from synthmon.config.settings import Settings, load_settings
from synthmon.scheduling.sharding import parse_shard

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose"
K8S = DEPLOY / "kubernetes"
IMAGE_ENV = DockerfileParser(str(ROOT / "Dockerfile")).envs
IMAGE_PORT = int(IMAGE_ENV["SYNTHMON_SERVER__LISTEN"].rpartition(":")[2])
# Written by the alerting work (issue 4); cross-checked only once they exist.
ALERTING_FILES = {DEPLOY / "prometheus" / "rules.yml", DEPLOY / "alertmanager" / "alertmanager.yml"}


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def image_settings(config: Path, **env: str) -> Settings:
    """The settings a container would see: the file plus the image's and recipe's env."""
    mp = pytest.MonkeyPatch()
    try:
        for k, v in {**IMAGE_ENV, **env}.items():
            if k.startswith("SYNTHMON_") and k != "SYNTHMON_JOURNEYS_DIR":
                mp.setenv(k, v)
        # Account secrets are files only the container has (docs/safety.md).
        with unresolved_secrets_allowed():
            return load_settings(config)
    finally:
        mp.undo()


def grace_needed(settings: Settings) -> float:
    # In-flight runs get shutdown_grace, then the sinks up to 5 s (Fanout.close).
    return settings.scheduler.shutdown_grace + 5


def seconds(text: str) -> float:
    m = re.fullmatch(r"(\d+)(s|m)?", str(text))
    assert m, text
    return int(m[1]) * (60 if m[2] == "m" else 1)


def mounted_host_path(spec: str, base: Path) -> tuple[Path, str]:
    src, dst, *_ = spec.split(":")
    return (base / src).resolve(), dst


# -- compose ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    [doc] = load_yaml_docs(COMPOSE / "compose.yaml")
    return doc


class TestCompose:
    def test_has_the_whole_loop(self, compose: dict[str, Any]) -> None:
        """`docker compose up` brings synthmon, the shop, Prometheus, Alertmanager, Grafana."""
        assert set(compose["services"]) >= {
            "synthmon",
            "shop",
            "prometheus",
            "alertmanager",
            "grafana",
        }

    def test_every_mounted_file_exists(self, compose: dict[str, Any]) -> None:
        """Every bind-mounted file or folder and every secret file is in the repository."""
        missing = []
        for name, svc in compose["services"].items():
            for spec in svc.get("volumes", []):
                if not spec.startswith((".", "/")):
                    continue  # a named volume
                path, _ = mounted_host_path(spec, COMPOSE)
                if path in ALERTING_FILES and not path.exists():
                    continue  # issue 4 adds these; checked once they are there
                if not path.exists():
                    missing.append(f"{name}: {spec}")
        for name, secret in compose.get("secrets", {}).items():
            if not (COMPOSE / secret["file"]).exists():
                missing.append(f"secret {name}: {secret['file']}")
        assert not missing

    def test_synthmon_mounts_read_only_where_the_image_expects(
        self, compose: dict[str, Any]
    ) -> None:
        """Config and journeys land read-only on the image's paths; data on its volume."""
        svc = compose["services"]["synthmon"]
        mounts = {spec.split(":")[1]: spec for spec in svc["volumes"]}
        assert mounts["/etc/synthmon/synthmon.toml"].endswith(":ro")
        assert mounts[IMAGE_ENV["SYNTHMON_JOURNEYS_DIR"]].endswith(":ro")
        assert IMAGE_ENV["SYNTHMON_DATA_DIR"] in mounts
        journeys, _ = mounted_host_path(mounts[IMAGE_ENV["SYNTHMON_JOURNEYS_DIR"]], COMPOSE)
        assert journeys == ROOT / "journeys"

    def test_config_is_valid_and_targets_the_shop_service(self, compose: dict[str, Any]) -> None:
        """The compose config loads, and its target is the shop service on the shop's port."""
        svc = compose["services"]["synthmon"]
        settings = image_settings(COMPOSE / "synthmon.toml", **svc.get("environment", {}))
        shop_port = compose["services"]["shop"]["command"][
            compose["services"]["shop"]["command"].index("--port") + 1
        ]
        urls = [t.base_url for t in settings.target_list()]
        assert urls == [f"http://shop:{shop_port}"]
        assert settings.location == svc["environment"]["SYNTHMON_LOCATION"]

    def test_ports_agree(self, compose: dict[str, Any]) -> None:
        """Published ports, Prometheus's scrape target and the daemon's listen port match."""
        svc = compose["services"]["synthmon"]
        published = [p.rsplit(":", 1)[1] for p in svc["ports"]]
        assert published == [str(IMAGE_PORT)]
        assert all(
            p.startswith("127.0.0.1:")
            for s in compose["services"].values()
            for p in s.get("ports", [])
        )
        prom = yaml.safe_load((COMPOSE / "prometheus.yml").read_text(encoding="utf-8"))
        targets = [
            t
            for job in prom["scrape_configs"]
            for sc in job["static_configs"]
            for t in sc["targets"]
        ]
        assert f"synthmon:{IMAGE_PORT}" in targets
        am = [
            t
            for a in prom["alerting"]["alertmanagers"]
            for sc in a["static_configs"]
            for t in sc["targets"]
        ]
        am_port = compose["services"]["alertmanager"]["ports"][0].rsplit(":", 1)[1]
        assert am == [f"alertmanager:{am_port}"]

    def test_prometheus_rule_files_are_mounted(self, compose: dict[str, Any]) -> None:
        """Each rule file prometheus.yml loads is mounted into the Prometheus container."""
        prom = yaml.safe_load((COMPOSE / "prometheus.yml").read_text(encoding="utf-8"))
        mounted = {spec.split(":")[1] for spec in compose["services"]["prometheus"]["volumes"]}
        for rule_file in prom["rule_files"]:
            assert rule_file in mounted

    def test_stop_grace_covers_shutdown_grace(self, compose: dict[str, Any]) -> None:
        """compose stop_grace_period leaves the daemon its shutdown grace plus the sink drain."""
        svc = compose["services"]["synthmon"]
        settings = image_settings(COMPOSE / "synthmon.toml")
        assert seconds(svc["stop_grace_period"]) >= grace_needed(settings)

    @pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool")
    def test_prometheus_config_passes_promtool(self, tmp_path: Path) -> None:
        """promtool accepts prometheus.yml (rule files it cannot see yet are stubbed)."""
        prom = yaml.safe_load((COMPOSE / "prometheus.yml").read_text(encoding="utf-8"))
        rules = DEPLOY / "prometheus" / "rules.yml"
        stub = tmp_path / "rules.yml"
        stub.write_text(rules.read_text() if rules.exists() else "groups: []\n")
        prom["rule_files"] = [str(stub)]
        cfg = tmp_path / "prometheus.yml"
        cfg.write_text(yaml.safe_dump(prom))
        out = subprocess.run(
            ["promtool", "check", "config", str(cfg)], capture_output=True, text=True, check=False
        )
        assert out.returncode == 0, out.stdout + out.stderr


# -- grafana: tests/deploy/test_grafana_dashboard.py ----------------------------------


# -- kubernetes ----------------------------------------------------------------------


def k8s_objects() -> list[dict[str, Any]]:
    [kust] = load_yaml_docs(K8S / "kustomization.yaml")
    objs = []
    for res in kust["resources"]:
        objs += load_yaml_docs(K8S / res)
    return objs


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [o for o in k8s_objects() if o["kind"] == kind]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


class TestKubernetes:
    def test_every_resource_file_exists_and_is_complete(self) -> None:
        """Every file kustomization lists exists; each object has apiVersion, kind, name."""
        objs = k8s_objects()
        assert {o["kind"] for o in objs} >= {
            "StatefulSet",
            "Service",
            "ServiceMonitor",
            "PodDisruptionBudget",
            "ConfigMap",
            "Secret",
        }
        for o in objs:
            assert o.get("apiVersion")
            assert o["metadata"].get("name")
        names = [(o["kind"], o["metadata"]["name"]) for o in objs]
        assert len(names) == len(set(names))

    def test_statefulset_selectors_services_and_ports_agree(self) -> None:
        """Selector ⊆ pod labels, serviceName exists and selects the pods, ports match."""
        services = {s["metadata"]["name"]: s for s in of_kind("Service")}
        for sts in of_kind("StatefulSet"):
            spec = sts["spec"]
            labels = spec["template"]["metadata"]["labels"]
            assert selects(spec["selector"]["matchLabels"], labels)
            svc = services[spec["serviceName"]]
            assert selects(svc["spec"]["selector"], labels)
            [c] = spec["template"]["spec"]["containers"]
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            for sp in svc["spec"]["ports"]:
                assert sp["targetPort"] in ports
                assert ports[sp["targetPort"]] == IMAGE_PORT
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                assert c[probe]["httpGet"]["port"] in ports
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
            annotations = spec["template"]["metadata"]["annotations"]
            assert int(annotations["prometheus.io/port"]) == IMAGE_PORT

    def test_shard_count_equals_replicas(self) -> None:
        """SYNTHMON_SHARD auto/N matches spec.replicas, so every pair has an owner."""
        for sts in of_kind("StatefulSet"):
            [c] = sts["spec"]["template"]["spec"]["containers"]
            name = sts["metadata"]["name"]
            replicas = sts["spec"]["replicas"]
            for ordinal in range(replicas):
                shard = parse_shard(env_of(c)["SYNTHMON_SHARD"], hostname=f"{name}-{ordinal}")
                assert shard.count == replicas
                assert shard.index == ordinal

    def test_one_location_per_statefulset(self) -> None:
        """Each StatefulSet is one location: label, selector and SYNTHMON_LOCATION agree."""
        locations = []
        for sts in of_kind("StatefulSet"):
            [c] = sts["spec"]["template"]["spec"]["containers"]
            loc = env_of(c)["SYNTHMON_LOCATION"]
            assert sts["spec"]["selector"]["matchLabels"]["synthmon.dev/location"] == loc
            assert sts["metadata"]["name"].endswith(loc)
            locations.append(loc)
        assert len(locations) >= 2
        assert len(set(locations)) == len(locations)

    def test_locations_differ_only_in_location_and_size(self) -> None:
        """The per-location copy has not drifted from the main StatefulSet."""
        [main, other] = of_kind("StatefulSet")

        def normalise(sts: dict[str, Any]) -> str:
            [c] = sts["spec"]["template"]["spec"]["containers"]
            loc = env_of(c)["SYNTHMON_LOCATION"]
            text = json.dumps(sts, sort_keys=True).replace(loc, "LOC")
            return re.sub(r'"replicas": \d+|auto/\d+', "N", text)

        assert normalise(main) == normalise(other)

    def test_pdb_covers_each_location(self) -> None:
        """Each location's pods are covered by exactly one PodDisruptionBudget."""
        pdbs = of_kind("PodDisruptionBudget")
        for sts in of_kind("StatefulSet"):
            labels = sts["spec"]["template"]["metadata"]["labels"]
            covering = [p for p in pdbs if selects(p["spec"]["selector"]["matchLabels"], labels)]
            assert len(covering) == 1
            assert covering[0]["spec"]["maxUnavailable"] == 1

    def test_servicemonitor_scrapes_the_service_port(self) -> None:
        """The ServiceMonitor selects the Service and scrapes its named metrics port."""
        [sm] = of_kind("ServiceMonitor")
        svc = next(
            s
            for s in of_kind("Service")
            if selects(sm["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
        )
        port_names = {p["name"] for p in svc["spec"]["ports"]}
        for ep in sm["spec"]["endpoints"]:
            assert ep["port"] in port_names
            assert ep["path"] == "/metrics"

    def test_volumes_exist_and_mounts_match_the_image(self) -> None:
        """Every mount has a volume, every ConfigMap/Secret it names is defined, config and
        journeys land read-only on the image's paths, data on a claim."""
        configmaps = {c["metadata"]["name"]: c for c in of_kind("ConfigMap")}
        secrets = {s["metadata"]["name"] for s in of_kind("Secret")}
        for sts in of_kind("StatefulSet"):
            pod = sts["spec"]["template"]["spec"]
            volumes = {v["name"]: v for v in pod["volumes"]}
            claims = {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
            [c] = pod["containers"]
            mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
            for m in c["volumeMounts"]:
                assert m["name"] in volumes or m["name"] in claims, m
            for v in volumes.values():
                if "configMap" in v:
                    assert v["configMap"]["name"] in configmaps
                if "secret" in v:
                    assert v["secret"]["secretName"] in secrets
            config = mounts["/etc/synthmon/synthmon.toml"]
            assert config["readOnly"]
            assert (
                config["subPath"]
                in configmaps[volumes[config["name"]]["configMap"]["name"]]["data"]
            )
            journeys = mounts[IMAGE_ENV["SYNTHMON_JOURNEYS_DIR"]]
            assert journeys["readOnly"]
            assert mounts["/run/secrets/synthmon"]["readOnly"]
            assert mounts[IMAGE_ENV["SYNTHMON_DATA_DIR"]]["name"] in claims
            # A read-only root needs a writable /tmp for Chromium.
            assert c["securityContext"]["readOnlyRootFilesystem"]
            assert "/tmp" in mounts

    def test_pods_run_as_the_image_user_with_resources_and_grace(self, tmp_path: Path) -> None:
        """Non-root as the image's UID, requests and a memory limit, enough stop grace."""
        [user] = [
            i["value"]
            for i in DockerfileParser(str(ROOT / "Dockerfile")).structure
            if i["instruction"] == "USER"
        ]
        uid = int(user.split(":")[0])
        settings = image_settings(self._config_file(tmp_path))
        for sts in of_kind("StatefulSet"):
            pod = sts["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"]
            assert pod["securityContext"]["runAsUser"] == uid
            [c] = pod["containers"]
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= set(c["resources"]["requests"])
            assert "memory" in c["resources"]["limits"]
            assert pod["terminationGracePeriodSeconds"] >= grace_needed(settings)

    def _config_file(self, tmp: Path) -> Path:
        [cm] = [c for c in of_kind("ConfigMap") if c["metadata"]["name"] == "synthmon-config"]
        path = tmp / "synthmon.toml"
        path.write_text(cm["data"]["synthmon.toml"], encoding="utf-8")
        return path

    def test_configmap_config_is_valid(self, tmp_path: Path) -> None:
        """The config in the ConfigMap loads as the StatefulSet's pods would load it."""
        cfg = self._config_file(tmp_path)
        tomllib.loads(cfg.read_text())
        for sts in of_kind("StatefulSet"):
            [c] = sts["spec"]["template"]["spec"]["containers"]
            env = env_of(c)
            name = sts["metadata"]["name"]
            mp = pytest.MonkeyPatch()
            mp.setenv("HOSTNAME", f"{name}-0")
            try:
                settings = image_settings(cfg, **env)
            finally:
                mp.undo()
            assert settings.location == env["SYNTHMON_LOCATION"]
            assert settings.shard == env["SYNTHMON_SHARD"]
            assert settings.targets

    def test_journeys_configmap_matches_the_journeys_folder(self) -> None:
        """The ConfigMap carries exactly the repository's example journeys, unchanged."""
        [cm] = [c for c in of_kind("ConfigMap") if c["metadata"]["name"] == "synthmon-journeys"]
        files = {p.name: p.read_text() for p in (ROOT / "journeys").glob("*.py")}
        assert cm["data"] == files, "regenerate: python scripts/sync_journeys_configmap.py"


# -- systemd -------------------------------------------------------------------------


def unit_settings(path: Path) -> dict[str, list[str]]:
    """key -> values of a systemd unit (keys may repeat)."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


class TestSystemd:
    UNIT = DEPLOY / "systemd" / "synthmon.service"

    def test_hardened(self) -> None:
        """DynamicUser, ProtectSystem=strict and a state directory for the data dir."""
        u = unit_settings(self.UNIT)
        assert u["DynamicUser"] == ["yes"]
        assert u["ProtectSystem"] == ["strict"]
        assert u["NoNewPrivileges"] == ["yes"]
        state = u["StateDirectory"][0]
        env = dict(e.split("=", 1) for e in u["Environment"])
        assert env["SYNTHMON_DATA_DIR"] == f"/var/lib/{state}"

    def test_runs_the_daemon_and_stops_it_gracefully(self) -> None:
        """ExecStart is `synthmon run`; only the daemon gets SIGTERM, with enough time."""
        u = unit_settings(self.UNIT)
        assert u["ExecStart"][0].split()[1:3] == ["run", "--config"]
        assert u["KillMode"] == ["mixed"]
        assert seconds(u["TimeoutStopSec"][0]) >= grace_needed(Settings())

    @pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
    def test_systemd_analyze_verify(self, tmp_path: Path) -> None:
        """systemd-analyze verify accepts the unit (with ExecStart pointed at this venv)."""
        exe = Path(sys.executable).parent / "synthmon"
        text = self.UNIT.read_text().replace("/opt/synthmon/bin/synthmon", str(exe))
        unit = tmp_path / "synthmon.service"
        unit.write_text(text)
        out = subprocess.run(
            ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
        )
        assert out.returncode == 0, out.stdout + out.stderr
