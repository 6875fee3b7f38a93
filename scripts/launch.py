"""Start and stop the services as separate processes, the way ops run them: `python -m <service>`.

Used by `make demo` and the end-to-end tests, so both exercise the real entrypoints.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from scripts.principals import ADMIN, kafka_client_env, mongo_credentials

SERVICES = ("intake", "routing", "notification", "certification")
DEFAULT_PORTS = {"intake": 8001, "routing": 8002, "notification": 8003, "certification": 8004}
REPO = Path(__file__).resolve().parent.parent


LOCAL_PRINCIPAL = "FORMATION_LOCAL_PRINCIPAL"
"""Who clients of scripts/infra.sh's servers authenticate as when no principal is named: the test suite
sets `tests` (its per-run topic prefixes are beyond any service's ACLs); tools default to `admin`."""


def local_principal(default: str = ADMIN) -> str:
    return os.environ.get(LOCAL_PRINCIPAL) or default


def kafka_bootstrap() -> str:
    """The broker to use: KAFKA_BOOTSTRAP_SERVERS, else scripts/infra.sh's own (127.0.0.1, KAFKA_PORT or 9092)."""
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or f"127.0.0.1:{os.environ.get('KAFKA_PORT') or 9092}"


def kafka_env(principal: str | None = None) -> dict[str, str]:
    """`KAFKA_*` variables authenticating as `principal` on scripts/infra.sh's broker (SASL/SCRAM, its local
    password in .local/secrets); nothing for an external broker (KAFKA_BOOTSTRAP_SERVERS), whose
    credentials come from the environment as they are."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return {}
    return kafka_client_env(principal or local_principal())


def kafka_client(principal: str | None = None) -> dict[str, Any]:
    """aiokafka keywords (bootstrap and SASL) for a raw client of the broker, as `principal` on the local one."""
    kwargs: dict[str, Any] = {"bootstrap_servers": kafka_bootstrap()}
    env = {k: v for k, v in os.environ.items() if k.startswith("KAFKA_SASL") or k == "KAFKA_SECURITY_PROTOCOL"}
    env.update(kafka_env(principal))
    if env.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").startswith("SASL"):
        kwargs |= {
            "security_protocol": env["KAFKA_SECURITY_PROTOCOL"],
            "sasl_mechanism": env.get("KAFKA_SASL_MECHANISM") or "PLAIN",
            "sasl_plain_username": env.get("KAFKA_SASL_USERNAME"),
            "sasl_plain_password": env.get("KAFKA_SASL_PASSWORD"),
        }
    return kwargs


def mongodb_uri(principal: str | None = None) -> str:
    """The mongod to use: MONGODB_URI, else scripts/infra.sh's own (127.0.0.1, MONGO_PORT or 27017, replica set rs0),
    as `principal` once it checks credentials."""
    if uri := os.environ.get("MONGODB_URI"):
        return uri
    credentials = mongo_credentials(principal or local_principal())
    options = "replicaSet=rs0&authSource=admin" if credentials else "replicaSet=rs0"
    return f"mongodb://{credentials}127.0.0.1:{os.environ.get('MONGO_PORT') or 27017}/?{options}"


def oidc_issuer() -> str:
    """The identity provider to use: OIDC_ISSUER (production: the organisation's Keycloak or Entra ID), else the
    Keycloak of scripts/infra.sh (127.0.0.1, KEYCLOAK_PORT or 8180, realm `formation`)."""
    # Returned as given: an issuer may end in "/" (tokens' `iss` must equal it character for character).
    return os.environ.get("OIDC_ISSUER") or f"http://127.0.0.1:{os.environ.get('KEYCLOAK_PORT') or 8180}/realms/formation"


@dataclass
class ServiceProcess:
    name: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, timeout: float | None = None) -> None:
        # Generous on purpose: on a loaded machine (CI, both cores busy) importing the service alone
        # can take most of a minute; the wait ends as soon as the service answers, so only a service
        # that is truly stuck pays the whole of it. SERVICE_READY_TIMEOUT sets it, in seconds.
        if timeout is None:
            timeout = float(os.environ.get("SERVICE_READY_TIMEOUT") or 180)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; log: {self.log_path}\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f}s; log: {self.log_path}\n{self.tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.alive():
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: the crash case, no shutdown hook runs."""
        self.stop(signal.SIGKILL)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def start_service(
    name: str,
    *,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    log_dir: Path,
    instance: str | None = None,
) -> ServiceProcess:
    port = port or DEFAULT_PORTS[name]
    log_dir.mkdir(parents=True, exist_ok=True)
    instance = instance or f"{name}-{port}"
    log_path = log_dir / f"{instance}.log"
    # Each service as its own principal on the local servers (least privilege), unless the test suite
    # runs it (FORMATION_LOCAL_PRINCIPAL=tests): its per-run topic prefixes are beyond the services' ACLs.
    principal = local_principal(name)
    full_env = {
        **os.environ,
        # The same servers as this process, wherever KAFKA_PORT / MONGO_PORT moved infra.sh's.
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap(),
        **kafka_env(principal),
        "MONGODB_URI": mongodb_uri(principal),
        # The same identity provider too, wherever KEYCLOAK_PORT moved it: the services verify its tokens.
        "OIDC_ISSUER": oidc_issuer(),
        **(env or {}),
        f"{name.upper()}_HTTP_PORT": str(port),
        f"{name.upper()}_INSTANCE_ID": instance,
        f"{name.upper()}_LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
    }
    log_file = log_path.open("ab")
    process = subprocess.Popen([sys.executable, "-m", name], cwd=REPO, env=full_env, stdout=log_file, stderr=subprocess.STDOUT)
    log_file.close()
    return ServiceProcess(name=name, port=port, log_path=log_path, process=process, env=dict(env or {}))


@contextmanager
def running_services(
    names: tuple[str, ...] = SERVICES,
    *,
    env: Mapping[str, str] | None = None,
    log_dir: Path,
    ports: Mapping[str, int] | None = None,
) -> Iterator[dict[str, ServiceProcess]]:
    started: dict[str, ServiceProcess] = {}
    try:
        for name in names:
            started[name] = start_service(name, port=(ports or {}).get(name), env=env, log_dir=log_dir)
        for proc in started.values():
            proc.wait_ready()
        yield started
    finally:
        for proc in started.values():
            proc.stop()
