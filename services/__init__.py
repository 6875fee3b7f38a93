"""Service defaults shared by intake, routing, notification and certification."""

from services.app import Runtime, create_service_app, get_runtime, serve
from services.consumers import ErrorPolicy, carrying, dead_letter_topic, subscriber_options
from services.idempotency import Outcome, ProcessedEvents
from services.logging import configure_logging, mask_personal_data
from services.settings import KafkaSettings, MongoSettings, ServiceSettings

__all__ = [
    "ErrorPolicy",
    "KafkaSettings",
    "MongoSettings",
    "Outcome",
    "ProcessedEvents",
    "Runtime",
    "ServiceSettings",
    "carrying",
    "configure_logging",
    "create_service_app",
    "dead_letter_topic",
    "get_runtime",
    "mask_personal_data",
    "serve",
    "subscriber_options",
]
