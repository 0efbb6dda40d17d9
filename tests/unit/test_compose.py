"""The production stack's files, checked for what decides whether `docker compose up` can work
and is safe (no Docker engine here): docker-compose.yml parses, every service has a health check,
every mounted file exists, no secret is written in it, versions are pinned, ops ports stay on
loopback, Grafana starts after the schema, the ClickHouse accounts are least-privilege, the
Grafana provisioning matches the generated dashboards, the Dockerfile copies files that exist."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards.common import DASHBOARD_FOLDER, FOLDERS
from dashboards.macros import PLUGIN_VERSION

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$")
USERS_XML = ROOT / "deploy" / "clickhouse" / "users.d" / "warroom.xml"
WRITER, READER = "warroom_writer", "warroom_grafana"


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
    assert "GF_INSTALL_PLUGINS" not in grafana_env  # "whatever is newest"
    # the exact version dashboards/macros.py models, installed before Grafana starts
    assert grafana_env["GF_PLUGINS_PREINSTALL_SYNC"] == (
        f"grafana-clickhouse-datasource@{PLUGIN_VERSION}"
    )


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
    # credentials apart from the URL: a password is never pasted into it
    assert env["WARROOM_STORE"] == "clickhouse://clickhouse:9000/warroom"
    assert env["WARROOM_STORE_USER"] == WRITER
    assert VARIABLE.fullmatch(env["WARROOM_STORE_PASSWORD"])
    assert env["WARROOM_WEB_HOST"] == "0.0.0.0" and env["WARROOM_WEB_PORT"] == "6066"
    # on the stack's network for Prometheus, so with a password (production refuses it bare)
    assert VARIABLE.fullmatch(env["WARROOM_WEB_PASSWORD"])
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
        assert "@" not in str(value), f"{key}: credentials inside a URL"
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


def _substituted(value: str, dotenv: dict[str, str]) -> str:
    return VARIABLE.sub(lambda m: dotenv.get(m.group(1), ""), value)


def _dotenv(text: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Z0-9_]+)=(.*)$", text, flags=re.MULTILINE))


def test_workers_refuse_the_example_env_and_start_with_real_secrets(
    compose: dict[str, Any],
) -> None:
    """Issue 12, 11: `docker compose up` with .env.example's placeholders left in is refused
    by every warroom container, one line per placeholder; with real secrets it loads."""
    from warroom.settings import SettingsError, load

    example = _dotenv((ROOT / ".env.example").read_text(encoding="utf-8"))
    real = {k: (f"{k.lower()}-{'r' * 24}" if v == "change-me" else v) for k, v in example.items()}
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    image_env = dict(re.findall(r"(WARROOM_[A-Z_]+)=(\S+)", dockerfile))
    assert image_env["WARROOM_WEB_HOST"] == "127.0.0.1"  # the image binds loopback by default
    for name in ("init", "worker", "simulator"):
        raw = {**image_env, **_env(compose["services"][name])}
        with pytest.raises(SettingsError) as info:
            load({k: _substituted(v, example) for k, v in raw.items()})
        assert all("placeholder" in line for line in str(info.value).splitlines()), name
        assert load({k: _substituted(v, real) for k, v in raw.items()}).mode == "production"


def _published(service: dict[str, Any]) -> list[str]:
    return [str(p) for p in service.get("ports", [])]


def test_ops_ports_are_on_loopback_without_lifecycle(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("prometheus", "alertmanager"):
        ports = _published(services[name])
        assert ports, name
        assert all(p.startswith("127.0.0.1:") for p in ports), f"{name}: {ports}"
    assert not any("--web.enable-lifecycle" in str(a) for a in services["prometheus"]["command"])
    assert _published(services["grafana"]) == ["${GRAFANA_BIND_ADDRESS:-127.0.0.1}:3000:3000"]
    public = {n for n, s in services.items() if s.get("ports")}
    assert public == {"grafana", "prometheus", "alertmanager"}, "nothing else is published"


def test_grafana_starts_after_the_schema_exists(compose: dict[str, Any]) -> None:
    after = compose["services"]["grafana"]["depends_on"]
    assert after["init"]["condition"] == "service_completed_successfully"
    assert "warroom migrate" in " ".join(compose["services"]["init"]["command"])


IMAGE = re.compile(r"^[\w./-]+:v?(\d+)\.(\d+)\.(\d+)(?:\.\d+)*$")


def test_every_image_is_pinned_to_an_exact_release(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        if "build" in service:
            continue  # warroom itself, built from this tree
        assert IMAGE.match(image), f"{name}: {image} is not an exact version"
    grafana = IMAGE.match(compose["services"]["grafana"]["image"])
    assert grafana and (int(grafana[1]), int(grafana[2])) > (11, 6)


def test_clickhouse_server_is_an_lts_of_the_engine_the_tests_run(compose: dict[str, Any]) -> None:
    import chdb

    engine = str(chdb.query("SELECT version()", "TabSeparated")).strip()
    server = IMAGE.match(compose["services"]["clickhouse"]["image"])
    assert server, compose["services"]["clickhouse"]["image"]
    assert int(server[1]) == int(engine.split(".")[0]), f"chdb runs {engine}"
    assert int(server[2]) in (3, 8), "ClickHouse LTS releases are YY.3 and YY.8"


def _users() -> ET.Element:
    return ET.parse(USERS_XML).getroot()


def test_clickhouse_accounts_are_mounted_and_fed(compose: dict[str, Any]) -> None:
    ch = compose["services"]["clickhouse"]
    env = _env(ch)
    assert env["CLICKHOUSE_SKIP_USER_SETUP"] == "1"  # the image must not create its own user
    for key in ("CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD", "CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT"):
        assert key not in env, key
    assert (
        "./deploy/clickhouse/users.d/warroom.xml",
        "/etc/clickhouse-server/users.d/warroom.xml",
    ) in _binds(ch)
    for password in _users().iter("password"):
        source = password.get("from_env")
        assert source and not (password.text or "").strip(), "passwords come from the environment"
        assert VARIABLE.fullmatch(env[source]), source
    grafana = _env(compose["services"]["grafana"])
    assert grafana["CLICKHOUSE_USER"] == READER
    assert grafana["CLICKHOUSE_PASSWORD"] == env["CLICKHOUSE_GRAFANA_PASSWORD"]
    assert "warroom_grafana" in " ".join(ch["healthcheck"]["test"])


def test_no_default_user_and_no_access_management() -> None:
    users = _users().find("users")
    assert users is not None
    default = users.find("default")
    assert default is not None and default.get("remove"), "the default user must be removed"
    accounts = [u for u in users if u.tag != "default"]
    assert {u.tag for u in accounts} == {WRITER, READER}
    for user in accounts:
        assert user.findtext("access_management") == "0", user.tag
        assert user.findtext("named_collection_control") == "0", user.tag
        grants = [q.text or "" for q in user.iter("query")]
        assert grants, f"{user.tag} needs explicit grants"
        for grant in grants:
            assert grant.rstrip().endswith("ON warroom.*"), grant
            assert not re.search(r"\b(ALL|ACCESS|USER|ROLE|SYSTEM|GRANT OPTION)\b", grant[5:])


def _profile(name: str) -> ET.Element:
    profile = _users().find(f"profiles/{name}")
    assert profile is not None, name
    return profile


def test_grafana_account_is_read_only_with_limits() -> None:
    reader = _users().find(f"users/{READER}")
    assert reader is not None and reader.findtext("profile") == READER
    grants = " ".join(q.text or "" for q in reader.iter("query"))
    assert re.fullmatch(r"GRANT SELECT(, SHOW)? ON warroom\.\*", grants.strip()), grants
    profile = _profile(READER)
    assert profile.findtext("readonly") == "1"  # the plugin's docs: 1, never 2
    for limit in ("max_execution_time", "max_memory_usage", "max_result_rows"):
        assert int(profile.findtext(limit) or 0) > 0, limit
    # the plugin's client sets max_execution_time from the data source's query timeout
    constraint = profile.find("constraints/max_execution_time")
    assert constraint is not None and constraint.find("changeable_in_readonly") is not None
    cap = int(constraint.findtext("max") or 0)
    datasources = yaml.safe_load(
        (ROOT / "dashboards/provisioning/datasources/warroom.yaml").read_text(encoding="utf-8")
    )["datasources"]
    ch = next(d for d in datasources if d["uid"] == "warroom-clickhouse")
    assert 0 < int(ch["jsonData"]["queryTimeout"]) <= cap
    assert int(profile.findtext("max_execution_time") or 0) <= cap
    assert [c.tag for c in profile.find("constraints") or []] == ["max_execution_time"]


# --- the compose-spec schema, the parts this file uses (no engine here to run `config`) -----
# Facts from compose-spec/schema/compose-spec.json (draft-07): the allowed top-level and service
# keys (anything else only as x-*), the health check keys and the depends_on conditions.
SPEC_TOP = {"version", "name", "include", "services", "networks", "volumes", "secrets", "configs"}
SPEC_SERVICE = {
    "build", "command", "container_name", "cap_add", "cap_drop", "depends_on", "deploy",
    "entrypoint", "env_file", "environment", "expose", "extra_hosts", "healthcheck", "hostname",
    "image", "init", "labels", "logging", "networks", "ports", "profiles", "read_only",
    "restart", "security_opt", "stop_grace_period", "tmpfs", "ulimits", "user", "volumes",
    "working_dir",
}  # fmt: skip
SPEC_HEALTHCHECK = {"disable", "interval", "retries", "start_interval", "start_period", "test"}
SPEC_HEALTHCHECK |= {"timeout"}
SPEC_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
DURATION = re.compile(r"^(\d+(\.\d+)?(us|ms|s|m|h))+$")
# compose interpolation: $$ (a literal $), $VAR, ${VAR}, ${VAR:-x}, ${VAR-x}, ${VAR:?x}, ${VAR?x}
INTERPOLATION = re.compile(r"\$(\$|[A-Za-z_]\w*|\{[A-Za-z_]\w*(?::?[-?+][^}]*)?\})")


def test_compose_file_keeps_to_the_compose_spec(compose: dict[str, Any]) -> None:
    assert {k for k in compose if not k.startswith("x-")} <= SPEC_TOP
    for name, service in compose["services"].items():
        keys = {k for k in service if not k.startswith("x-")}
        assert keys <= SPEC_SERVICE, f"{name}: {keys - SPEC_SERVICE}"
        check = service["healthcheck"]
        assert set(check) <= SPEC_HEALTHCHECK, name
        for key in ("interval", "timeout", "start_period"):
            assert key not in check or DURATION.match(str(check[key])), f"{name}.{key}"
        assert isinstance(check["retries"], int) if "retries" in check else True
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict | list), name
        for other, spec in depends.items() if isinstance(depends, dict) else []:
            assert other in compose["services"], f"{name} depends on unknown {other}"
            assert set(spec) <= {"condition", "restart", "required"}, name
            assert spec["condition"] in SPEC_CONDITIONS, f"{name}: {spec['condition']}"
        env = service.get("environment", {})
        if isinstance(env, dict):
            for key, value in env.items():
                assert value is None or isinstance(value, str | int | float | bool), f"{name}.{key}"
        assert service.get("restart", "no") in ("no", "always", "on-failure", "unless-stopped")
        for port in service.get("ports", []):
            assert re.fullmatch(r"(\S+:)?\d+:\d+(/(tcp|udp))?|\d+", str(port)), f"{name}: {port}"
    text = COMPOSE.read_text(encoding="utf-8")
    for line in text.splitlines():
        code = "" if line.lstrip().startswith("#") else line.split(" #", 1)[0]
        for at in [i for i, c in enumerate(code) if c == "$"]:
            if at > 0 and code[at - 1] == "$":
                continue  # the second $ of $$
            assert INTERPOLATION.match(code, at), f"invalid interpolation: {line.strip()}"
