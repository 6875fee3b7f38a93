"""The Kubernetes manifests (deploy/) run the services the way the code expects.

No cluster is needed: the YAML is parsed and checked against the code itself: each
service's command, port, health routes and settings names, the consumer groups and topics
its broker really subscribes to (the apps are built, without I/O, in a subprocess), and
the topics' partition counts. When `kubectl` is installed, the kustomization is built with
it (offline), and `kubectl apply --dry-run=client` runs where an API server answers; when
the `kubernetes-validate` package is installed, every object is checked against the
Kubernetes JSON schemas.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from certification.settings import CertificationSettings
from intake.email_server import EmailInboxSettings
from intake.settings import PRIVACY_HTTP_PORT, IntakeSettings
from notification.settings import NotificationSettings
from routing.settings import RoutingSettings
from schemas.topics import ALL_TOPICS
from services.consumers import subscriber_options
from services.keyring import PrivacySettings
from services.lag import LagSettings
from services.settings import AuthSettings, KafkaSettings, MongoSettings, ServiceSettings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUSTOMIZATION = DEPLOY / "kustomization.yaml"
SECRET_TEMPLATE = DEPLOY / "secret.template.yaml"
NAMESPACE = "formation-events"
IMAGE = "formation-events"
APP_UID = 10001  # the Dockerfile's `app` user

SETTINGS: dict[str, type[ServiceSettings]] = {
    "intake": IntakeSettings,
    "routing": RoutingSettings,
    "notification": NotificationSettings,
    "certification": CertificationSettings,
}
SERVICES = tuple(SETTINGS)
DEPLOYMENTS: dict[str, str] = {**{name: name for name in SERVICES}, "intake-privacy": "intake"}
"""Each Deployment and the service (package) it runs: intake's privacy surface is deployed apart."""
CONSUMERS = ("routing", "notification", "certification")
"""Services that consume topics and scale on lag; intake scales on CPU (its one consumer, the status pages, is light)."""
TOPIC_PARTITIONS = {topic.name: topic.partitions for topic in ALL_TOPICS}
SECRET_KEYS = {
    "MONGODB_URI",
    "LOG_PEPPER",
    "KAFKA_SASL_PASSWORD",
    "INTAKE_PHONE_WEBHOOK_SECRET",
    "INTAKE_STATUS_LINK_KEY",
    "NOTIFICATION_SMS_TOKEN",
    "CERTIFICATION_SIGNING_KEY",
    "CERTIFICATION_OFFER_TOKEN_KEY",
    "PRIVACY_KEK",
}
# The KEDA Kafka scaler's trigger metadata (keda.sh/docs/latest/scalers/apache-kafka):
# a misspelt key is ignored by KEDA, silently.
KEDA_KAFKA_METADATA = {
    "bootstrapServers",
    "bootstrapServersFromEnv",
    "consumerGroup",
    "consumerGroupFromEnv",
    "topic",
    "topicFromEnv",
    "lagThreshold",
    "activationLagThreshold",
    "offsetResetPolicy",
    "allowIdleConsumers",
    "scaleToZeroOnInvalidOffset",
    "excludePersistentLag",
    "limitToPartitionsWithLag",
    "version",
    "partitionLimitation",
    "sasl",
    "tls",
    "unsafeSsl",
}


# ------------------------------------------------------------------------ loading ---


def manifest_files() -> list[Path]:
    return sorted(p for p in DEPLOY.glob("*.yaml") if p not in (KUSTOMIZATION, SECRET_TEMPLATE))


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@cache
def objects() -> tuple[dict[str, Any], ...]:
    """Every object `kubectl apply -k deploy/` applies (the secret template is not one)."""
    return tuple(doc for path in manifest_files() for doc in load_documents(path))


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects() if o["kind"] == kind}


def deployment(name: str) -> dict[str, Any]:
    deployments = of_kind("Deployment")
    assert name in deployments, f"no Deployment {name} in deploy/"
    return deployments[name]


def container(name: str) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment(name)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{name}: one container per pod"
    return containers[0]


def env_of(name: str) -> dict[str, dict[str, Any]]:
    """The container's `env`, by variable name."""
    return {e["name"]: e for e in container(name).get("env", [])}


