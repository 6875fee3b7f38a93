"""The grants of scripts/principals.py: each service writes only what it publishes, reads only what it
consumes, and owns the collections its code names (a new collection without a grant fails here, not in
production with "not authorized")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from certification.handlers import CONSUMED as CERTIFICATION_CONSUMES
from notification.handlers import CONSUMED as NOTIFICATION_CONSUMES
from schemas.topics import ALL_TOPICS, TRAINING_REQUESTS, TRAINING_ROUTING
from scripts.principals import GRANTS, SHARED_COLLECTIONS, Acl, Operation, Pattern, Resource, kafka_acls, mongo_role

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def allowed(acls: list[Acl], operation: Operation, topic: str) -> bool:
    return any(
        acl.resource is Resource.TOPIC
        and acl.operation is operation
        and (topic == acl.name if acl.pattern is Pattern.LITERAL else topic.startswith(acl.name))
        for acl in acls
    )


def test_each_declared_topic_has_exactly_one_publisher() -> None:
    for topic in ALL_TOPICS:
        writers = [service for service in GRANTS if allowed(kafka_acls(service), Operation.WRITE, topic.name)]
        assert len(writers) == 1, (topic.name, writers)


def test_intake_may_write_requests_but_only_read_routing() -> None:
    intake = kafka_acls("intake")
    assert allowed(intake, Operation.WRITE, TRAINING_REQUESTS.name)
    assert not allowed(intake, Operation.WRITE, TRAINING_ROUTING.name)
    # The status pages show what routing did about each request (intake.status).
    assert allowed(intake, Operation.READ, TRAINING_ROUTING.name)
    assert allowed(intake, Operation.WRITE, "intake.retry.1.v1")
    assert not allowed(intake, Operation.WRITE, "routing.retry.1.v1")


def test_grants_follow_the_topic_prefix_of_a_deployment() -> None:
    acls = kafka_acls("routing", "demo_x.")
    assert allowed(acls, Operation.READ, "demo_x.training.requests.v1")
    assert not allowed(acls, Operation.READ, "training.requests.v1")
    assert any(acl.resource is Resource.GROUP and acl.name == "demo_x.routing" for acl in acls)


def test_notification_reads_what_its_handlers_subscribe_to() -> None:
    acls = kafka_acls("notification")
    assert all(allowed(acls, Operation.READ, topic.name) for topic in NOTIFICATION_CONSUMES)


def test_certification_reads_what_its_handlers_subscribe_to_and_no_more() -> None:
    # Requests (the holder's e-mail, sealed) and erasures included; notifications, for one, not.
    acls = kafka_acls("certification")
    assert all(allowed(acls, Operation.READ, topic.name) for topic in CERTIFICATION_CONSUMES)
    readable = {
        topic.name
        for topic in ALL_TOPICS
        if allowed(acls, Operation.READ, topic.name) and not topic.name.startswith("certification.")  # its own
    }
    assert readable == {topic.name for topic in CERTIFICATION_CONSUMES} | {"configuration.v1"}


# A collection is named as `db["x"]`, as an outbox's, as a constant `..._COLLECTION = "x"` or as the
# default of a `collection: str = "x"` parameter.
COLLECTION = re.compile(
    r"""db\[\s*["']([a-z_]+)["']\s*\]|Outbox\([^,]+,\s*["']([a-z_]+)["']"""
    r"""|\b[A-Z_]*COLLECTION[A-Z_]*\s*(?::\s*\w+\s*)?=\s*["']([a-z_]+)["']|collection:\s*str\s*=\s*["']([a-z_]+)["']"""
)


@pytest.mark.parametrize("service", ["intake", "routing", "notification", "certification", "analytics"])
def test_every_collection_a_service_names_is_granted_to_it(service: str) -> None:
    named = {
        name
        for path in (REPO / service).rglob("*.py")
        for match in COLLECTION.finditer(path.read_text())
        for name in match.groups()
        if name
    }
    assert named, f"no collection found in {service}/: the pattern is out of date"
    granted = set(GRANTS[service].collections) | set(SHARED_COLLECTIONS)
    assert named <= granted, sorted(named - granted)


def test_no_collection_of_a_service_is_granted_to_another() -> None:
    owners: dict[str, str] = {}
    for service, grants in GRANTS.items():
        for name in grants.collections:
            assert name not in owners, (name, owners.get(name), service)
            owners[name] = service


def test_mongo_role_reaches_its_collections_in_any_database_only() -> None:
    role = mongo_role("intake")
    resources = [privilege["resource"] for privilege in role["privileges"]]
    assert {"db": "", "collection": "intake_requests"} in resources
    assert {"db": "", "collection": "routing_cases"} not in resources
    assert all(resource["db"] == "" for resource in resources)
