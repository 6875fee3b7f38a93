"""Why a message could not be turned into an event. Consumers skip an `UnknownEventType` (a
well-formed event that is not for them, see `services.retries`) and dead-letter the others.

    ValueError
     └── ContractError                 any message that breaks the event contract
          ├── MalformedEvent           not UTF-8, not JSON, not an object, no `type`
          ├── UnknownEventType         a `type` no event class declares
          ├── UnsupportedSchemaVersion a `schemaversion` newer than this code understands
          └── InvalidEvent             the right type, but fields fail validation

`UnsupportedSchemaVersion` is the one worth redriving: it goes away when the consumer is
upgraded. The other dead-lettered ones are poison until someone fixes the producer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "ContractError",
    "InvalidEvent",
    "MalformedEvent",
    "UnknownEventType",
    "UnsupportedSchemaVersion",
]


class ContractError(ValueError):
    """A message that cannot be read as an event of the contract."""


class MalformedEvent(ContractError):
    """The message is not a JSON object in UTF-8, or lacks what makes it a CloudEvent."""


class EventTooLarge(MalformedEvent):
    """The message is larger than any event of ours can be: a mistake or an attack, never a request."""


class UnknownEventType(ContractError):
    """The message's `type` is not declared by any event class."""

    def __init__(self, event_type: str) -> None:
        super().__init__(f"unknown event type {event_type!r}")
        self.event_type = event_type


class UnsupportedSchemaVersion(ContractError):
    """The event was written with a newer schema than this code understands."""

    def __init__(self, event_type: str, version: int, supported: int) -> None:
        super().__init__(f"{event_type} has schema version {version}; this code understands up to {supported}")
        self.event_type = event_type
        self.version = version
        self.supported = supported


class InvalidEvent(ContractError):
    """The event's type is known but its fields fail validation.

    `errors` are pydantic's error dicts without the offending input values: those may be
    phone numbers or e-mail addresses, and this message ends up in logs and dead letters.
    """

    def __init__(self, event_type: str, errors: Sequence[dict[str, Any]]) -> None:
        self.event_type = event_type
        self.errors: tuple[dict[str, Any], ...] = tuple(errors)
        details = "; ".join(f"{_dotted(e['loc']) or '<event>'}: {e['msg']}" for e in self.errors)
        super().__init__(f"invalid {event_type}: {details}")

    @property
    def fields(self) -> tuple[str, ...]:
        """Dotted paths of the fields that failed, e.g. `contact.phone`."""
        return tuple(_dotted(e["loc"]) for e in self.errors)


def _dotted(loc: Sequence[str | int]) -> str:
    return ".".join(str(part) for part in loc)
