"""Least privilege on the local genuine servers: one Kafka principal and one MongoDB user per service.

Each service may write only the topics it publishes, read only the topics it consumes, and use
its own consumer groups and its own retry / dead-letter topics (all named `<service>...`). On
MongoDB each service's user has a role on its own collections (in any database, so that the
demo's and the tests' databases are covered) and on the few collections every service shares.
`admin` (the servers' administrator) and `tests` (the test suite, whose per-run topic prefixes no
ACL on the production names can cover) are super users of the local servers only.

Passwords are generated once into `.local/secrets/` (mode 0600) by `python -m scripts.principals
secrets`, which scripts/infra.sh runs; they exist on this machine only. Production credentials
come from the environment (`KAFKA_SASL_*`, `MONGODB_URI`), never from here.

    python -m scripts.principals secrets
    python -m scripts.principals kafka-acls --bootstrap 127.0.0.1:9092 [--topic-prefix demo_x.]
    python -m scripts.principals mongo-users --host 127.0.0.1:27017 [--no-auth]
    env $(python -m scripts.principals env routing) python -m routing   # a service by hand, as itself
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote

from schemas.topics import (
    ALL_TOPICS,
    CERTIFICATION_EXAMS,
    CONFIGURATION,
    NOTIFICATIONS,
    PRIVACY,
    TRAINING_ENROLMENTS,
    TRAINING_REQUESTS,
    TRAINING_ROUTING,
    TopicSpec,
)

REPO = Path(__file__).resolve().parent.parent
SECRETS = REPO / ".local" / "secrets"
# Written by scripts/infra.sh once its broker runs with SASL/SCRAM and ACLs (its storage formatted
# with the users) and once its mongod checks credentials: until then clients connect as before.
KAFKA_SECURED = REPO / ".local" / "kafka" / "data.security"
MONGO_SECURED = REPO / ".local" / "mongo" / "auth-enabled"
SCRAM_MECHANISM = "SCRAM-SHA-512"

ADMIN = "admin"
TESTS = "tests"
SUPER_USERS = (ADMIN, TESTS)


@dataclass(frozen=True)
class ServiceGrants:
    """What one service may do: its topics and its collections."""

    publishes: tuple[TopicSpec, ...]
    consumes: tuple[TopicSpec, ...]
    collections: tuple[str, ...]


# Collections every service uses through services/: leases, idempotency, per-person keys and
# erasures, console sessions, dead-letter redrives. Shared, so any service's user reaches them.
SHARED_COLLECTIONS = (
    "leases",
    "processed_events",
    "privacy_person_keys",
    "privacy_erasures",
    "console_sessions",
    "dead_letter_redrives",
)

GRANTS: dict[str, ServiceGrants] = {
    "intake": ServiceGrants(
        publishes=(TRAINING_REQUESTS, PRIVACY),
        # The status pages' projection reads what happened to each request (intake.status).
        consumes=(CONFIGURATION, TRAINING_REQUESTS, TRAINING_ROUTING, TRAINING_ENROLMENTS, CERTIFICATION_EXAMS, PRIVACY),
        collections=(
            "intake_requests",
            "intake_status",
            "intake_status_people",
            "intake_identities",
            "intake_erasures",
            "intake_outbox",
            "web_idempotency_keys",
            "rate_limits",
        ),
    ),
    "routing": ServiceGrants(
        publishes=(TRAINING_ROUTING, TRAINING_ENROLMENTS, CONFIGURATION),
        consumes=(TRAINING_REQUESTS, PRIVACY, CONFIGURATION),
        collections=(
            "routing_cases",
            "routing_decisions",
            "routing_requests",
            "routing_workers",
            "routing_programmes",
            "routing_programme_members",
            "routing_programme_waitlist",
            "routing_programme_spaces",
            "routing_self_training_slots",
            "routing_self_training_bookings",
            "routing_course_seats",
            "routing_enrolments",
            "routing_course_sessions",
            "routing_session_enrolments",
            "routing_timers",
            "routing_outbox",
            "configuration_changes",
        ),
    ),
    "notification": ServiceGrants(
        publishes=(NOTIFICATIONS,),
        consumes=(TRAINING_REQUESTS, TRAINING_ROUTING, TRAINING_ENROLMENTS, CERTIFICATION_EXAMS, PRIVACY),
        collections=(
            "notification_people",
            "deliveries",
            "notification_waiting",
            "notification_outbox",
            "notification_budget",
            "notification_staff_alerts",
        ),
    ),
    "certification": ServiceGrants(
        publishes=(CERTIFICATION_EXAMS,),
        # Requests (sealed contact: the holder's e-mail) and erasures feed `certification_contacts`.
        consumes=(TRAINING_ENROLMENTS, TRAINING_ROUTING, TRAINING_REQUESTS, PRIVACY, CONFIGURATION),
        collections=(
            "certification_candidates",
            "certification_centres",
            "certification_sessions",
            "certification_offers",
            "certification_results",
            "certification_credentials",
            "certification_priority_hints",
            "certification_timers",
            "certification_outbox",
            "certification_console_sessions",
            "certification_rate_limits",  # the public seat-offer page's limits per client network
            "certification_contacts",  # person id -> the e-mail that names a credential's holder
        ),
    ),
    # Reads every event (no consumer group: partitions assigned by hand) into its own read model.
    "analytics": ServiceGrants(publishes=(), consumes=ALL_TOPICS, collections=("events", "replays")),
}

PRINCIPALS = (*SUPER_USERS, *GRANTS)

KEYCLOAK_CLIENTS = ("example-channel-adapter",)
"""The local realm's confidential clients whose secrets are made here, never written in the realm file:
scripts/infra.sh hands each to Keycloak's realm import in an environment variable (docs/adapters)."""


