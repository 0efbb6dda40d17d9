"""The production stack's files, checked for what decides whether `docker compose up` can work
(no Docker engine here): docker-compose.yml parses, every service has a health check, every
mounted file exists, no secret is written in it, the Grafana provisioning matches the
generated dashboards, the Dockerfile copies files that exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards.common import DASHBOARD_FOLDER, FOLDERS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|STORE$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _binds(service: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            out.append((source, target))
    return out


def test_the_stack_has_every_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {
        "kafka",
        "clickhouse",
        "grafana",
        "prometheus",
        "alertmanager",
        "worker",
        "init",
    } <= set(services)
    assert services["simulator"]["profiles"] == ["simulator"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "controller" in _env(services["kafka"])["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    grafana_env = _env(services["grafana"])
    assert "grafana-clickhouse-datasource" in grafana_env["GF_INSTALL_PLUGINS"]


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        check = service.get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), name


def test_workers_scale_out_in_production_mode(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert worker["command"] == ["warroom", "worker"]
    assert worker["deploy"]["replicas"] == 2
    env = _env(worker)
    assert env["WARROOM_MODE"] == "production"
    assert env["WARROOM_KAFKA"] == "kafka:9092"
    assert (
        env["WARROOM_STORE"].startswith("clickhouse://")
        and "@clickhouse:9000/" in env["WARROOM_STORE"]
    )
    assert env["WARROOM_WEB_HOST"] == "0.0.0.0" and env["WARROOM_WEB_PORT"] == "6066"
    assert VARIABLE.fullmatch(env["WARROOM_PSEUDONYM_KEY"])
    assert worker["depends_on"]["init"]["condition"] == "service_completed_successfully"
    # Prometheus finds each replica by the service's DNS name on the worker's web port
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "warroom-worker")
    assert job["dns_sd_configs"][0]["names"] == ["worker"]
    assert job["dns_sd_configs"][0]["port"] == 6066


def test_mounted_and_built_files_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for source, _ in _binds(service):
            assert (ROOT / source).exists(), f"{name} mounts missing {source}"
        build = service.get("build")
        if build is not None:
            context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = (
                "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            )
            assert (context / dockerfile).exists()


def test_prometheus_mount_keeps_the_relative_rule_path(compose: dict[str, Any]) -> None:
    binds = dict(_binds(compose["services"]["prometheus"]))
    config_target = Path(binds["./deploy/prometheus.yml"])
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    for rule in prom["rule_files"]:
        in_repo = (ROOT / "deploy" / rule).resolve()
        assert in_repo.exists(), rule
        in_container = (config_target.parent / rule).as_posix()
        source = "./" + in_repo.relative_to(ROOT).as_posix()
        assert Path(binds[source]).as_posix() == str(Path(in_container).resolve())


def test_no_literal_secrets(compose: dict[str, Any]) -> None:
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    defined = set(re.findall(r"^([A-Z0-9_]+)=", example, flags=re.MULTILINE))
    text = COMPOSE.read_text(encoding="utf-8")
    used = set(VARIABLE.findall(text))
    assert used <= defined, f"missing from .env.example: {used - defined}"
    for name, service in compose["services"].items():
        for key, value in _env(service).items():
            if SECRET_KEY.search(key):
                assert "${" in value, f"{name}.{key} holds a literal value"
    anchors = compose.get("x-warroom-env", {})
    for key, value in anchors.items():
        if SECRET_KEY.search(key):
            assert "${" in str(value)
    assert "change-me" not in text


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes", {}))
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, source
    assert {"kafka-data", "clickhouse-data", "grafana-data", "prometheus-data"} <= declared


def test_grafana_provisioning_matches_the_dashboards(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    binds = _binds(grafana)
    assert ("./dashboards/provisioning", "/etc/grafana/provisioning") in binds
    mounted = {Path(t).stem: Path(t).parent.as_posix() for s, t in binds if s.endswith(".json")}
    providers = yaml.safe_load(
        (ROOT / "dashboards/provisioning/dashboards/warroom.yaml").read_text(encoding="utf-8")
    )["providers"]
    by_folder = {p["folderUid"]: p for p in providers}
    assert {uid: p["folder"] for uid, p in by_folder.items()} == FOLDERS
    for uid, folder_uid in DASHBOARD_FOLDER.items():
        assert mounted[uid] == by_folder[folder_uid]["options"]["path"], uid
    datasources = yaml.safe_load(
        (ROOT / "dashboards/provisioning/datasources/warroom.yaml").read_text(encoding="utf-8")
    )["datasources"]
    assert {d["uid"]: d["type"] for d in datasources} == {
        "warroom-clickhouse": "grafana-clickhouse-datasource",
        "warroom-prometheus": "prometheus",
    }
    # every ${VAR} the provisioning files read is set in the Grafana container
    env = _env(grafana)
    text = (ROOT / "dashboards/provisioning/datasources/warroom.yaml").read_text()
    for var in VARIABLE.findall(text):
        assert var in env, var


def test_dockerfile_copies_existing_files() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    copies = re.findall(r"^COPY\s+(.+?)\s+\S+$", text, flags=re.MULTILINE)
    assert copies
    for line in copies:
        for source in line.split():
            assert (ROOT / source).exists(), source
    ignored = (ROOT / ".dockerignore").read_text().split()
    for line in copies:
        for source in line.split():
            assert source.rstrip("/") not in ignored, f"{source} is excluded by .dockerignore"
    assert 'CMD ["warroom", "worker"]' in text