def literal_env(name: str) -> dict[str, str]:
    """Every variable the service gets as a plain value: from its ConfigMaps, then its `env`."""
    env: dict[str, str] = {}
    configmaps = of_kind("ConfigMap")
    for source in container(name).get("envFrom", []):
        if "configMapRef" in source:
            env.update(configmaps[source["configMapRef"]["name"]]["data"])
    env.update({k: e["value"] for k, e in env_of(name).items() if "value" in e})
    return env


def port_number(name: str, port: int | str) -> int:
    """A probe's or Service's port, resolving a named container port."""
    if isinstance(port, int):
        return port
    named: dict[str, int] = {p["name"]: p["containerPort"] for p in container(name).get("ports", [])}
    assert port in named, f"{name}: no container port named {port!r}"
    return named[port]


def quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity as a number (cores, bytes)."""
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    for suffix, factor in sorted(units.items(), key=lambda item: -len(item[0])):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


# ------------------------------------------------------- what the code really reads ---


def _settings_classes(service: str) -> Iterator[type[BaseSettings]]:
    """The settings classes the service's package defines (IntakeSettings, EmailInboxSettings...)."""
    importlib.import_module(f"{service}.app")
    seen: set[type[BaseSettings]] = set()
    stack: list[type[BaseSettings]] = [BaseSettings]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.add(sub)
                stack.append(sub)
                if sub.__module__.split(".")[0] == service:
                    yield sub


def _env_names(cls: type[BaseSettings], prefix: str | None = None) -> dict[str, bool]:
    """Environment variable -> whether it holds a secret, for the fields of `cls`."""
    prefix = prefix if prefix is not None else cls.model_config.get("env_prefix", "")
    names = {}
    for field_name, info in cls.model_fields.items():
        if isinstance(info.default_factory, type) and issubclass(info.default_factory, BaseSettings):
            continue  # kafka, mongo: read with their own prefixes
        alias = info.validation_alias if isinstance(info.validation_alias, str) else None
        names[(alias or prefix + field_name).upper()] = "SecretStr" in repr(info.annotation) or info.annotation is SecretStr
    return names


# The services that seal or unseal personal data read the shared `PRIVACY_*` settings.
SEALING_SERVICES = {"intake", "routing", "notification", "certification"}


@cache
def settings_env(service: str) -> dict[str, bool]:
    """Every variable `service` reads -> whether it is a secret."""
    names = {**_env_names(KafkaSettings), **_env_names(MongoSettings), **_env_names(AuthSettings)}
    if service in SEALING_SERVICES:
        names.update(_env_names(PrivacySettings))
    for cls in _settings_classes(service):
        names.update(_env_names(cls))
    names.update(_env_names(LagSettings, prefix=SETTINGS[service].model_config["env_prefix"]))
    return names


_INTROSPECT = r"""
import importlib, json, sys
from services.lag import consumer_groups
from services.auth import declared_policies
out = {}
for pair in sys.argv[2:]:
    name, _, service = pair.partition("=")
    app = importlib.import_module(f"{service}.app").create_app()
    out[name] = {
        "groups": {g: sorted(t) for g, t in consumer_groups(app.state.runtime.broker).items()},
        "routes": sorted({getattr(r, "path", "") for r in app.routes}),
        "declared": sorted(declared_policies(app)),
    }
with open(sys.argv[1], "w") as f:
    json.dump(out, f)
"""


FILLED_IN_SECRET = {
    "MONGODB_URI": "mongodb://app:pw@mongo.example.org:27017/?replicaSet=rs0&tls=true",
    "LOG_PEPPER": "3d9a71c0e4b85f26a1c7d03e9b4f8a62c5e1d7b09f3a6c48e2b7d15a0c9f4e83",
    "KAFKA_SASL_PASSWORD": "a-kafka-password-from-the-vault",
    "INTAKE_PHONE_WEBHOOK_SECRET": "9f2c4e71b8a05d3e6c1f47a2b9d08e5c3a6f1b7d2e4c8a0f5b9d3e7c1a4f6b2d",
    "INTAKE_STATUS_LINK_KEY": "4b8e2f6a1c9d3e7b0a5f8c2d6e1b4a9f3c7e0d5b8a2f6c1e9d4b7a3f0e8c5d2a",
    "NOTIFICATION_SMS_TOKEN": "a-token-the-sms-provider-issued",
    "CERTIFICATION_SIGNING_KEY": "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=",
    "CERTIFICATION_OFFER_TOKEN_KEY": "7c4e1a9f3b2d8e05a6c1f4b7d9e2a3c8f0b5d1e6a4c7f2b9e3d0a8c5f1b6e4d2",
    "PRIVACY_KEK": "IN4h7o3vU2Jx8yq1Wc6b0PzTfKsLmAdRgE9iHuQjV5Y=",
}
"""The Secret as a filled-in copy of the template would give it (test values, of the right shapes)."""