# ------------------------------------------------------------------ secrets ---


def secret_path(server: str, principal: str) -> Path:
    return SECRETS / f"{server}-{principal}"


def local_password(server: str, principal: str) -> str | None:
    """The local password of `principal` on `server` ("kafka", "mongo", or "keycloak" for a client's
    secret), if infra.sh made one."""
    try:
        return secret_path(server, principal).read_text().strip() or None
    except FileNotFoundError:
        return None


def ensure_secrets() -> list[Path]:
    """Generate the missing local passwords (0600, directory 0700); existing ones are kept."""
    SECRETS.mkdir(parents=True, exist_ok=True)
    SECRETS.chmod(0o700)
    made = []
    wanted = [(server, principal) for server in ("kafka", "mongo") for principal in PRINCIPALS]
    wanted += [("keycloak", client) for client in KEYCLOAK_CLIENTS]
    for server, principal in wanted:
        path = secret_path(server, principal)
        if path.exists():
            continue
        # URL- and JAAS-safe characters only: the password goes into a URI and a properties file.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(24) + "\n")
        made.append(path)
    return made


def kafka_client_env(principal: str) -> dict[str, str]:
    """The `KAFKA_*` variables that make KafkaSettings authenticate as `principal` on the local broker,
    or nothing if the local broker has no credentials (an older .local, or an external broker)."""
    password = local_password("kafka", principal)
    if password is None or not KAFKA_SECURED.exists():
        return {}
    return {
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": SCRAM_MECHANISM,
        "KAFKA_SASL_USERNAME": principal,
        "KAFKA_SASL_PASSWORD": password,
    }


def mongo_credentials(principal: str) -> str:
    """`user:password@` for a local MongoDB URI, or "" if the local mongod has no users yet."""
    password = local_password("mongo", principal)
    if password is None or not MONGO_SECURED.exists():
        return ""
    return f"{quote(principal, safe='')}:{quote(password, safe='')}@"


# -------------------------------------------------------------------- kafka ---
# Codes of the Kafka protocol (org.apache.kafka.common.acl / resource).


class Resource(IntEnum):
    TOPIC = 2
    GROUP = 3


class Pattern(IntEnum):
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    READ = 3
    WRITE = 4
    CREATE = 5
    DESCRIBE = 8
    DESCRIBE_CONFIGS = 10


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW binding: `principal` may `operation` on the resource, from any host."""

    principal: str
    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation


def kafka_acls(service: str, topic_prefix: str = "") -> list[Acl]:
    """The ALLOW bindings of `service`'s principal. Its own topics (retries, dead letters) and
    groups all start with its name; the declared topics it may create and describe, configs included
    (every service creates the declared topics at start and checks their retention), write if it
    publishes them, read if it consumes them."""
    grants = GRANTS[service]
    user = f"User:{service}"
    acls: set[Acl] = set()
    for topic in ALL_TOPICS:
        for operation in (Operation.CREATE, Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS):
            acls.add(Acl(user, Resource.TOPIC, topic_prefix + topic.name, Pattern.LITERAL, operation))
    for topic in grants.publishes:
        acls.add(Acl(user, Resource.TOPIC, topic_prefix + topic.name, Pattern.LITERAL, Operation.WRITE))
    for topic in grants.consumes:
        acls.add(Acl(user, Resource.TOPIC, topic_prefix + topic.name, Pattern.LITERAL, Operation.READ))
    own = topic_prefix + f"{service}."
    for operation in (Operation.CREATE, Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS, Operation.READ, Operation.WRITE):
        acls.add(Acl(user, Resource.TOPIC, own, Pattern.PREFIXED, operation))
    # Groups: `routing`, `routing.privacy`, `routing.retries`, `certification-priority`...
    for operation in (Operation.READ, Operation.DESCRIBE):
        acls.add(Acl(user, Resource.GROUP, topic_prefix + service, Pattern.PREFIXED, operation))
    return sorted(acls)


async def create_kafka_acls(admin_kwargs: dict[str, Any], acls: list[Acl]) -> None:
    """Create the bindings (creating an existing one changes nothing)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import for_code
    from aiokafka.protocol.admin import CreateAclsRequest

    admin = AIOKafkaAdminClient(**admin_kwargs, client_id="formation-events-principals")
    await admin.start()
    try:
        for acl in acls:
            # aiokafka has the request but no public method for it.
            request = CreateAclsRequest(acl.resource, acl.name, acl.pattern, acl.principal, "*", acl.operation, 3)  # 3: ALLOW
            response = await admin._send_request(request)
            for code, message in response.creation_responses:  # type: ignore[attr-defined]
                if code:
                    raise for_code(code)(f"{acl}: {message}")
    finally:
        await admin.close()


