"""The container setup (Dockerfile, .dockerignore, docker-compose.yml) builds the same system as the local one.

No Docker engine is needed: the files are parsed and checked against what the Docker-free
setup uses (scripts/infra.sh, scripts/launch.py, the services' settings). When the
`docker compose` client is installed, it validates the compose file too (no engine needed).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from certification.settings import CertificationSettings
from intake.settings import IntakeSettings
from notification.settings import NotificationSettings
from routing.settings import RoutingSettings
from services.keyring import PrivacySettings
from services.settings import KafkaSettings, MongoSettings, ServiceSettings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
INFRA_SH = REPO / "scripts" / "infra.sh"

SETTINGS: dict[str, type[ServiceSettings]] = {
    "intake": IntakeSettings,
    "routing": RoutingSettings,
    "notification": NotificationSettings,
    "certification": CertificationSettings,
}
SERVICES = tuple(SETTINGS)
INFRA = ("kafka", "mongodb")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


def env_of(service: dict[str, Any]) -> dict[str, str | None]:
    """A service's environment as a dict, whether written as a mapping or as a list of KEY=VALUE."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return {k: (v if sep else None) for k, sep, v in (item.partition("=") for item in env)}
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def host_ports(service: dict[str, Any]) -> list[str]:
    """The host side of every published port (empty string when Docker picks an ephemeral one)."""
    published = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            published.append(str(port.get("published") or ""))
            continue
        parts = str(port).split(":")
        # "8001", "8001:8001", "127.0.0.1:8001:8001"
        published.append(parts[-2] if len(parts) >= 2 else "")
    return published


def local_kafka_version() -> str:
    """The Kafka version scripts/infra.sh installs for the Docker-free setup."""
    if not INFRA_SH.exists():
        pytest.skip(f"{INFRA_SH.relative_to(REPO)} does not exist yet: no local Kafka version to compare with")
    text = INFRA_SH.read_text()
    patterns = (
        # KAFKA_VERSION=4.4.0, KAFKA_VERSION="4.4.0", ${KAFKA_VERSION:-4.4.0 4.3.2} (the first is preferred)
        r"KAFKA_VERSION(?::-|:=|=)\s*[\"']?(\d+\.\d+\.\d+)",
        # kafka_2.13-4.4.0.tgz, kafka_2.13/4.4.0
        r"kafka_2\.1[23][-/](\d+\.\d+\.\d+)",
        # "org.apache.kafka:kafka_2.13 (default: 4.4.0"
        r"kafka_2\.1[23]\b[^\n]*?(\d+\.\d+\.\d+)",
    )
    for pattern in patterns:
        if match := re.search(pattern, text):
            return match.group(1)
    pytest.fail(f"no Kafka version (KAFKA_VERSION=x.y.z or kafka_2.13 x.y.z) found in {INFRA_SH.relative_to(REPO)}")


# ------------------------------------------------------------ docker-compose.yml ---


def test_compose_file_uses_the_compose_spec_without_version_key(compose: dict[str, Any]) -> None:
    assert "version" not in compose
    # Keycloak, the local identity provider, is no dependency of the services (yet): not in INFRA.
    assert set(compose["services"]) == {*INFRA, "keycloak", *SERVICES, "intake-privacy"}


def local_keycloak_version() -> str:
    """The Keycloak version scripts/infra.sh installs for the Docker-free setup."""
    match = re.search(r'^KEYCLOAK_VERSION="(\d+\.\d+\.\d+)"', INFRA_SH.read_text(), re.MULTILINE)
    assert match, f'no KEYCLOAK_VERSION="x.y.z" in {INFRA_SH.relative_to(REPO)}'
    return match.group(1)