def filled_in_secrets(name: str) -> dict[str, str]:
    """The variables the Deployment takes from the Secret, with `FILLED_IN_SECRET`'s values."""
    refs = {k: e["valueFrom"]["secretKeyRef"]["key"] for k, e in env_of(name).items() if "secretKeyRef" in e.get("valueFrom", {})}
    return {variable: FILLED_IN_SECRET[key] for variable, key in refs.items()}


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Each service's consumer groups (group -> topics) and HTTP routes, from its app built with
    the environment the manifests give it (in a subprocess: building an app configures logging)."""
    out = tmp_path_factory.mktemp("apps") / "apps.json"
    prefixes = ("ENVIRONMENT", "KAFKA_", "MONGODB_", "OIDC_", "PRIVACY_", *(f"{s.upper()}_" for s in SERVICES))
    base = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    result: dict[str, dict[str, Any]] = {}
    for name, service in DEPLOYMENTS.items():
        env = {**base, **literal_env(name), **filled_in_secrets(name)}
        proc = subprocess.run(
            [sys.executable, "-c", _INTROSPECT, str(out), f"{name}={service}"],
            capture_output=True,
            text=True,
            timeout=240,
            cwd=REPO,
            env=env,
        )
        assert proc.returncode == 0, f"{name} does not build with its manifest environment:\n{proc.stderr[-3000:]}"
        result.update(json.loads(out.read_text()))
    return result


def http_port(name: str) -> int:
    """The port the Deployment's service listens on by default (intake's privacy surface has its own)."""
    if name == "intake-privacy":
        return PRIVACY_HTTP_PORT
    port: int = SETTINGS[DEPLOYMENTS[name]].model_fields["http_port"].default
    return port


# ------------------------------------------------------------------------ structure ---


def test_every_document_is_a_named_kubernetes_object_in_the_namespace() -> None:
    assert manifest_files(), "no manifests in deploy/"
    seen = set()
    for path in [*manifest_files(), SECRET_TEMPLATE]:
        for doc in load_documents(path):
            assert isinstance(doc, dict), path.name
            assert doc.get("apiVersion") and doc.get("kind"), f"{path.name}: {doc}"
            name = doc.get("metadata", {}).get("name")
            assert name, f"{path.name}: a {doc['kind']} without metadata.name"
            if doc["kind"] != "Namespace":
                assert doc["metadata"].get("namespace") == NAMESPACE, f"{path.name}: {doc['kind']}/{name}"
            key = (doc["apiVersion"].split("/")[0], doc["kind"], name)
            assert key not in seen, f"{key} is declared twice"
            seen.add(key)


def test_kustomization_applies_every_manifest_but_the_secret_template() -> None:
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["namespace"] == NAMESPACE
    resources = kustomization["resources"]
    assert sorted(resources) == sorted(p.name for p in manifest_files())
    assert SECRET_TEMPLATE.name not in resources, "applying the template would replace the real Secret with placeholders"
    assert {"kind": "Namespace", "name": NAMESPACE} in [{"kind": o["kind"], "name": o["metadata"]["name"]} for o in objects()]
    assert [i["name"] for i in kustomization["images"]] == [IMAGE]


def test_configmap_keys_are_settings_every_service_reads_and_none_is_secret() -> None:
    configmaps = of_kind("ConfigMap")
    assert set(configmaps) == {"formation-events-config"}
    data = configmaps["formation-events-config"]["data"]
    assert {"KAFKA_BOOTSTRAP_SERVERS", "KAFKA_SECURITY_PROTOCOL", "MONGODB_DATABASE"} <= set(data)
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values must be strings (quote numbers)"
    for name in SERVICES:
        known = settings_env(name)
        for key in data:
            assert key in known, f"{key} is read by no settings of {name} (a misspelt variable is ignored silently)"
            assert not known[key], f"{key} is a secret: it belongs in the Secret, not the ConfigMap"
    assert data["MONGODB_DATABASE"] == MongoSettings.model_fields["database"].default
    KafkaSettings.model_validate({k.removeprefix("KAFKA_").lower(): v for k, v in data.items() if k.startswith("KAFKA_")})


def test_secret_template_holds_placeholders_only() -> None:
    docs = load_documents(SECRET_TEMPLATE)
    assert len(docs) == 1
    secret = docs[0]
    assert secret["kind"] == "Secret" and secret["type"] == "Opaque"
    assert "data" not in secret, "a template has no base64 `data`, only readable `stringData` placeholders"
    values = secret["stringData"]
    assert set(values) == SECRET_KEYS
    for key, value in values.items():
        assert isinstance(value, str)
        assert "REPLACE_ME" in value, f"{key}: not a placeholder"
        rest = value.replace("REPLACE_ME", "")
        assert "BEGIN" not in rest and not re.search(r"[A-Za-z0-9+/=_-]{12,}", rest), f"{key} looks like a real value"
        assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", rest), f"{key} holds credentials"
    assert not [o for o in objects() if o["kind"] == "Secret"], "real Secrets do not go in deploy/"


# ---------------------------------------------------------------------- Deployments ---


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_deployment_runs_python_m_service_from_the_image(name: str) -> None:
    spec = deployment(name)["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    c = container(name)
    assert c["command"] == ["python", "-m", DEPLOYMENTS[name]]
    repository, _, tag = c["image"].rpartition(":")
    assert repository == IMAGE and tag and tag != "latest", c["image"]
    assert "replicas" not in spec, f"{name} is autoscaled: `replicas` in the manifest would reset it on every apply"


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_deployment_listens_on_the_settings_port_on_all_interfaces_with_json_logs(name: str) -> None:
    prefix = DEPLOYMENTS[name].upper()
    port = http_port(name)
    assert port_number(name, "http") == port
    env = literal_env(name)
    assert env[f"{prefix}_HTTP_HOST"] == "0.0.0.0"
    assert env.get(f"{prefix}_HTTP_PORT", str(port)) == str(port)
    assert env[f"{prefix}_LOG_FORMAT"] == "json"
    assert f"{prefix}_INSTANCE_ID" not in env, "replicas must default to hostname:pid"
    assert deployment(name)["spec"]["template"]["spec"].get("enableServiceLinks") is False, (
        "Service links inject <NAME>_PORT... variables that share our settings' prefixes"
    )


def test_intake_serves_smtp_on_all_interfaces() -> None:
    port = EmailInboxSettings.model_fields["port"].default
    env = literal_env("intake")
    assert env["INTAKE_SMTP_HOST"] == "0.0.0.0"
    assert port_number("intake", "smtp") == int(env.get("INTAKE_SMTP_PORT", port))


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_probes_hit_the_health_routes_on_the_http_port(name: str, apps: dict[str, dict[str, Any]]) -> None:
    c = container(name)
    port = http_port(name)
    expected = {"livenessProbe": "/health/live", "readinessProbe": "/health/ready", "startupProbe": "/health/live"}
    for probe, path in expected.items():
        assert probe in c, f"{name} has no {probe}"
        get = c[probe]["httpGet"]
        assert get["path"] == path, f"{name} {probe}"
        assert port_number(name, get["port"]) == port, f"{name} {probe}"
        assert path in apps[name]["routes"], f"{name} serves no {path}"
    startup = c["startupProbe"]
    # Consumers wait up to 120 s for Kafka before serving HTTP (services.app.create_service_app).
    assert startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3) >= 120


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_deployment_has_resources_for_a_small_service(name: str) -> None:
    resources = container(name)["resources"]
    for kind in ("cpu", "memory"):
        request, limit = quantity(resources["requests"][kind]), quantity(resources["limits"][kind])
        assert 0 < request <= limit, f"{name} {kind}: request {request} limit {limit}"
    assert quantity(resources["requests"]["memory"]) >= 128 * 2**20, "a service takes ~90 MiB as it starts"
    assert quantity(resources["limits"]["memory"]) <= 2 * 2**30
    assert quantity(resources["limits"]["cpu"]) <= 2


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_deployment_runs_as_non_root_with_a_read_only_root_file_system(name: str) -> None:
    pod = deployment(name)["spec"]["template"]["spec"]
    c = container(name)
    pod_sc, sc = pod.get("securityContext", {}), c.get("securityContext", {})
    assert pod_sc.get("runAsNonRoot") is True or sc.get("runAsNonRoot") is True
    assert sc.get("runAsUser", pod_sc.get("runAsUser")) == APP_UID
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc.get("seccompProfile", pod_sc.get("seccompProfile")) == {"type": "RuntimeDefault"}
    assert pod.get("automountServiceAccountToken") is False, "the services never call the Kubernetes API"
    # MPLCONFIGDIR=/tmp/matplotlib (Dockerfile): /tmp must be writable.
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    assert "/tmp" in mounts and "emptyDir" in volumes[mounts["/tmp"]]


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_termination_grace_covers_the_graceful_shutdown(name: str) -> None:
    pod = deployment(name)["spec"]["template"]["spec"]
    needed = ServiceSettings.model_fields["graceful_timeout_s"].default
    pre_stop = container(name).get("lifecycle", {}).get("preStop", {})
    if "exec" in pre_stop:
        command = pre_stop["exec"]["command"]
        assert command[0] == "sleep", "python:3.11-slim has coreutils' sleep, nothing fancier"
        needed += float(command[1])
    elif "sleep" in pre_stop:
        needed += pre_stop["sleep"]["seconds"]
    if name == "intake":
        needed += EmailInboxSettings.model_fields["shutdown_grace_s"].default
    assert pod["terminationGracePeriodSeconds"] >= needed


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_deployment_environment_names_are_read_by_the_settings(name: str) -> None:
    """A misspelt variable would be ignored silently (extra="ignore"): every one must be a settings field."""
    known = settings_env(DEPLOYMENTS[name])
    for key, entry in env_of(name).items():
        assert key in known, f"{name}: {key} is read by no settings of {name}"
        if known[key]:
            assert "secretKeyRef" in entry.get("valueFrom", {}), f"{name}: {key} is a secret: take it from the Secret"


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_secrets_come_from_keys_of_the_secret_template(name: str) -> None:
    template = load_documents(SECRET_TEMPLATE)[0]
    refs = {k: e["valueFrom"]["secretKeyRef"] for k, e in env_of(name).items() if "secretKeyRef" in e.get("valueFrom", {})}
    assert "MONGODB_URI" in refs and not refs["MONGODB_URI"].get("optional"), "every service needs MongoDB"
    for ref in refs.values():
        assert ref["name"] == template["metadata"]["name"]
        assert ref["key"] in template["stringData"], f"{name}: {ref['key']} is not in the Secret template"
    for source in container(name).get("envFrom", []):
        assert "secretRef" not in source, "take only the keys a service needs, by name"


def test_every_secret_of_the_template_is_used() -> None:
    used = {
        e["valueFrom"]["secretKeyRef"]["key"]
        for name in SERVICES
        for e in env_of(name).values()
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert used == SECRET_KEYS


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_pods_are_scraped_by_prometheus_on_metrics(name: str, apps: dict[str, dict[str, Any]]) -> None:
    annotations = deployment(name)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == http_port(name)
    assert annotations.get("prometheus.io/path", "/metrics") == "/metrics"
    assert "/metrics" in apps[name]["routes"]


# ------------------------------------------------------------------------- Services ---


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_service_selects_the_pods_and_targets_their_ports(name: str) -> None:
    services = of_kind("Service")
    assert name in services
    spec = services[name]["spec"]
    labels = deployment(name)["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"].items() <= labels.items()
    ports = {p["name"]: p for p in spec["ports"]}
    expected = {"http", "smtp"} if name == "intake" else {"http"}
    assert set(ports) == expected
    for port_name, port in ports.items():
        assert port_number(name, port["targetPort"]) == port_number(name, port_name)
    assert ports["http"]["port"] == http_port(name)


# ---------------------------------------------------------------------- autoscaling ---


def scaled_objects() -> dict[str, dict[str, Any]]:
    return {o["spec"]["scaleTargetRef"]["name"]: o for o in objects() if o["kind"] == "ScaledObject"}


def kafka_trigger(target: str) -> dict[str, str]:
    triggers = [t for t in scaled_objects()[target]["spec"]["triggers"] if t["type"] == "kafka"]
    assert len(triggers) == 1
    metadata: dict[str, str] = triggers[0]["metadata"]
    return metadata


def test_the_consumers_scale_on_lag_with_keda_and_intake_on_cpu() -> None:
    assert set(scaled_objects()) == set(CONSUMERS)
    hpas = {o["spec"]["scaleTargetRef"]["name"]: o for o in objects() if o["kind"] == "HorizontalPodAutoscaler"}
    assert set(hpas) == {"intake"}, "KEDA makes its own HPA: a second one on the same Deployment would fight it"
    hpa = hpas["intake"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "intake"}
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Resource"] == ["cpu"]
    assert "requests" in container("intake")["resources"], "CPU utilisation is relative to the request"


@pytest.mark.parametrize("name", CONSUMERS)
def test_scaled_object_targets_the_deployment(name: str) -> None:
    scaled = scaled_objects()[name]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    ref = scaled["spec"]["scaleTargetRef"]
    assert ref.get("kind", "Deployment") == "Deployment" and ref.get("apiVersion", "apps/v1") == "apps/v1"
    deployment(ref["name"])
    # Never to zero: each consumer also serves HTTP (desk, staff APIs) and runs timers and relays.
    assert scaled["spec"]["minReplicaCount"] >= 1


@pytest.mark.parametrize("name", CONSUMERS)
def test_kafka_trigger_names_a_group_and_topic_the_service_really_consumes(name: str, apps: dict[str, dict[str, Any]]) -> None:
    metadata = kafka_trigger(name)
    assert set(metadata) <= KEDA_KAFKA_METADATA, f"unknown KEDA kafka metadata: {set(metadata) - KEDA_KAFKA_METADATA}"
    assert all(isinstance(v, str) for v in metadata.values()), "KEDA trigger metadata is a map of strings: quote them"
    groups = apps[name]["groups"]
    group, topic = metadata["consumerGroup"], metadata["topic"]
    prefix = literal_env(name).get("KAFKA_TOPIC_PREFIX", "")
    # The service's main group; subscriber_options prefixes groups like topics.
    assert group == prefix + name
    assert group in groups, f"{name} has no consumer group {group!r} (it has {sorted(groups)})"
    assert topic in groups[group], f"group {group} reads {groups[group]}, not {topic}"
    assert topic.removeprefix(prefix) in TOPIC_PARTITIONS, f"{topic} is not declared in schemas/topics.py"


@pytest.mark.parametrize("name", CONSUMERS)
def test_max_replicas_is_at_most_the_topic_partitions(name: str) -> None:
    scaled = scaled_objects()[name]["spec"]
    metadata = kafka_trigger(name)
    prefix = literal_env(name).get("KAFKA_TOPIC_PREFIX", "")
    partitions = TOPIC_PARTITIONS[metadata["topic"].removeprefix(prefix)]
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"] <= partitions
    assert metadata.get("allowIdleConsumers", "false") == "false"


@pytest.mark.parametrize("name", CONSUMERS)
def test_kafka_trigger_reads_the_services_brokers_from_the_reset_point_they_use(name: str) -> None:
    metadata = kafka_trigger(name)
    env = literal_env(name)
    if "bootstrapServersFromEnv" in metadata:
        assert metadata["bootstrapServersFromEnv"] == "KAFKA_BOOTSTRAP_SERVERS"
    else:
        assert metadata["bootstrapServers"] == env["KAFKA_BOOTSTRAP_SERVERS"]
    # A group with no committed offset reads from the start (auto_offset_reset), so KEDA must count it so.
    assert metadata["offsetResetPolicy"] == subscriber_options(name)["auto_offset_reset"] == "earliest"
    threshold = int(metadata["lagThreshold"])
    assert threshold > 0
    if env.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").startswith("SASL"):
        assert "authenticationRef" in next(t for t in scaled_objects()[name]["spec"]["triggers"] if t["type"] == "kafka")


@pytest.mark.parametrize("name", CONSUMERS)
def test_lag_threshold_reaches_max_replicas_with_a_realistic_backlog(name: str) -> None:
    """Full scale-out needs lagThreshold x maxReplicaCount records behind: keep that in the hundreds."""
    threshold = int(kafka_trigger(name)["lagThreshold"])
    assert threshold * scaled_objects()[name]["spec"]["maxReplicaCount"] <= 1000


# ------------------------------------------------------------------ optional tools ---


def test_kustomize_build_renders_the_same_objects_with_one_bootstrap_server_list() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the kustomization is checked as YAML only")
    result = subprocess.run([kubectl, "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert sorted((o["kind"], o["metadata"]["name"]) for o in rendered) == sorted(
        (o["kind"], o["metadata"]["name"]) for o in objects()
    )
    brokers = next(o for o in rendered if o["kind"] == "ConfigMap")["data"]["KAFKA_BOOTSTRAP_SERVERS"]
    for o in rendered:
        if o["kind"] == "ScaledObject":
            assert o["spec"]["triggers"][0]["metadata"]["bootstrapServers"] == brokers
        assert o["metadata"].get("namespace", NAMESPACE) == NAMESPACE


def test_kubectl_apply_dry_run_client() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    result = subprocess.run(
        [kubectl, "apply", "--dry-run=client", "--request-timeout=10s", "-k", str(DEPLOY)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    no_server = (
        "connection refused",
        "failed to download openapi",
        "couldn't get current server API group list",
        "Unable to connect to the server",
        "no configuration has been provided",
    )
    if result.returncode != 0 and any(text in result.stderr for text in no_server):
        pytest.skip("kubectl apply --dry-run=client needs an API server for the schemas and none answers here")
    if result.returncode != 0 and "ensure CRDs are installed first" in result.stderr:
        pytest.skip("the cluster kubectl reaches has no KEDA CRDs (ScaledObject)")
    assert result.returncode == 0, result.stderr


def test_objects_match_the_kubernetes_json_schemas() -> None:
    try:
        import kubernetes_validate  # type: ignore[import-not-found]
    except ImportError:
        pytest.skip("no offline Kubernetes JSON schemas installed (the kubernetes-validate package)")
    for obj in objects():
        if obj["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: not in the Kubernetes schemas
        kubernetes_validate.validate(obj, "1.30", strict=True)


def test_the_public_intake_serves_no_erasure_and_the_privacy_surface_nothing_else(apps: dict[str, dict[str, Any]]) -> None:
    assert literal_env("intake")["INTAKE_SURFACES"] == "public"
    assert literal_env("intake-privacy")["INTAKE_SURFACES"] == "privacy"
    assert "POST /api/v1/requests" in apps["intake"]["declared"]
    assert not [route for route in apps["intake"]["declared"] if "/api/v1/privacy" in route]
    assert "POST /api/v1/privacy/erasures" in apps["intake-privacy"]["declared"]
    assert not {"POST /api/v1/requests", "POST /webhooks/phone"} & set(apps["intake-privacy"]["declared"])
    public_labels = deployment("intake")["spec"]["template"]["metadata"]["labels"]
    privacy_selector = of_kind("Service")["intake-privacy"]["spec"]["selector"]
    assert not privacy_selector.items() <= public_labels.items(), "the privacy Service must not reach the public pods"


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_deployments_run_in_production_mode_and_carry_all_it_needs(name: str) -> None:
    """The `apps` fixture builds each app with this environment: production settings that load are complete."""
    env = literal_env(name)
    assert env["ENVIRONMENT"] == "production"
    settings = SETTINGS[DEPLOYMENTS[name]]
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith(("ENVIRONMENT", "KAFKA_", "MONGODB_", "OIDC_"))]:
            patch.delenv(key)
        for key, value in {**env, **filled_in_secrets(name)}.items():
            patch.setenv(key, value)
        assert settings().environment == "production"
        patch.delenv("MONGODB_URI")
        with pytest.raises(ValueError, match="MONGODB_URI has no credentials"):
            settings()


def test_the_keda_scalers_sign_in_as_the_services_do() -> None:
    auths = {o["metadata"]["name"]: o for o in objects() if o["kind"] == "TriggerAuthentication"}
    assert set(auths) == {"kafka-sasl"}
    spec = auths["kafka-sasl"]["spec"]
    assert {e["parameter"]: e["name"] for e in spec["env"]} == {"username": "KAFKA_SASL_USERNAME"}
    assert {s["parameter"]: s["key"] for s in spec["secretTargetRef"]} == {"password": "KAFKA_SASL_PASSWORD"}
    for name in CONSUMERS:
        trigger = next(t for t in scaled_objects()[name]["spec"]["triggers"] if t["type"] == "kafka")
        assert trigger["authenticationRef"] == {"name": "kafka-sasl"}
        assert (trigger["metadata"]["sasl"], trigger["metadata"]["tls"]) == ("scram_sha512", "enable")
        assert literal_env(name)["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