# -------------------------------------------------------------------- mongo ---


def mongo_role(service: str) -> dict[str, Any]:
    """The `createRole` privileges of `service`: its own and the shared collections, in any database."""
    actions = [
        "find",
        "insert",
        "update",
        "remove",
        "createIndex",
        "createCollection",
        "listIndexes",
        "collStats",
    ]
    collections = (*GRANTS[service].collections, *SHARED_COLLECTIONS)
    privileges: list[dict[str, Any]] = [{"resource": {"db": "", "collection": name}, "actions": actions} for name in collections]
    # analytics asks whether its clustered collection exists before creating it.
    privileges.append({"resource": {"db": "", "collection": ""}, "actions": ["listCollections"]})
    return {"role": f"{service}_service", "privileges": privileges, "roles": []}


def ensure_mongo_users(uri: str) -> None:
    """Create or update the admin, the tests user, and each service's role and user (idempotent)."""
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(uri, directConnection=True, serverSelectionTimeoutMS=10_000)
    try:
        admin_db = client.admin
        users = {u["user"] for u in admin_db.command("usersInfo")["users"]}
        roles = {r["role"] for r in admin_db.command("rolesInfo", 1)["roles"]}

        def upsert_user(name: str, user_roles: list[Any]) -> None:
            password = local_password("mongo", name)
            if password is None:
                raise SystemExit(f"no password for {name}: run `python -m scripts.principals secrets` first")
            if name in users:
                admin_db.command("updateUser", name, pwd=password, roles=user_roles)
            else:
                admin_db.command("createUser", name, pwd=password, roles=user_roles)

        # The admin first: once it exists the localhost exception is gone and it does the rest.
        upsert_user(ADMIN, [{"role": "root", "db": "admin"}])
        upsert_user(TESTS, [{"role": "root", "db": "admin"}])
        for service in GRANTS:
            role = mongo_role(service)
            if role["role"] in roles:
                admin_db.command("updateRole", role["role"], privileges=role["privileges"], roles=[])
            else:
                admin_db.command("createRole", role["role"], privileges=role["privileges"], roles=[])
            upsert_user(service, [{"role": role["role"], "db": "admin"}])
    finally:
        client.close()


# ---------------------------------------------------------------------- cli ---


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("secrets", help="generate the missing local passwords")
    env = commands.add_parser("env", help="KEY=value lines that make a service run by hand use its own credentials")
    env.add_argument("principal", choices=PRINCIPALS)
    kafka = commands.add_parser("kafka-acls", help="grant each service's principal its ACLs (as admin)")
    kafka.add_argument("--bootstrap", required=True)
    kafka.add_argument("--topic-prefix", default="")
    mongo = commands.add_parser("mongo-users", help="create or update the users and roles (as admin)")
    mongo.add_argument("--host", required=True, help="host:port of the local mongod")
    mongo.add_argument("--no-auth", action="store_true", help="the mongod does not check credentials yet")
    args = parser.parse_args(argv)

    if args.command == "secrets":
        for path in ensure_secrets():
            print(f"[principals] generated {path.relative_to(REPO)}")
    elif args.command == "env":
        from scripts.launch import kafka_bootstrap, kafka_env, mongodb_uri

        variables = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap(), **kafka_env(args.principal)}
        variables["MONGODB_URI"] = mongodb_uri(args.principal)
        print("\n".join(f"{name}={value}" for name, value in variables.items()))
    elif args.command == "kafka-acls":
        admin_password = local_password("kafka", ADMIN)
        kwargs: dict[str, Any] = {
            "bootstrap_servers": args.bootstrap,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": SCRAM_MECHANISM,
            "sasl_plain_username": ADMIN,
            "sasl_plain_password": admin_password,
        }
        acls = [acl for service in GRANTS for acl in kafka_acls(service, args.topic_prefix)]
        asyncio.run(create_kafka_acls(kwargs, acls))
        print(f"[principals] {len(acls)} Kafka ACLs in place for {', '.join(GRANTS)}")
    else:
        credentials = "" if args.no_auth else f"{ADMIN}:{quote(local_password('mongo', ADMIN) or '', safe='')}@"
        ensure_mongo_users(f"mongodb://{credentials}{args.host}/?authSource=admin")
        print(f"[principals] MongoDB users in place: {', '.join(PRINCIPALS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