def test_keycloak_is_the_local_one_with_the_versioned_realm(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    keycloak = services["keycloak"]
    assert keycloak["image"] == f"quay.io/keycloak/keycloak:{local_keycloak_version()}"
    command = keycloak["command"]
    assert command[0] == "start-dev"
    assert "--import-realm" in command and "--health-enabled=true" in command
    mounts = [str(v).split(":") for v in keycloak["volumes"]]
    assert ["./deploy/keycloak/formation-realm.json", "/opt/keycloak/data/import/formation-realm.json", "ro"] in mounts
    assert (REPO / "deploy" / "keycloak" / "formation-realm.json").is_file()
    data = [source for source, target, *_ in mounts if target == "/opt/keycloak/data/h2"]
    assert data and data[0] in compose["volumes"], "the dev storage should live in a named volume"
    # The same address as scripts/infra.sh's Keycloak, on the host's loopback only.
    assert host_ports(keycloak) == ["8180"]
    assert "/health/ready" in " ".join(keycloak["healthcheck"]["test"])
    assert env_of(keycloak)["KC_HOSTNAME"] == "http://localhost:8180"


def test_kafka_is_apache_kafka_in_kraft_mode_without_zookeeper(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert not any("zookeeper" in name.lower() for name in services)
    env = env_of(kafka)
    assert not any("ZOOKEEPER" in key for key in env)
    assert set((env["KAFKA_PROCESS_ROLES"] or "").split(",")) == {"broker", "controller"}
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "CONTROLLER://:9093" in (env["KAFKA_LISTENERS"] or "")
    assert env.get("CLUSTER_ID"), "the apache/kafka image needs CLUSTER_ID in KRaft mode"


def test_kafka_broker_settings_match_the_local_broker(services: dict[str, dict[str, Any]]) -> None:
    env = env_of(services["kafka"])
    assert env["KAFKA_NUM_PARTITIONS"] == "3"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "true"


def test_kafka_version_matches_the_local_setup(services: dict[str, dict[str, Any]]) -> None:
    expected = local_kafka_version()
    image = services["kafka"]["image"]
    assert image == f"apache/kafka:{expected}", f"scripts/infra.sh runs Kafka {expected}, compose runs {image}"


def test_mongodb_is_a_single_member_replica_set_rs0(services: dict[str, dict[str, Any]]) -> None:
    mongodb = services["mongodb"]
    assert mongodb["image"] == "mongo:6.0"
    command = mongodb["command"]
    command = command.split() if isinstance(command, str) else command
    assert command[command.index("--replSet") + 1] == "rs0"
    assert "--bind_ip_all" in command
    probe = " ".join(mongodb["healthcheck"]["test"])
    assert "rs.initiate" in probe and "_id: 'rs0'" in probe and "mongodb:27017" in probe


def test_infrastructure_has_healthchecks_and_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "kafka-topics.sh" in " ".join(services["kafka"]["healthcheck"]["test"])
    for name in INFRA:
        assert services[name]["healthcheck"]["test"], name
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            assert source in compose["volumes"], f"{name} should keep its data in a named volume"


@pytest.mark.parametrize("name", SERVICES)
def test_service_runs_python_m_from_the_shared_image(services: dict[str, dict[str, Any]], name: str) -> None:
    service = services[name]
    assert service["command"] == ["python", "-m", name]
    assert service["build"] in (".", {"context": "."})
    assert service["image"] == "formation-events:local"
    assert service["restart"] == "unless-stopped"


@pytest.mark.parametrize("name", SERVICES)
def test_service_healthcheck_hits_health_ready_on_its_port(services: dict[str, dict[str, Any]], name: str) -> None:
    probe = services[name]["healthcheck"]["test"]
    assert probe[0] in ("CMD", "CMD-SHELL")
    port = SETTINGS[name].model_fields["http_port"].default
    assert f"127.0.0.1:{port}/health/ready" in " ".join(probe)
    assert "curl" not in " ".join(probe), "python:3.11-slim has no curl"


@pytest.mark.parametrize("name", SERVICES)
def test_service_waits_for_healthy_kafka_and_mongodb(services: dict[str, dict[str, Any]], name: str) -> None:
    depends_on = services[name]["depends_on"]
    assert isinstance(depends_on, dict), "the long form is needed for `condition: service_healthy`"
    for infra in INFRA:
        assert depends_on[infra]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", SERVICES)
def test_service_is_scalable(services: dict[str, dict[str, Any]], name: str) -> None:
    service = services[name]
    assert "container_name" not in service, "a fixed container name prevents --scale"
    published = host_ports(service)
    if name == "intake":
        assert published == ["8001"]
    else:
        assert published == [] or all(p == "" for p in published), f"{name} publishes fixed host ports {published}"


@pytest.mark.parametrize("name", SERVICES)
def test_service_environment_points_at_the_compose_infrastructure(services: dict[str, dict[str, Any]], name: str) -> None:
    env = env_of(services[name])
    prefix = name.upper()
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["MONGODB_URI"] == "mongodb://mongodb:27017/?replicaSet=rs0"
    assert env["MONGODB_DATABASE"] == MongoSettings.model_fields["database"].default
    assert env[f"{prefix}_HTTP_HOST"] == "0.0.0.0"
    assert env[f"{prefix}_LOG_FORMAT"] == "json"
    assert f"{prefix}_INSTANCE_ID" not in env, "replicas must default to hostname:pid"


@pytest.mark.parametrize("name", SERVICES)
def test_service_environment_names_are_read_by_the_settings(services: dict[str, dict[str, Any]], name: str) -> None:
    """A misspelt variable would be ignored silently (extra="ignore"): every one must be a settings field."""
    prefix = f"{name.upper()}_"
    for key in env_of(services[name]):
        if key.startswith("KAFKA_"):
            assert key.removeprefix("KAFKA_").lower() in KafkaSettings.model_fields, key
        elif key.startswith("MONGODB_"):
            assert key.removeprefix("MONGODB_").lower() in MongoSettings.model_fields, key
        elif key.startswith("PRIVACY_"):
            assert key.removeprefix("PRIVACY_").lower() in PrivacySettings.model_fields, key
        else:
            assert key.startswith(prefix), key
            assert key.removeprefix(prefix).lower() in SETTINGS[name].model_fields, key


@pytest.mark.parametrize("name", SERVICES)
def test_service_settings_load_from_the_compose_environment(
    services: dict[str, dict[str, Any]], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith(("KAFKA_", "MONGODB_", f"{name.upper()}_"))]:
        monkeypatch.delenv(key)
    for key, value in env_of(services[name]).items():
        if value is not None:  # a key without value is passed through from the host, or left unset
            monkeypatch.setenv(key, value)
    settings = SETTINGS[name]()
    assert settings.service_name == name
    assert settings.http_host == "0.0.0.0"
    assert settings.http_port == SETTINGS[name].model_fields["http_port"].default
    assert settings.instance_id is None
    assert settings.log_format == "json"
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.kafka.security_protocol == "PLAINTEXT"
    assert settings.mongo.uri.get_secret_value() == "mongodb://mongodb:27017/?replicaSet=rs0"


def test_intakes_privacy_surface_runs_apart_on_its_own_port(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    privacy = services["intake-privacy"]
    assert privacy["command"] == ["python", "-m", "intake"]
    assert privacy["image"] == services["intake"]["image"]
    for infra in INFRA:
        assert privacy["depends_on"][infra]["condition"] == "service_healthy"
    for key in [k for k in os.environ if k.startswith(("KAFKA_", "MONGODB_", "INTAKE_"))]:
        monkeypatch.delenv(key)
    for key, value in env_of(privacy).items():
        if value is not None:
            monkeypatch.setenv(key, value)
    settings = IntakeSettings()
    assert (settings.surfaces, settings.http_port, settings.http_host) == (frozenset({"privacy"}), 8011, "0.0.0.0")
    assert "127.0.0.1:8011/health/ready" in " ".join(privacy["healthcheck"]["test"])
    assert "INTAKE_SURFACES" not in env_of(services["intake"]), "the public intake app serves its default: public"


def test_service_ports_match_the_local_launcher() -> None:
    from scripts.launch import DEFAULT_PORTS

    assert {name: cls.model_fields["http_port"].default for name, cls in SETTINGS.items()} == DEFAULT_PORTS


def test_docker_compose_config_validates() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("the docker client is not installed")
    version = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=60)
    if version.returncode != 0:
        reason = (version.stderr or version.stdout).strip().splitlines() or [f"exit {version.returncode}"]
        pytest.skip(f"the docker compose plugin cannot run here: {reason[0]}")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------- Dockerfile ---


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            instructions.append((keyword.upper(), " ".join(args.split())))
    return instructions


def test_dockerfile_installs_the_locked_runtime_dependencies_before_the_source() -> None:
    instructions = dockerfile_instructions()
    copies = [args for keyword, args in instructions if keyword == "COPY" and "--from" not in args]
    lock_copy = next(i for i, args in enumerate(copies) if "uv.lock" in args.split())
    assert "pyproject.toml" in copies[lock_copy].split()
    source_copies = [i for i, args in enumerate(copies) if args.split()[0].rstrip("/") == "services"]
    assert source_copies and lock_copy < source_copies[0], "uv.lock must be copied before the source (layer cache)"
    syncs = [args for keyword, args in instructions if keyword == "RUN" and "uv sync" in args]
    assert syncs
    for sync in syncs:
        assert "--frozen" in sync
        assert "--no-dev" in sync
        assert "--no-group infra" in sync


def test_dockerfile_copies_every_package_of_the_project() -> None:
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    copied = {
        src.rstrip("/")
        for keyword, args in dockerfile_instructions()
        if keyword == "COPY" and "--from" not in args
        for src in args.split()[:-1]
        if not src.startswith("--")
    }
    assert set(packages) <= copied


def test_dockerfile_runtime_is_python_311_slim_as_non_root() -> None:
    instructions = dockerfile_instructions()
    args = {name: default for keyword, rest in instructions if keyword == "ARG" for name, _, default in [rest.partition("=")]}
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    runtime_image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), froms[-1].split()[0])
    assert runtime_image == "python:3.11-slim"
    last_stage = instructions[max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM") :]
    users = [rest for keyword, rest in last_stage if keyword == "USER"]
    assert users and users[-1] not in ("root", "0")
    envs = " ".join(rest for keyword, rest in last_stage if keyword == "ENV")
    assert "PYTHONUNBUFFERED=1" in envs
    cmd = next(rest for keyword, rest in reversed(last_stage) if keyword == "CMD")
    assert cmd.startswith('["python", "-m",')


def test_dockerignore_keeps_local_state_out_and_the_build_inputs_in() -> None:
    patterns = {
        line.strip().strip("/") for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".local", ".git"} <= patterns
    needed = {"pyproject.toml", "uv.lock", "README.md", "schemas", "services", *SERVICES}
    assert not needed & patterns
